"""The qdrant-ops CLI over the REST stub: tables by default, --json for scripts, clear errors."""

import json

import pytest

from qdrant_ops.cli import EXIT_ERROR, main


@pytest.fixture
def cli(qdrant_stub, monkeypatch, capsys):
    monkeypatch.setenv("QDRANT_URL", qdrant_stub.url)
    monkeypatch.setenv("QDRANT_API_KEY", "stub-secret-key")

    def run(*argv):
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


SPEC_FILE = """
collections:
  - name: cities
    vectors: {size: 4, distance: Cosine}
    payload_indexes: {city: keyword}
  - name: places
    payload_indexes: {location: geo}
"""


def test_apply_dry_run_then_apply_then_idempotent(cli, tmp_path):
    spec = tmp_path / "collections.yml"
    spec.write_text(SPEC_FILE)
    code, out, _ = cli("collections", "apply", "-f", str(spec), "--dry-run")
    assert code == 0 and "dry run, nothing changed" in out and "create" in out
    code, out, _ = cli("collections", "list", "--json")
    assert json.loads(out) == []

    # A drift signal for CI, like terraform plan -detailed-exitcode.
    assert cli("collections", "apply", "-f", str(spec), "--dry-run", "--exit-code")[0] == 1

    assert cli("collections", "apply", "-f", str(spec))[0] == 0
    code, out, _ = cli("collections", "apply", "-f", str(spec), "--json")
    assert [item["action"] for item in json.loads(out)] == ["none", "none"]
    assert cli("collections", "apply", "-f", str(spec), "--dry-run", "--exit-code")[0] == 0


def test_list_show_and_status(cli, tmp_path):
    spec = tmp_path / "c.yml"
    spec.write_text("name: cities\nvectors: {size: 4, distance: Dot}\nreplication_factor: 2\n")
    cli("collections", "apply", "-f", str(spec))
    code, out, _ = cli("collections", "list")
    assert code == 0
    assert out.splitlines()[0].split() == ["COLLECTION", "STATUS", "POINTS", "SHARDS", "RF", "REPLICAS"]
    assert out.splitlines()[1].split() == ["cities", "green", "0", "3", "2", "Active=6"]
    code, out, _ = cli("collections", "show", "cities", "--json")
    shown = json.loads(out)
    assert shown["spec"]["vectors"] == {"size": 4, "distance": "Dot"}
    assert len(shown["replicas"]) == 6
    code, out, _ = cli("cluster", "status")
    assert code == 0 and "leader 1000" in out and "http://127.77.1.2:6335/" in out


def test_a_bad_spec_changes_nothing(cli, tmp_path, qdrant_stub):
    spec = tmp_path / "c.yml"
    spec.write_text(
        "- name: good\n  vectors: {size: 4, distance: Dot}\n- name: bad\n  vectors: {size: 4, distance: L2}\n"
    )
    code, _, err = cli("collections", "apply", "-f", str(spec))
    assert code == EXIT_ERROR
    assert "vectors.distance 'L2' is unknown; use one of Cosine, Euclid, Dot, Manhattan" in err
    assert all(method == "GET" for method, *_ in qdrant_stub.state.requests)


def test_delete_needs_confirmation(cli, tmp_path):
    spec = tmp_path / "c.yml"
    spec.write_text("name: cities\n")
    cli("collections", "apply", "-f", str(spec))
    code, _, err = cli("collections", "delete", "cities")
    assert code == EXIT_ERROR and "--yes" in err
    assert cli("collections", "delete", "cities", "--yes")[1] == "cities: deleted\n"
    code, out, err = cli("collections", "delete", "cities", "--yes", "--json")
    assert code == 0 and json.loads(out) == {"name": "cities", "deleted": False}
    code, out, err = cli("collections", "delete", "cities", "--json")  # an error, as JSON on stdout
    assert code == 2 and "add --yes" in json.loads(out)["error"] and "add --yes" in err


def test_points_upsert_and_get(cli, tmp_path):
    spec = tmp_path / "c.yml"
    spec.write_text("name: places\n")
    cli("collections", "apply", "-f", str(spec))
    records = tmp_path / "r.jsonl"
    records.write_text(
        '{"id": 7, "payload": {"city": "Oslo"}}\n\n'
        '{"id": "5c56c793-69f3-4fbf-87e6-c4bf54c28c26", "payload": {"city": "Bergen"}}\n'
    )
    code, out, _ = cli("points", "upsert", "places", "-f", str(records))
    assert code == 0 and out.strip() == "upserted 2 points into places"
    code, out, _ = cli("points", "get", "places", "7")
    assert code == 0 and json.loads(out)["payload"] == {"city": "Oslo"}
    code, _, err = cli("points", "get", "places", "8")
    assert code == 1 and "point 8 not found" in err


def test_points_upsert_bad_line_names_file_and_line(cli, tmp_path, qdrant_stub):
    spec = tmp_path / "c.yml"
    spec.write_text("name: places\n")
    cli("collections", "apply", "-f", str(spec))
    records = tmp_path / "r.jsonl"
    records.write_text('{"id": 1}\n{"id": "not-a-uuid"}\n')
    code, _, err = cli("points", "upsert", "places", "-f", str(records))
    assert code == EXIT_ERROR
    assert f"{records}:2: point id 'not-a-uuid' is neither an unsigned integer nor a UUID" in err
    assert not any(path.endswith("/points") for _, path, *_ in qdrant_stub.state.requests)


def test_missing_url_and_unreadable_key_file(cli, monkeypatch):
    monkeypatch.delenv("QDRANT_URL")
    code, _, err = cli("collections", "list")
    assert code == EXIT_ERROR and "--url" in err and "QDRANT_URL" in err
    code, _, err = cli("collections", "list", "--url", "http://127.0.0.1:1", "--api-key-file", "/nonexistent")
    assert code == EXIT_ERROR and "cannot read --api-key-file /nonexistent" in err


BAD_INPUT = {
    "missing upsert file": (["points", "upsert", "places", "-f", "{tmp}/nope.jsonl"], "is not a file"),
    "huge upsert batch": (
        ["points", "upsert", "places", "-f", "{tmp}/p.jsonl", "--batch-size", "100000000000"],
        "batch size must be between 1 and 10000",
    ),
    "non-ASCII digit id": (["points", "get", "places", "²"], "neither an unsigned integer nor a UUID"),
    "id above 2^64-1": (["points", "get", "places", str(2**64)], "not an unsigned 64-bit integer"),
    "checkpoint in a missing directory": (
        ["ingest", "{tmp}/p.jsonl", "-c", "places", "--checkpoint", "{tmp}/no/such/dir/cp.json"],
        "the directory of checkpoint",
    ),
    "huge ingest batch": (
        ["ingest", "{tmp}/p.jsonl", "-c", "places", "--batch-size", "100000000000"],
        "batch size must be between 1 and 10000",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_naming_the_fix(case, cli, tmp_path, qdrant_stub):
    qdrant_stub.state.create("places", {})
    (tmp_path / "p.jsonl").write_text('{"id": 1, "payload": {"city": "Oslo"}}\n')
    argv, message = BAD_INPUT[case]
    code, _, err = cli(*(arg.replace("{tmp}", str(tmp_path)) for arg in argv))
    assert code == EXIT_ERROR and message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not any(
        method in ("PUT", "POST") and path.endswith("/points")
        for method, path, *_ in qdrant_stub.state.requests
    )


@pytest.mark.parametrize("fix", [True, False])
def test_apply_moves_a_new_collections_replicas_out_of_a_shared_zone(qdrant_stub, cli, tmp_path, fix):
    """Four peers in zones a, a, b, b; the stub places shard s on peers s and s+1, so shards 0 and 2
    start with both replicas in one zone."""
    qdrant_stub.state.peer_ids.append(1003)
    spec = tmp_path / "collections.yml"
    spec.write_text(
        "name: spread\nvectors: {size: 4, distance: Cosine}\nshard_number: 4\nreplication_factor: 2\n"
    )
    zones = ["--zone", "1000=a", "--zone", "1001=a", "--zone", "1002=b", "--zone", "1003=b"]
    code, out, _ = cli("collections", "apply", "-f", str(spec), *zones, *([] if fix else ["--no-zone-fix"]))
    assert code == 0
    code, status, _ = cli("cluster", "status", *zones)
    if fix:
        assert "2 replica(s) moved so no shard's replicas share a zone needlessly" in out
        assert "WARNING" not in status
    else:
        assert "moved" not in out and status.count("WARNING: replicas share a zone, avoidably") == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"old-key-abcdef\nnew-key-ghijkl\n", "holds 2 lines: put exactly one key in it"),
        (b"key-with\x07bell", "holds a space, control or non-ASCII character inside the key"),
        (b"key with space", "holds a space, control or non-ASCII character inside the key"),
        ("schl\u00fcssel".encode(), "holds non-ASCII bytes"),
        (b"\xff\xfe", "holds non-ASCII bytes"),
        (b"\n\n", "is empty: write the key into it"),
    ],
)
def test_a_key_file_is_one_printable_line_and_never_printed(content, message, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("QDRANT_API_KEY", raising=False)
    key_file = tmp_path / "api-key"
    key_file.write_bytes(content)
    code = main(["collections", "list", "--url", "http://127.0.0.1:9", "--api-key-file", str(key_file)])
    out, err = capsys.readouterr()
    assert code == EXIT_ERROR and f"--api-key-file {key_file} {message}" in err, err
    assert "Traceback" not in err
    for secret in ("old-key", "new-key", "key-with", "key with", "schl"):
        assert secret not in out + err


def test_an_unexpected_error_is_one_line_and_the_traceback_only_with_debug(monkeypatch, capsys):
    def broken(_args):
        raise KeyError("https://bucket.s3.amazonaws.com/k?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA")

    monkeypatch.setattr("qdrant_ops.cli.tls.cmd_tls_expiry", broken)  # the parser wires it at build time
    code = main(["tls", "expiry", "/dev/null"])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR and err.startswith("qdrant-ops: internal error: KeyError: "), err
    assert "Traceback" not in err and "deadbeef" not in err and "--debug" in err
    with pytest.raises(KeyError):
        main(["--debug", "tls", "expiry", "/dev/null"])
