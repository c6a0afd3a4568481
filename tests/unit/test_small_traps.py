"""Small traps an operator fell into (issue 34, item 7): each is now refused or done as named."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from qdrant_ops.cli import EXIT_ERROR, EXIT_USAGE, main


def test_generate_refuses_a_name_that_says_another_format(tmp_path, capsys):
    target = tmp_path / "x.csv"
    assert main(["dataset", "generate", "--count", "5", "--dim", "2", "-o", str(target)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "x.csv names csv, which generate does not write" in err and "Traceback" not in err
    assert not target.exists()
    mixed = tmp_path / "y.jsonl"
    code = main(
        ["dataset", "generate", "--count", "5", "--dim", "2", "--format", "parquet", "-o", str(mixed)]
    )
    assert code == EXIT_ERROR and "ingest would read it as jsonl" in capsys.readouterr().err
    assert not mixed.exists()


@pytest.mark.parametrize(("name", "check"), [("x.jsonl", "jsonl"), ("x.parquet", "parquet")])
def test_generate_writes_the_format_its_name_says(name, check, tmp_path):
    target = tmp_path / name
    assert main(["dataset", "generate", "--count", "5", "--dim", "2", "-o", str(target)]) == 0
    if check == "jsonl":
        assert [json.loads(line)["id"] for line in target.read_text().splitlines()] == [0, 1, 2, 3, 4]
    else:
        assert pq.read_table(target).num_rows == 5


def test_ingest_names_a_missing_source_before_it_asks_any_server(tmp_path, capsys):
    # Port 9 on loopback: nobody answers, and the client would retry for seconds if it were asked.
    missing = tmp_path / "nowhere.parquet"
    code = main(["ingest", str(missing), "-c", "docs", "--url", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR and "nowhere.parquet" in err and "127.0.0.1:9" not in err, err


@pytest.mark.parametrize("group", ["backup", "cluster", "collections", "standby"])
def test_a_command_without_its_action_prints_its_own_help(group, capsys):
    assert main([group]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"usage: qdrant-ops {group} ") and "ACTION" in err


def test_a_spec_file_is_checked_without_any_cluster(tmp_path, capsys):
    good = tmp_path / "good.yml"
    good.write_text("collections:\n  - {name: docs, vectors: {size: 4, distance: Dot}, shard_number: 2}\n")
    assert main(["collections", "validate", "-f", str(good)]) == 0
    assert "1 spec(s) valid: docs" in capsys.readouterr().out
    typo = tmp_path / "typo.yml"
    typo.write_text("name: docs\nvectors: {size: 4, distance: Dot}\nhnsw_config: {ef_contruct: 100}\n")
    assert main(["collections", "validate", "-f", str(typo)]) == EXIT_ERROR
    assert "ef_contruct" in capsys.readouterr().err
