"""Project-level invariants that CI must keep true."""

import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from tests.support.collections import mismatches, pinned

ROOT = Path(__file__).resolve().parents[2]
REQUIRED_COLLECTIONS = {
    "community.docker",
    "ansible.posix",
    "community.general",
    "community.crypto",
    "amazon.aws",
}


def test_requirements_pin_every_needed_collection_exactly():
    pins = pinned(ROOT / "requirements.yml")
    assert set(pins) >= REQUIRED_COLLECTIONS
    assert all(version[0].isdigit() for version in pins.values()), pins


def test_installed_collections_match_the_pins():
    assert mismatches(ROOT / "requirements.yml") == []


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci/run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()
    assert [line for line in ci.splitlines() if line.startswith("make ")] == ["make test"]


def test_runtime_dependencies_are_the_required_ones():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements):
        return {dep.split(">")[0].split("=")[0].split("<")[0] for dep in requirements}

    # The nodes need the library; the controller Ansible and Jinja (tests/unit/test_dependencies.py).
    assert names(project["dependencies"]) >= {"boto3", "qdrant-client", "prometheus-client"}
    extras = project["optional-dependencies"]
    assert names(extras["controller"]) >= {"ansible-core", "jinja2"}
    assert names(extras["test"]) >= {"ansible-core", "jinja2", "molecule", "pytest"}
    assert project["scripts"]["qdrant-ops"] == "qdrant_ops.cli:main"


def _playbook(args, inventory: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _inventory(tmp_path: Path, nodes: int) -> Path:
    hosts = "\n".join(f"        q{i}: {{ansible_connection: local}}" for i in range(nodes))
    path = tmp_path / "hosts.yml"
    path.write_text(f"all:\n  children:\n    qdrant:\n      hosts:\n{hosts}\n")
    return path


def test_preflight_accepts_three_nodes(tmp_path):
    result = _playbook(["playbooks/preflight.yml"], _inventory(tmp_path, 3))
    assert result.returncode == 0, result.stdout + result.stderr


def test_preflight_refuses_two_nodes_and_says_how_to_fix(tmp_path):
    result = _playbook(["playbooks/preflight.yml"], _inventory(tmp_path, 2))
    assert result.returncode != 0
    assert "has 2 host(s)" in result.stdout
    assert "qdrant_allow_small_cluster=true" in result.stdout


def test_preflight_small_cluster_override(tmp_path):
    result = _playbook(
        ["playbooks/preflight.yml", "-e", "qdrant_allow_small_cluster=true"], _inventory(tmp_path, 2)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "even count" in result.stdout


def test_every_role_default_is_described_in_its_argument_specs():
    """`ansible-doc`-style docs and validation of a role's knobs: a default without a spec entry (in
    `main` or the entry point of the tasks that use it, e.g. qdrant_backup's `standby`) is
    undocumented."""
    for defaults in sorted(ROOT.glob("roles/*/defaults/main.yml")):
        specs = defaults.parent.parent / "meta" / "argument_specs.yml"
        if not specs.exists():
            continue
        entry_points = yaml.safe_load(specs.read_text())["argument_specs"].values()
        options = {name for entry in entry_points for name in entry.get("options") or {}}
        missing = set(yaml.safe_load(defaults.read_text()) or {}) - set(options)
        assert not missing, f"{defaults.parent.parent.name}: {sorted(missing)} not in meta/argument_specs.yml"
