"""This repository as the Ansible collection qdrant_ops.qdrant (galaxy.yml), its plugins imported
by the name Ansible gives them: collections/ansible_collections/qdrant_ops/qdrant links back to
the checkout, and ansible_collections is a namespace package the `ansible` package shares."""

import importlib
import sys
from pathlib import Path

COLLECTION = "qdrant_ops.qdrant"
ROOT = Path(__file__).resolve().parents[2]


def plugin(kind: str, name: str):
    """The plugin `name` of `kind` (modules, module_utils, filter, doc_fragments)."""
    if str(ROOT / "collections") not in sys.path:
        sys.path.insert(0, str(ROOT / "collections"))
    return importlib.import_module(f"ansible_collections.{COLLECTION}.plugins.{kind}.{name}")
