"""Shared by the qdrant_* modules: connection options, client construction, error handling.

The modules are thin: every decision lives in the qdrant_ops library, which the interpreter
running the module must be able to import (the controller's venv, or the venv the
qdrant_backup role installs on the nodes).
"""

from __future__ import annotations

import traceback

from ansible.module_utils.basic import missing_required_lib

try:
    from qdrant_ops.client import ClusterClient
    from qdrant_ops.errors import QdrantOpsError

    QDRANT_OPS_IMPORT_ERROR = None
except ImportError:
    ClusterClient = None
    QdrantOpsError = Exception
    QDRANT_OPS_IMPORT_ERROR = traceback.format_exc()

CONNECTION_ARGUMENT_SPEC = {
    "url": {"type": "list", "elements": "str", "required": True, "aliases": ["urls"]},
    "api_key": {"type": "str", "no_log": True},
    "validate_certs": {"type": "bool", "default": True},
    "ca_cert": {"type": "path"},
    "timeout": {"type": "float", "default": 30.0},
}


def require_qdrant_ops(module) -> None:
    if QDRANT_OPS_IMPORT_ERROR:
        module.fail_json(
            msg=missing_required_lib(
                "qdrant_ops", reason="the interpreter running this module must have the qdrant-ops package"
            )
            + " (set ansible_python_interpreter to the venv that has it)",
            exception=QDRANT_OPS_IMPORT_ERROR,
        )


def client_from_module(module):
    require_qdrant_ops(module)
    params = module.params
    return ClusterClient(
        params["url"],
        params["api_key"],
        verify=params["validate_certs"],
        ca_file=params["ca_cert"],
        timeout=params["timeout"],
    )
