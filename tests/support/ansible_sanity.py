"""Build this repository as the collection qdrant_ops.qdrant, install the artifact into a directory
of its own, and run `ansible-test sanity` there, as a person who installs it from Galaxy would get it.

ansible-test makes a virtualenv per sanity test and bootstraps pip in each with a script it downloads
from ci-files.testing.ansible.com, which this machine cannot reach (ansible/ansible issue 77304; its
error message says to place the script in its cache). BOOTSTRAP is that script's job done with the
standard library's ensurepip and PyPI, written into the cache of a HOME that belongs to the run, so
the user's ~/.ansible is not touched.
"""

import os
import subprocess
import sys
from pathlib import Path

from tests.support.collection import COLLECTION, ROOT

BIN = Path(sys.executable).parent
BOOTSTRAP = '''"""ansible-test's pip bootstrap: ensurepip, then the requested pip from PyPI."""
import ensurepip
import os
import subprocess
import sys

args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
ensurepip.bootstrap(upgrade=True)
os.environ.pop("PIP_CONFIG_FILE", None)  # ensurepip points it at /dev/null; pip's own config applies
subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *args], check=True)
'''
PIP_VERSION = "24.2"  # the version ansible-test asks for (ansible_test/_internal/python_requirements.py)


def build_and_install(workdir: Path) -> Path:
    """The collection built from the checkout and installed from its artifact; returns its path."""
    installed = workdir / "installed"
    # Away from the checkout's ansible.cfg, whose collections path already has this collection.
    env = outside_env(workdir, installed)
    galaxy = [BIN / "ansible-galaxy", "collection"]
    build = [*galaxy, "build", "--force", "--output-path", workdir, ROOT]
    subprocess.run(build, check=True, capture_output=True, text=True, env=env, cwd=workdir)
    (artifact,) = workdir.glob("*.tar.gz")
    # --no-deps: Galaxy is unreachable; the collections it depends on come with the `ansible` package.
    install = [*galaxy, "install", "--force", "--no-deps", "-p", installed, artifact]
    subprocess.run(install, check=True, capture_output=True, text=True, env=env, cwd=workdir)
    namespace, name = COLLECTION.split(".")
    return installed / "ansible_collections" / namespace / name


def outside_env(home: Path, collections: Path) -> dict:
    """An environment that knows nothing of this checkout: no ansible.cfg, only the install."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    return {
        **env,
        "HOME": str(home),
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "PATH": f"{BIN}:{env['PATH']}",
    }


def sanity(collection: Path, home: Path, timeout: float = 1500) -> subprocess.CompletedProcess:
    """`ansible-test sanity` on the installed collection, with the controller's Python."""
    cache = home / ".ansible/test/cache"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / f"get_pip_{PIP_VERSION.replace('.', '_')}.py").write_text(BOOTSTRAP)
    python = "{}.{}".format(*sys.version_info[:2])
    return subprocess.run(
        [BIN / "ansible-test", "sanity", "--local", "--python", python, "--color", "no"],
        cwd=collection,
        env=outside_env(home, collection.parents[2]),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
