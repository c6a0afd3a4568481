import argparse

import pytest

from qdrant_ops.cli import EXIT_USAGE, build_parser, main


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == EXIT_USAGE
    assert "usage: qdrant-ops" in capsys.readouterr().err


def test_usage_errors_exit_64_and_help_lists_the_exit_codes(capsys):
    for argv in (
        ["restore", "--bogus"],
        ["collections", "apply"],
        ["ingest", "x", "-c", "c", "--workers", "two"],
    ):
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        assert stopped.value.code == EXIT_USAGE, argv
        assert "qdrant-ops" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        main(["--help"])
    out = capsys.readouterr().out
    assert stopped.value.code == 0
    assert all(f"\n  {code} " in out for code in (0, 1, 2, 64, 130))


def test_every_option_says_what_it_does():
    """No option without help; a default that is not said in the help is appended to it."""
    missing = []

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*path, name])
            elif action.option_strings and not action.help and action.dest != "help":
                missing.append(" ".join([*path, action.option_strings[-1]]))
            elif not action.option_strings and not action.help and action.dest not in ("command",):
                missing.append(" ".join([*path, action.dest]))

    walk(build_parser(), ["qdrant-ops"])
    assert missing == []
    ingest_help = build_parser()._subparsers._group_actions[0].choices["ingest"].format_help()
    assert "(default: 512)" in " ".join(ingest_help.split())  # --batch-size
