#!/usr/bin/python
"""Ansible module: one step of restoring a backup set into a Qdrant cluster (playbooks/restore.yml)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: qdrant_restore
short_description: One step of restoring collections from a qdrant-ops backup set
description:
  - The steps of playbooks/restore.yml, each thin over C(qdrant_ops.restore), in this order.
  - C(plan) (once) chooses the set (O(backup_id), default the newest complete one) and decides which
    target host restores which peer's part. It refuses, changing nothing, an incomplete set, a Qdrant
    minor version other than the set's, collections that exist without O(overwrite), fewer targets than
    the set has peers, and a bad O(peer_map).
  - C(download) (every host) downloads the host's parts into O(snapshots_path) and checks each against the
    manifest's size and sha256; a mismatch deletes the file and fails.
  - C(drop) (once) deletes the existing collections O(collections) when O(overwrite) was planned.
  - C(recover) (one host at a time) recovers the host's parts with a file:// location and priority
    C(snapshot), then waits until each collection is green with every replica Active.
  - C(verify) (once) compares exact point counts and the manifest's sampled points (payload and vector
    hashes) with the cluster; any difference fails.
  - C(cleanup) (every host) deletes the downloaded files.
  - Settings come from O(config_file) (the qdrant_backup role's file) with the options given here taking
    precedence. Runs with an interpreter that can import C(qdrant_ops) (the qdrant_backup role's venv).
options:
  step:
    description: The step to run.
    type: str
    required: true
    choices: [plan, download, drop, recover, verify, cleanup]
  backup_id:
    description: The set; default for C(plan) the newest complete one. The other steps take the plan's.
    type: str
  collections:
    description: Collections to restore (default every collection of the set).
    type: list
    elements: str
  targets:
    description: For C(plan), the target hosts in order (the inventory's Qdrant group).
    type: list
    elements: str
  peer_map:
    description: For C(plan), source peer id -> target host; default the set's peers in order onto O(targets).
    type: dict
  overwrite:
    description: Replace collections that already exist on the target.
    type: bool
    default: false
  target:
    description: This host's name as in O(targets) (C(download), C(recover)).
    type: str
  parts:
    description: The C(plan) result's parts (C(download), C(recover)); each host takes its own.
    type: list
    elements: dict
  snapshots_path:
    description: This node's Qdrant storage.snapshots_path; recover only accepts files inside it.
    type: path
  wait_timeout:
    description: Seconds allowed for each recover and for each collection to become healthy.
    type: float
    default: 3600
extends_documentation_fragment: [qdrant_backup_config]
author: qdrant-ops team
"""

EXAMPLES = r"""
- name: Plan
  qdrant_restore:
    step: plan
    config_file: /etc/qdrant-ops/backup.yml
    targets: "{{ groups['qdrant'] }}"
  run_once: true
  register: restore_plan

- name: Download and verify this node's parts
  qdrant_restore:
    step: download
    config_file: /etc/qdrant-ops/backup.yml
    backup_id: "{{ restore_plan.backup_id }}"
    target: "{{ inventory_hostname }}"
    parts: "{{ restore_plan.parts }}"
    snapshots_path: /var/lib/qdrant/storage/snapshots
"""

RETURN = r"""
backup_id:
  description: The set being restored.
  returned: always
  type: str
collections:
  description: The collections restored.
  returned: step is plan or verify
  type: list
  elements: str
parts:
  description: Per part, the target host, source peer id, collection, object key, size and sha256.
  returned: step is plan
  type: list
  elements: dict
replace:
  description: Collections that exist and will be replaced (overwrite).
  returned: step is plan
  type: list
  elements: str
files:
  description: Files downloaded (C(download)) or recovered (C(recover)) on this host.
  returned: step is download or recover
  type: list
  elements: str
points:
  description: Exact point count per restored collection.
  returned: step is verify
  type: dict
seconds:
  description: Wall-clock seconds of the step.
  returned: always
  type: float
"""

import shutil
import time
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.qdrant_common import (
    BACKUP_CONFIG_ARGUMENT_SPEC,
    QdrantOpsError,
    load_backup_config,
    require_qdrant_ops,
)

try:
    from qdrant_ops import restore, s3
    from qdrant_ops.client import segment
except ImportError:
    restore = None  # reported by require_qdrant_ops

ARGUMENT_SPEC = {
    "step": {
        "type": "str",
        "required": True,
        "choices": ["plan", "download", "drop", "recover", "verify", "cleanup"],
    },
    "backup_id": {"type": "str"},
    "collections": {"type": "list", "elements": "str"},
    "targets": {"type": "list", "elements": "str"},
    "peer_map": {"type": "dict"},
    "overwrite": {"type": "bool", "default": False},
    "target": {"type": "str"},
    "parts": {"type": "list", "elements": "dict"},
    "snapshots_path": {"type": "path"},
    "wait_timeout": {"type": "float", "default": 3600.0},
    **BACKUP_CONFIG_ARGUMENT_SPEC,
}
REQUIRED = {
    "plan": ["targets"],
    "download": ["backup_id", "target", "parts", "snapshots_path"],
    "drop": ["backup_id"],
    "recover": ["backup_id", "target", "parts", "snapshots_path"],
    "verify": ["backup_id"],
    "cleanup": ["backup_id", "snapshots_path"],
}


def own_steps(params: dict, node_url: str) -> list:
    """This host's parts of the plan, as steps against its own node and snapshots_path."""
    target = restore.Target(node_url, Path(params["snapshots_path"]))
    directory = target.snapshots_dir / restore.RESTORE_DIR / params["backup_id"]
    return [
        restore.Step(
            target,
            int(p["peer_id"]),
            p["collection"],
            p["key"],
            int(p["size"]),
            p["sha256"],
            directory / f"{p['collection']}-{p['peer_id']}.snapshot",
        )
        for p in params["parts"]
        if p["target"] == params["target"]
    ]


def run(module, config) -> dict:
    params, step = module.params, module.params["step"]
    settings = config.settings
    s3_client = s3.make_client(settings.s3)
    with config.client() as client:
        if step == "plan":
            manifest = restore.choose_set(s3_client, settings, params["backup_id"])
            existing = client.collection_names()
            steps = restore.plan_restore(
                manifest, [restore.Target(name, Path("/")) for name in params["targets"]],
                collections=params["collections"] or (), existing=existing, target_version=client.version(),
                peer_map={int(k): v for k, v in (params["peer_map"] or {}).items()} or None,
                overwrite=params["overwrite"],
            )  # fmt: skip
            chosen = sorted({s.collection for s in steps})
            parts = [{"target": s.target.url, "peer_id": s.peer_id, "collection": s.collection, "key": s.key,
                      "size": s.size, "sha256": s.sha256} for s in steps]  # fmt: skip
            return {"changed": False, "backup_id": manifest["backup_id"], "collections": chosen, "parts": parts,
                    "replace": sorted(set(chosen) & set(existing))}  # fmt: skip
        if step == "verify":
            manifest = restore.choose_set(s3_client, settings, params["backup_id"])
            chosen = params["collections"] or sorted(manifest["collections"])
            problems = restore.verify_restore(client, manifest, chosen)
            if problems:
                module.fail_json(msg=f"restore of {params['backup_id']} differs from the backup: {'; '.join(problems)}",
                                 problems=problems)  # fmt: skip
            points = {name: client.count_points(name) for name in chosen}
            return {
                "changed": False,
                "backup_id": params["backup_id"],
                "collections": chosen,
                "points": points,
            }
        if step == "drop":
            existing = sorted(set(params["collections"] or ()) & set(client.collection_names()))
            if existing and not module.check_mode:
                for name in existing:
                    client.request("DELETE", f"/collections/{segment(name)}", params={"wait": "true"})
            return {"changed": bool(existing), "backup_id": params["backup_id"], "dropped": existing}
        steps = own_steps(params, config.node_url)
        if step == "download":
            if module.check_mode:
                return {"changed": bool(steps), "backup_id": params["backup_id"], "files": []}
            restore.cleanup(steps, params["backup_id"])  # leftovers of an interrupted run
            done = [restore.download_step(s3_client, settings.s3, s, params["backup_id"]) for s in steps]
            return {
                "changed": bool(done),
                "backup_id": params["backup_id"],
                "files": [str(s.local_path) for s in done],
            }
        # recover
        missing = [str(s.local_path) for s in steps if not s.local_path.is_file()]
        if missing and not module.check_mode:
            module.fail_json(msg=f"not downloaded: {', '.join(missing)}; run the download step first")
        if module.check_mode:
            return {"changed": bool(steps), "backup_id": params["backup_id"], "files": []}
        for item in steps:
            restore.recover_step(client, item, params["wait_timeout"])
        for name in dict.fromkeys(s.collection for s in steps):
            restore.wait_healthy(client, name, [config.node_url], params["wait_timeout"])
        return {
            "changed": bool(steps),
            "backup_id": params["backup_id"],
            "files": [str(s.local_path) for s in steps],
        }


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    require_qdrant_ops(module)
    started = time.monotonic()
    params = module.params
    missing = [name for name in REQUIRED[params["step"]] if params.get(name) in (None, [])]
    if missing:
        module.fail_json(msg=f"step={params['step']} needs {', '.join(missing)}")
    if params["step"] == "cleanup":
        directory = Path(params["snapshots_path"]) / restore.RESTORE_DIR / params["backup_id"]
        exists = directory.exists()
        if exists and not module.check_mode:
            shutil.rmtree(directory)
        module.exit_json(changed=exists, backup_id=params["backup_id"], seconds=0.0)
    try:
        config = load_backup_config({**params, "collections": None})  # restore selection, not backup's
        result = run(module, config)
    except QdrantOpsError as exc:
        module.fail_json(msg=str(exc), seconds=round(time.monotonic() - started, 3))
    module.exit_json(seconds=round(time.monotonic() - started, 3), **result)


if __name__ == "__main__":
    main()
