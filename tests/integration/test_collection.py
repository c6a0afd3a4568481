"""The repository is the Ansible collection qdrant_ops.qdrant: its artifact builds, installs, documents
every module and role with `ansible-doc` away from the checkout, and passes `ansible-test sanity`."""

import json
import subprocess

import pytest

from tests.support import ansible_sanity
from tests.support.collection import COLLECTION, ROOT, plugin

MODULES = sorted(path.stem for path in (ROOT / "plugins/modules").glob("qdrant_*.py"))
ROLES = sorted(path.parent.parent.name for path in (ROOT / "roles").glob("*/meta/argument_specs.yml"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("collection")
    return ansible_sanity.build_and_install(workdir), workdir / "home"


def _ansible_doc(installed, *args):
    collection, home = installed
    home.mkdir(exist_ok=True)
    return subprocess.run(
        [ansible_sanity.BIN / "ansible-doc", "--json", *args],
        cwd=home,
        env=ansible_sanity.outside_env(home, collection.parents[2]),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_artifact_holds_the_ansible_content_and_not_the_rest(installed):
    collection, _ = installed
    for part in (
        "plugins/modules",
        "plugins/module_utils",
        "plugins/filter",
        "plugins/doc_fragments",
        "roles/qdrant/tasks",
        "playbooks",
        "files/alerts",
        "meta/runtime.yml",
        "README.md",
    ):
        assert (collection / part).exists(), part
    # Of tests/, only ansible-test's ignore file (tests/sanity) belongs to the collection.
    assert {path.name for path in (collection / "tests").iterdir()} == {"sanity"}
    for left_out in ("src", "bench", "terraform", "molecule", "collections", ".venv", ".cache"):
        assert not (collection / left_out).exists(), left_out


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_documents_each_module_from_the_installed_collection(installed, module):
    result = _ansible_doc(installed, f"{COLLECTION}.{module}")
    # Ansible's own warnings go to stderr ("unknown doc_fragment" was one); Python's are not ours.
    assert result.returncode == 0 and "[WARNING]" not in result.stderr, result.stderr
    doc = json.loads(result.stdout)[f"{COLLECTION}.{module}"]["doc"]
    assert doc["version_added"] and doc["requirements"], module
    assert set(doc["attributes"]) >= {"check_mode", "diff_mode"}
    # Every option documented, those of the collection's doc fragments merged in by their FQCN.
    assert set(doc["options"]) == set(plugin("modules", module).ARGUMENT_SPEC)


@pytest.mark.parametrize("role", ROLES)
def test_ansible_doc_documents_each_role_from_the_installed_collection(installed, role):
    result = _ansible_doc(installed, "-t", "role", f"{COLLECTION}.{role}")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[f"{COLLECTION}.{role}"]["entry_points"]["main"]


def test_choices_spelled_out_in_the_modules_are_the_librarys():
    """The modules spell them out so their documentation checks run without the library."""
    from qdrant_ops.cluster.replicas import METHODS  # noqa: PLC0415
    from qdrant_ops.ingest.wire import ORDERINGS  # noqa: PLC0415

    common = plugin("module_utils", "qdrant_common")
    assert common.TRANSFER_ARGUMENT_SPEC["method"]["choices"] == list(METHODS)
    assert plugin("modules", "qdrant_bulk_ingest").ARGUMENT_SPEC["ordering"]["choices"] == list(ORDERINGS)


@pytest.mark.slow
def test_ansible_test_sanity_passes_on_the_installed_collection(installed):
    collection, home = installed
    result = ansible_sanity.sanity(collection, home)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert 'Running sanity test "validate-modules"' in result.stdout + result.stderr
