"""Bad input never ends in a traceback (issue 33, item 8): each case below is one line on stderr
that names the problem, with exit 2 for a bad file or value in it, 64 for a bad command line."""

from __future__ import annotations

import pytest
import yaml

from qdrant_ops.cli import EXIT_ERROR, EXIT_USAGE, main
from qdrant_ops.cluster.points import read_jsonl_points
from qdrant_ops.errors import ConfigError

BASE = {
    "cluster": "prod",
    "s3": {"bucket": "b", "region": "us-east-1"},
    "qdrant": {"url": "http://127.0.0.1:9"},
}
CONFIG_CASES = {
    "s3.max_attempts -5": ({"s3": {"max_attempts": -5}}, "max_attempts"),
    "s3.endpoint_url not a url": ({"s3": {"endpoint_url": "not a url"}}, "endpoint_url"),
    "s3.prefix a number": ({"s3": {"prefix": 3}}, "prefix"),
    "s3.region with spaces": ({"s3": {"region": "us east 1!"}}, "region"),
    "qdrant.api_key a number": ({"qdrant": {"api_key": 12345}}, "api_key"),
    "s3.part_size_mib a word": ({"s3": {"part_size_mib": "big"}}, "part_size_mib"),
    "members a word": ({"members": "n1"}, "members"),
    "api_key with a newline": ({"qdrant": {"api_key": "old-key\nnew-key"}}, "qdrant.api_key holds 2 lines"),
    "api_key not ASCII": ({"qdrant": {"api_key": "k\u00e9y-secret"}}, "non-ASCII character"),
}


def merged(change: dict) -> dict:
    config = {key: dict(value) if isinstance(value, dict) else value for key, value in BASE.items()}
    for key, value in change.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    return config


def one_line_error(capsys, code: int, expected: int, *words: str) -> str:
    err = capsys.readouterr().err
    assert code == expected, err
    assert "Traceback" not in err and "internal error" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and all(word in lines[0] for word in words), err
    return lines[0]


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_a_bad_value_in_the_backup_config_is_named(case, tmp_path, capsys):
    change, word = CONFIG_CASES[case]
    path = tmp_path / "backup.yml"
    path.write_text(yaml.safe_dump(merged(change)))
    one_line_error(capsys, main(["backup", "list", "--config", str(path)]), EXIT_ERROR, word)


@pytest.mark.parametrize("what", ["config", "key", "zones", "spec"])
def test_files_that_are_not_utf8_are_named(what, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.write_bytes(b"cluster: \xff\xfe\n")
    url = ["--url", "http://127.0.0.1:9"]
    argv = {
        "config": ["backup", "list", "--config", str(bad)],
        "key": ["cluster", "status", *url, "--api-key-file", str(bad)],
        "zones": ["cluster", "status", *url, "--zones-file", str(bad)],
        "spec": ["collections", "apply", "-f", str(bad), *url],
    }[what]
    one_line_error(capsys, main(argv), EXIT_ERROR, str(bad))


def test_a_points_file_that_is_not_utf8_names_its_line(tmp_path):
    bad = tmp_path / "points.jsonl"
    bad.write_bytes(b'{"id": 1}\n{"id": 2, "payload": {"x": "\xff"}}\n')
    with pytest.raises(ConfigError, match=r"points.jsonl:2: not UTF-8 text"):
        list(read_jsonl_points(bad))


@pytest.mark.parametrize("timeout", ["-1", "nan", "inf", "0"])
def test_a_timeout_that_is_no_positive_number_is_a_usage_error(timeout, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["cluster", "status", "--url", "http://127.0.0.1:9", "--timeout", timeout])
    assert stopped.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--timeout" in err and "Traceback" not in err


@pytest.mark.parametrize("where", ["missing", "file"])
def test_output_in_a_missing_directory_or_under_a_file_is_a_usage_error(where, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    target = tmp_path / where / "placement.prom"
    with pytest.raises(SystemExit) as stopped:
        main(["cluster", "status", "--url", "http://127.0.0.1:9", "--textfile", str(target)])
    err = capsys.readouterr().err
    assert stopped.value.code == EXIT_USAGE and "is not a directory this user can write to" in err, err


def test_a_bad_key_in_the_environment_is_named_not_shown(monkeypatch, capsys):
    monkeypatch.setenv("QDRANT_API_KEY", "secret-one\nsecret-two")
    line = one_line_error(capsys, main(["cluster", "status", "--url", "http://127.0.0.1:9"]), EXIT_ERROR,
                          "QDRANT_API_KEY holds 2 lines")  # fmt: skip
    assert "secret-one" not in line and "secret-two" not in line
