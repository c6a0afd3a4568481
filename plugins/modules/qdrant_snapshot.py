#!/usr/bin/python
"""Ansible module: one node's part of a cluster backup set in S3; seal and delete sets."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: qdrant_snapshot
short_description: Snapshot a Qdrant node's collections to S3 as part of a backup set; seal or delete sets
description:
  - C(state=present) snapshots, on the node at O(url), every shard of the selected collections that
    this node is the designated source of (one Active replica per shard, the same choice on every node),
    streams each snapshot to S3 (sha256 checked against Qdrant's checksum, size verified), deletes the
    local snapshot file and records the node's part; the set's manifest is rebuilt and says whether the
    set is complete (every peer's part succeeded, every shard has a snapshot).
    Run it on every Qdrant node with the same O(backup_id) to make one set.
  - A node whose part of O(backup_id) already succeeded is not snapshotted again (changed=false);
    part records are written once, so O(force=true) then fails.
  - C(state=sealed) seals every set whose parts are all in. This is the sealer's job, run where the
    prune timer runs, with a config that names the cluster's C(members). Only sealed sets are restorable.
  - C(state=absent) deletes the set O(backup_id). M(qdrant_ops.qdrant.qdrant_snapshot_info) lists the sets.
  - Settings come from O(config_file) (the file the qdrant_backup role writes) with the options given
    here taking precedence, or from the options alone.
  - Runs with an interpreter that can import the C(qdrant_ops) package (the qdrant_backup role's venv).
options:
  state:
    description: >-
      C(present) uploads this node's part, C(sealed) seals the sets that qualify,
      C(absent) deletes one set.
    type: str
    choices: [present, sealed, absent]
    default: present
  backup_id:
    description:
      - The set. Default for C(present) is the current UTC schedule slot; required for C(absent).
    type: str
  collections:
    description: Only these collections (default every collection).
    type: list
    elements: str
  force:
    description: Fail, rather than keep it, when this node's part of O(backup_id) exists.
    type: bool
    default: false
extends_documentation_fragment:
  - qdrant_ops.qdrant.qdrant_module
  - qdrant_ops.qdrant.qdrant_backup_config
  - ansible.builtin.action_common_attributes
author: qdrant-ops team (@qdrant-ops)
version_added: 0.1.0
"""

EXAMPLES = r"""
- name: Upload this node's part of tonight's set
  qdrant_ops.qdrant.qdrant_snapshot:
    config_file: /etc/qdrant-ops/backup.yml
    backup_id: "{{ backup_id }}"
  vars:
    ansible_python_interpreter: /opt/qdrant-ops/venv/bin/python


- name: Seal the sets whose parts are all in (where the prune timer runs)
  qdrant_ops.qdrant.qdrant_snapshot:
    state: sealed
    config_file: /etc/qdrant-ops/backup.yml

- name: Delete one set
  qdrant_ops.qdrant.qdrant_snapshot:
    state: absent
    config_file: /etc/qdrant-ops/backup.yml
    backup_id: 20261124T000000Z
"""

RETURN = r"""
backup_id:
  description: The set.
  returned: state is present or absent
  type: str
  sample: 20261124T000000Z
peer_id:
  description: Raft peer id of the node that was snapshotted.
  returned: state is present
  type: int
shards:
  description: Per collection and shard id, the object key, size in bytes, sha256 and upload seconds
    of the shard snapshots this node made (none for shards another node is the source of).
  returned: state is present
  type: dict
  sample: {"cities": {"4": {"key": "qdrant-backups/prod/20261124T000000Z/nodes/q1/20261124T000012Z-3fa2c9e1/cities/4.snapshot",
           "size": 104857600, "sha256": "9f86d0...", "seconds": 2.4}}}
set_status:
  description: >-
    C(unsealed) once every peer's part is present and verified, C(complete) once the sealer sealed
    the set, else C(incomplete).
  returned: state is present
  type: str
sealed:
  description: The sets this run sealed.
  returned: state is sealed and not check mode
  type: list
  elements: str
results:
  description: For each unsealed set, whether it was sealed and, if not, why (its problems).
  returned: state is sealed and not check mode
  type: list
  elements: dict
would_seal:
  description: The unsealed sets whose parts are all in (check mode seals nothing).
  returned: state is sealed and check mode
  type: list
  elements: str
seconds:
  description: Wall-clock seconds of the whole task.
  returned: always
  type: float
would_snapshot:
  description: The collections check mode would have snapshotted.
  returned: state is present and check mode
  type: list
  elements: str
deleted_objects:
  description: Objects deleted (0 when the set did not exist).
  returned: state is absent
  type: int
"""

import contextlib
from datetime import UTC, datetime

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.qdrant_ops.qdrant.plugins.module_utils.qdrant_common import (
    BACKUP_CONFIG_ARGUMENT_SPEC,
    load_backup_config,
    run_module,
)

with contextlib.suppress(ImportError):  # reported by run_module before any of these is used
    from qdrant_ops.backup import catalog, job, model, node_part, retention, s3

ARGUMENT_SPEC = {
    "state": {"type": "str", "choices": ["present", "sealed", "absent"], "default": "present"},
    "backup_id": {"type": "str"},
    "force": {"type": "bool", "default": False},
    **BACKUP_CONFIG_ARGUMENT_SPEC,
}


def present(module, config) -> dict:
    settings = config.settings
    s3_client = s3.make_client(settings.s3)
    node_part.check_bucket(s3_client, settings.s3.bucket, settings.layout.cluster_prefix())
    options = job.BackupOptions(
        backup_id=module.params["backup_id"] or model.slot_id(datetime.now(UTC), settings.slot_seconds),
        force=module.params["force"],
    )
    backup_id = options.backup_id
    if module.check_mode:
        with config.client() as client:
            peer_id = node_part.node_identity(client, config.node_url)[0]
            done = None if options.force else node_part.finished_part(s3_client, settings, backup_id, peer_id)
            wanted = set(settings.collections) or set(client.collection_names())
        kept = done is not None and wanted <= set(done.get("shards") or done.get("snapshots") or {})
        return {"changed": not kept, "backup_id": backup_id, "peer_id": peer_id,
                "would_snapshot": [] if kept else sorted(wanted)}  # fmt: skip
    part = job.run_backup(config, options)
    return {
        "changed": not part.get("skipped"),
        "backup_id": backup_id,
        "peer_id": part["peer_id"],
        "shards": part.get("shards") or {},
        "set_status": part["set_status"],
    }


def absent(module, config) -> dict:
    backup_id = module.params["backup_id"]
    if not backup_id:
        module.fail_json(
            msg="state=absent needs backup_id: the set to delete (qdrant_snapshot_info lists them)"
        )
    model.check_name(backup_id, "backup id")
    s3_client = s3.make_client(config.settings.s3)
    exists = any(s["backup_id"] == backup_id for s in catalog.list_sets(s3_client, config.settings))
    if not exists or module.check_mode:
        return {"changed": exists, "backup_id": backup_id, "deleted_objects": 0}
    return {
        "changed": True,
        "backup_id": backup_id,
        "deleted_objects": retention.delete_set(s3_client, config.settings, backup_id),
    }


def sealed(module, config) -> dict:
    if module.check_mode:
        waiting = [s["backup_id"] for s in catalog.list_sets(s3.make_client(config.settings.s3), config.settings)
                   if s["status"] == "unsealed"]  # fmt: skip
        return {"changed": bool(waiting), "would_seal": waiting}
    results = job.run_seal(config)
    newly = [r["backup_id"] for r in results if r["sealed"] and not r.get("already")]
    return {"changed": bool(newly), "sealed": newly, "results": results}


def run_state(module) -> dict:
    config = load_backup_config(module.params)
    state = module.params["state"]
    if state == "present":
        return present(module, config)
    if state == "sealed":
        return sealed(module, config)
    return absent(module, config)


def main() -> None:
    run_module(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True), run_state, connect=False)


if __name__ == "__main__":
    main()
