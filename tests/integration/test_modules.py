"""The qdrant_* Ansible modules: documentation matches the argument spec, and the collections
playbook converges against the REST stub with accurate `changed`, check mode, diff and clear errors."""

import ast
import dataclasses
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from qdrant_ops.backup.job import BackupOptions
from qdrant_ops.backup.restore import RestoreOptions
from qdrant_ops.cluster.collection_spec import SPEC_KEYS
from qdrant_ops.cluster.collections import ApplyOptions
from qdrant_ops.cluster.rebalance import RebalanceOptions
from qdrant_ops.cluster.replicas import RepairOptions
from qdrant_ops.cluster.standby import StandbyOptions
from tests.support.collection import COLLECTION, plugin
from tests.support.playbook import run_playbook as run_ansible
from tests.support.playbook import task_results

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(path.stem for path in (ROOT / "plugins/modules").glob("qdrant_*.py"))


def _documentation(module_name: str) -> dict:
    tree = ast.parse((ROOT / "plugins/modules" / f"{module_name}.py").read_text())
    docs = {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and getattr(node.targets[0], "id", "") in ("DOCUMENTATION", "EXAMPLES", "RETURN")
    }
    assert set(docs) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    yaml.safe_load(docs["EXAMPLES"])
    yaml.safe_load(docs["RETURN"])
    documentation = yaml.safe_load(docs["DOCUMENTATION"])
    own_fragments = [
        fragment.removeprefix(f"{COLLECTION}.")
        for fragment in documentation.get("extends_documentation_fragment", [])
        if fragment.startswith(f"{COLLECTION}.")
    ]
    for fragment in own_fragments:  # as ansible-doc merges them
        shared = yaml.safe_load(plugin("doc_fragments", fragment).ModuleDocFragment.DOCUMENTATION)
        documentation["options"] = {**shared.get("options", {}), **documentation.get("options", {})}
    return documentation


@pytest.mark.parametrize("module_name", MODULES)
def test_documentation_matches_argument_spec(module_name):
    module = plugin("modules", module_name)
    argument_spec = module.ARGUMENT_SPEC
    documentation = _documentation(module_name)
    options = documentation["options"]
    assert set(options) == set(argument_spec)
    # "text: more" in a plain YAML list item is a mapping, which ansible-doc cannot show.
    texts = [documentation["description"], *(option["description"] for option in options.values())]
    for text in texts:
        assert all(isinstance(line, str) for line in (text if isinstance(text, list) else [text])), text
    for name, arg in argument_spec.items():
        doc = options[name]
        assert doc["type"] == arg["type"], name
        assert doc.get("default") == arg.get("default"), name
        assert doc.get("choices") == arg.get("choices"), name
        assert doc.get("required", False) == arg.get("required", False), name


# -- the collections playbook against the stub ---------------------------------------------------------
@pytest.fixture
def run_playbook(qdrant_stub, tmp_path):
    port = qdrant_stub.url.rsplit(":", 1)[1]
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  children:\n    qdrant:\n      hosts:\n"
        # The stub serves plain HTTP.
        f"        q1: {{ansible_connection: local, ansible_host: 127.0.0.1, qdrant_tls_enabled: false,"
        f" qdrant_http_port: {port}}}\n"
    )

    def run(collections: list, *flags: str) -> tuple[subprocess.CompletedProcess, dict]:
        extra = tmp_path / "vars.json"
        extra.write_text(json.dumps({"qdrant_collections": collections, "qdrant_api_key": "stub-secret-key"}))
        return run_ansible("playbooks/collections.yml", "-i", str(inventory), "-e", f"@{extra}", *flags)

    return run


def _items(report: dict) -> list[dict]:
    # The apply loop's results (the play first validates the cluster_defaults role's arguments).
    tasks = report["plays"][0]["tasks"]
    return next(task["hosts"]["q1"]["results"] for task in tasks if "results" in task["hosts"].get("q1", {}))


CITIES = {
    "name": "cities",
    "vectors": {"size": 8, "distance": "Cosine"},
    "payload_indexes": {"city": "keyword"},
}
PLACES = {"name": "places", "payload_indexes": {"location": "geo"}}


def test_apply_is_idempotent_and_keeps_the_key_secret(run_playbook, qdrant_stub):
    result, report = run_playbook([CITIES, PLACES])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert [item["action"] for item in _items(report)] == ["create", "create"]
    assert set(qdrant_stub.state.collections) == {"cities", "places"}
    assert "stub-secret-key" not in result.stdout + result.stderr

    result, report = run_playbook([CITIES, PLACES])
    assert result.returncode == 0
    assert report["stats"]["q1"]["changed"] == 0


def test_check_mode_reports_the_change_and_makes_none(run_playbook, qdrant_stub):
    result, report = run_playbook([CITIES], "--check", "--diff")
    assert result.returncode == 0, result.stdout[-3000:]
    item = _items(report)[0]
    assert item["changed"] and item["action"] == "create"
    assert item["diff"]["before"] == {} and item["diff"]["after"]["vectors"]["size"] == 8
    assert qdrant_stub.state.collections == {}


def test_in_place_change_reports_a_diff(run_playbook):
    run_playbook([CITIES])
    _, report = run_playbook([{**CITIES, "hnsw_config": {"m": 32}}], "--diff")
    item = _items(report)[0]
    assert item["action"] == "update" and item["patch"] == {"hnsw_config": {"m": 32}}
    assert (
        item["diff"]["before"]["hnsw_config"]["m"] == 16 and item["diff"]["after"]["hnsw_config"]["m"] == 32
    )


def test_bad_input_fails_with_the_field_named(run_playbook, qdrant_stub):
    result, report = run_playbook([{"name": "bad", "vectors": {"size": 8, "distance": "L2"}}])
    assert result.returncode != 0
    assert "vectors.distance 'L2' is unknown" in _items(report)[0]["msg"]
    assert qdrant_stub.state.collections == {}


def test_a_typo_in_a_nested_section_fails_in_check_mode_reading_nothing_but_the_peers(
    run_playbook, qdrant_stub
):
    before = len(qdrant_stub.state.requests)
    result, report = run_playbook([{**CITIES, "hnsw_config": {"ef_contruct": 100}}], "--check")
    assert result.returncode != 0
    assert "hnsw_config.ef_contruct: unknown key" in _items(report)[0]["msg"]
    assert [r[:2] for r in qdrant_stub.state.requests[before:]] == [("GET", "/cluster")]  # the peer count


def test_size_change_fails_without_recreate(run_playbook):
    run_playbook([CITIES])
    result, report = run_playbook([{**CITIES, "vectors": {"size": 16, "distance": "Cosine"}}])
    assert result.returncode != 0
    assert "vectors.size: 8 -> 16" in _items(report)[0]["msg"]
    result, report = run_playbook(
        [{**CITIES, "vectors": {"size": 16, "distance": "Cosine"}, "recreate": True}]
    )
    assert result.returncode == 0 and _items(report)[0]["action"] == "recreate"


def test_cluster_info_reports_peers_and_placement(run_playbook, qdrant_stub, tmp_path):
    run_playbook([CITIES])
    playbook = tmp_path / "info.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - qdrant_ops.qdrant.qdrant_cluster_info:\n"
        f"        url: ['{qdrant_stub.url}']\n        api_key: stub-secret-key\n"
        "      vars: {ansible_python_interpreter: '{{ ansible_playbook_python }}'}\n"
    )
    result, report = run_ansible(playbook, "-i", "localhost,", "-c", "local", "--check")
    assert result.returncode == 0, result.stdout[-3000:]
    info = task_results(report)["localhost"]
    assert info["changed"] is False
    assert [peer["id"] for peer in info["peers"]] == [1000, 1001, 1002] and info["leader"] == 1000
    assert info["collections"][0]["name"] == "cities" and info["collections"][0]["points_exact"] == 0
    assert len(info["collections"][0]["replicas"]) == 3


# module, its typed options, {parameter: field} where the names differ, the shared specs that are
# not options (how to reach the cluster or the bucket), its other parameters that are not options
# (zones and a peer by URL are resolved from the cluster; a collection's spec is no option; state
# picks the operation; the primary is a client), and the fields no parameter sets (check mode is
# dry_run; a promotion waits the default timeout; golden_queries is the sync's, which the module does
# not run; single_copy is the restore drill's; collections
# of qdrant_restore and qdrant_snapshot are the backup config's parameter; a rebalance's
# collections are restore's and the zone spreader's).
OPTION_TYPES = [
    ("qdrant_restore", RestoreOptions, {"wait_timeout": "timeout"}, "BACKUP_CONFIG_ARGUMENT_SPEC",
     set(), {"dry_run", "single_copy", "collections"}),
    ("qdrant_rebalance", RebalanceOptions, {"transfer_timeout": "timeout"}, "CONNECTION_ARGUMENT_SPEC",
     {"zones", "drain_url"}, {"dry_run", "collections"}),
    ("qdrant_replicas", RepairOptions,
     {"transfer_timeout": "timeout", "remove_peers": "remove", "prefer_peer": "prefer"},
     "CONNECTION_ARGUMENT_SPEC", {"zones"}, {"dry_run"}),
    ("qdrant_standby", StandbyOptions, {"promote_timeout": "timeout"}, "CONNECTION_ARGUMENT_SPEC",
     {"state", "primary_url", "primary_api_key"}, {"dry_run", "golden_queries"}),
    ("qdrant_snapshot", BackupOptions, {}, "BACKUP_CONFIG_ARGUMENT_SPEC", {"state"}, {"collections"}),
    ("qdrant_collection", ApplyOptions, {}, "CONNECTION_ARGUMENT_SPEC", SPEC_KEYS | {"zones"}, {"dry_run"}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "options", "renamed", "shared", "resolved", "unset"), OPTION_TYPES)
def test_each_modules_options_are_its_operations_options(name, options, renamed, shared, resolved, unset):
    """A module and the CLI build the same typed options: every option the module takes is one of
    its fields, with the same default, and every field a person may set is an option."""
    module = plugin("modules", name)
    common = plugin("module_utils", "qdrant_common")
    fields = {field.name: field for field in dataclasses.fields(options)}
    own = {
        parameter: spec
        for parameter, spec in module.ARGUMENT_SPEC.items()
        if parameter not in getattr(common, shared) and parameter not in resolved
    }
    assert {renamed.get(parameter, parameter) for parameter in own} | unset == set(fields)
    for parameter, spec in own.items():
        field = fields[renamed.get(parameter, parameter)]
        default = (
            field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        )
        if default is not dataclasses.MISSING and default is not None and not spec.get("required"):
            assert spec.get("default") == (list(default) if isinstance(default, tuple) else default), (
                parameter
            )
