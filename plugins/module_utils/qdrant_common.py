"""Shared by the qdrant_* modules: connection options, client construction, error handling.

The modules are thin: every decision lives in the qdrant_ops library, which the interpreter
running the module must be able to import (the controller's venv, or the venv the
qdrant_backup role installs on the nodes). `run_module` is the skeleton every module shares, so a
module is its argument spec, one call into the library and its result.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable

from ansible.module_utils.basic import missing_required_lib

try:
    from qdrant_ops.backup import job
    from qdrant_ops.client import ClusterClient
    from qdrant_ops.errors import QdrantOpsError
    from qdrant_ops.redact import redact

    QDRANT_OPS_IMPORT_ERROR = None
except ImportError:
    job = None
    ClusterClient = None
    redact = str

    class QdrantOpsError(Exception):
        """Stands in for the library's error so the module can still load and say what is missing."""

    QDRANT_OPS_IMPORT_ERROR = traceback.format_exc()

CONNECTION_ARGUMENT_SPEC = {
    "url": {"type": "list", "elements": "str", "required": True, "aliases": ["urls"]},
    "api_key": {"type": "str", "no_log": True},
    "validate_certs": {"type": "bool", "default": True},
    "ca_cert": {"type": "path"},
    "timeout": {"type": "float", "default": 30.0},
}

# Options of the modules that move or copy shards (qdrant_rebalance, qdrant_replicas).
ZONES_ARGUMENT_SPEC = {"zones": {"type": "dict", "default": {}}}

TRANSFER_ARGUMENT_SPEC = {
    # The library's replicas.METHODS, spelled out so the documentation checks need no library
    # (tests/integration/test_modules.py holds the two equal).
    "method": {
        "type": "str",
        "choices": ["stream_records", "snapshot", "wal_delta"],
        "default": "stream_records",
    },
    "transfer_timeout": {"type": "float", "default": 3600.0},
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


def run_module(module, body: Callable, *, connect: bool = True) -> None:
    """Run `body(module, client)` (or `body(module)` without `connect`) and exit with its result
    dict plus `seconds`: the import guard first, the client closed whatever happens, a library
    error as fail_json with its message (and the report an error may carry)."""
    require_qdrant_ops(module)
    started = time.monotonic()
    try:
        if connect:
            with client_from_module(module) as client:
                result = body(module, client)
        else:
            result = body(module)
    except QdrantOpsError as exc:
        report = getattr(exc, "report", None) or {}
        module.fail_json(
            **{"seconds": round(time.monotonic() - started, 3), **report, "msg": redact(str(exc))}
        )
    except Exception as exc:  # a bug: one line, with every secret and presigned query hidden
        module.fail_json(msg=f"internal error: {type(exc).__name__}: {redact(str(exc))[:500]}",
                         seconds=round(time.monotonic() - started, 3))  # fmt: skip
    module.exit_json(**{"seconds": round(time.monotonic() - started, 3), **result})  # the body's own wins


# The backup config (the file the qdrant_backup role writes), each key overridable by an option:
# option -> (config file section, key, argument spec). Used by qdrant_snapshot and qdrant_restore.
BACKUP_CONFIG_OPTIONS = {
    "cluster": (None, "cluster", {"type": "str"}),
    "node": (None, "node", {"type": "str"}),
    "collections": (None, "collections", {"type": "list", "elements": "str"}),
    "url": ("qdrant", "url", {"type": "str"}),
    "api_key": ("qdrant", "api_key", {"type": "str", "no_log": True}),
    "ca_cert": ("qdrant", "ca_file", {"type": "path"}),
    "validate_certs": ("qdrant", "verify", {"type": "bool"}),
    "timeout": ("qdrant", "timeout", {"type": "float"}),
    "s3_bucket": ("s3", "bucket", {"type": "str"}),
    "s3_prefix": ("s3", "prefix", {"type": "str"}),
    "s3_region": ("s3", "region", {"type": "str"}),
    "s3_endpoint_url": ("s3", "endpoint_url", {"type": "str"}),
    "s3_access_key": ("s3", "access_key", {"type": "str", "no_log": True}),
    "s3_secret_key": ("s3", "secret_key", {"type": "str", "no_log": True}),
    "part_size_mib": ("s3", "part_size_mib", {"type": "int"}),
    "concurrency": ("s3", "concurrency", {"type": "int"}),
}
BACKUP_CONFIG_ARGUMENT_SPEC = {
    "config_file": {"type": "path"},
    **{option: entry[2] for option, entry in BACKUP_CONFIG_OPTIONS.items()},
}


def load_backup_config(params: dict):
    """The config file's settings with the options given taking precedence."""
    data = job.read_file(params["config_file"]) if params["config_file"] else {}
    for option, (section, key, _spec) in BACKUP_CONFIG_OPTIONS.items():
        if params.get(option) is None:
            continue
        if section is None:
            data[key] = params[option]
        else:
            data[section] = {**(data.get(section) or {}), key: params[option]}
    return job.from_dict(data, params["config_file"] or "module options")
