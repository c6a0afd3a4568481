#!/usr/bin/python
"""Ansible module: restore collections from a qdrant-ops backup set (playbooks/restore.yml)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: qdrant_restore
short_description: Restore collections of a Qdrant cluster from a qdrant-ops backup set in S3
description:
  - Thin over C(qdrant_ops.restore.restore); run it once, on a host whose interpreter can import
    C(qdrant_ops) and reach S3 and every node's REST API (the first Qdrant node in playbooks/restore.yml).
  - Chooses the set (O(backup_id), default the newest sealed one) and refuses, changing nothing, an
    incomplete set, a part record whose object keys or checksums do not fit the set's layout, a Qdrant
    minor version other than the set's, collections that exist without O(overwrite), and a target with
    fewer peers than a collection's replication factor.
  - Sets made per shard (formats 2, 3 and 4) restore into a cluster of any size; the collection is created
    from the manifest and every replica of a shard recovers the shard's snapshot (priority C(no_sync)).
    With O(fetch_by=nodes) each node downloads its snapshots from S3 through short-lived presigned URLs
    and Qdrant checks each sha256 before it recovers anything; the nodes must reach S3.
  - To replace existing collections (O(overwrite)), for format 1 sets, and with O(fetch_by=restorer),
    this host downloads every snapshot into O(staging_dir) and checks each against the manifest's size and
    sha256 (refusing when the directory lacks the space), then uploads each to the node that recovers it;
    a collection is replaced only after the whole set has checked out.
  - Format 1 sets (a collection snapshot per node) restore node by node with priority C(snapshot),
    optionally with O(peer_map).
  - Ends when every replica is Active, the placement is balanced, and exact counts and sampled points
    match the manifest; the staging files are removed whatever happens.
  - In check mode the plan is returned and nothing is downloaded or changed.
  - Settings come from O(config_file) (the qdrant_backup role's file) with the options given here taking
    precedence.
options:
  backup_id:
    description: The set; default the newest sealed one.
    type: str
  allow_unsealed:
    description:
      - Restore the set O(backup_id) although it is not sealed. Its part records, each written by a
        single node, then decide what comes back; for sets the sealer refused or could not reach.
    type: bool
    default: false
  collections:
    description: Collections to restore (default every collection of the set).
    type: list
    elements: str
  nodes:
    description: REST URLs of every node of the target cluster, as this host reaches them.
    type: list
    elements: str
    required: true
  peer_map:
    description: Format 1 sets only, source peer id -> node URL; default the set's peers in order onto O(nodes).
    type: dict
  overwrite:
    description: Replace collections that already exist on the target.
    type: bool
    default: false
  staging_dir:
    description: Directory on this host for the downloaded snapshots when this host fetches them (needs
      free space for the set).
    type: path
    required: true
  fetch_by:
    description: Who downloads the snapshots from S3, see the description.
    type: str
    choices: [nodes, restorer]
    default: nodes
  parallel:
    description: Snapshots recovered at once (at most one per node).
    type: int
    default: 2
  wait_timeout:
    description: Seconds allowed for each recover and for each collection to become healthy.
    type: float
    default: 3600
extends_documentation_fragment:
  - qdrant_ops.qdrant.qdrant_module
  - qdrant_ops.qdrant.qdrant_backup_config
  - ansible.builtin.action_common_attributes
author: qdrant-ops team (@qdrant-ops)
version_added: 0.1.0
"""

EXAMPLES = r"""
- name: Restore the newest complete set
  qdrant_ops.qdrant.qdrant_restore:
    config_file: /etc/qdrant-ops/backup.yml
    nodes: ["http://10.0.1.10:6333", "http://10.0.2.10:6333", "http://10.0.3.10:6333"]
    staging_dir: /var/lib/qdrant/snapshots
  run_once: true
"""

RETURN = r"""
backup_id:
  description: The set restored.
  returned: always
  type: str
format:
  description: >-
    The set's format (1 a collection snapshot per node; 2 a snapshot per shard; 3 each node's parts
    under its own folder; 4 one folder per attempt, written once, sealed).
  returned: always
  type: int
collections:
  description: The collections restored.
  returned: always
  type: list
  elements: str
replace:
  description: Collections that existed and were (or, in check mode, would be) replaced.
  returned: always
  type: list
  elements: str
plan:
  description: Per snapshot, the collection, shard id (formats 2 to 4), source peer id, node (format 1) and bytes.
  returned: always
  type: list
  elements: dict
points:
  description: Exact point count per restored collection.
  returned: when not in check mode
  type: dict
download_seconds:
  description: Seconds to download and check every snapshot on this host (0 when the nodes fetched them).
  returned: when not in check mode
  type: float
fetch_by:
  description: Who downloaded the snapshots (restorer whenever collections are replaced or the set is format 1).
  returned: always
  type: str
recover_seconds:
  description: Seconds until every snapshot was recovered.
  returned: when not in check mode
  type: float
seconds:
  description: Wall-clock seconds of the restore.
  returned: always
  type: float
"""

from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.qdrant_ops.qdrant.plugins.module_utils.qdrant_common import (
    BACKUP_CONFIG_ARGUMENT_SPEC,
    load_backup_config,
    run_module,
)

ARGUMENT_SPEC = {
    "backup_id": {"type": "str"},
    "allow_unsealed": {"type": "bool", "default": False},
    "nodes": {"type": "list", "elements": "str", "required": True},
    "peer_map": {"type": "dict"},
    "overwrite": {"type": "bool", "default": False},
    "staging_dir": {"type": "path", "required": True},
    "parallel": {"type": "int", "default": 2},
    "fetch_by": {"type": "str", "choices": ["nodes", "restorer"], "default": "nodes"},
    "wait_timeout": {"type": "float", "default": 3600.0},
    **BACKUP_CONFIG_ARGUMENT_SPEC,
}


def run_restore(module) -> dict:
    from qdrant_ops.backup import restore, s3  # here: a missing library is reported by run_module

    params = module.params
    try:
        peer_map = {int(k): v for k, v in (params["peer_map"] or {}).items()}
    except ValueError:
        module.fail_json(msg=f"peer_map keys must be peer ids (numbers), got {sorted(params['peer_map'])}")
    config = load_backup_config({**params, "collections": None})  # restore selection, not backup's
    options = restore.RestoreOptions(
        nodes=tuple(params["nodes"]),
        staging_dir=Path(params["staging_dir"]),
        backup_id=params["backup_id"],
        collections=tuple(params["collections"] or ()),
        peer_map=peer_map or None,
        overwrite=params["overwrite"],
        dry_run=module.check_mode,
        parallel=params["parallel"],
        fetch_by=params["fetch_by"],
        timeout=params["wait_timeout"],
        allow_unsealed=params["allow_unsealed"],
    )
    with config.client() as client:
        report = restore.restore(client, s3.make_client(config.settings.s3), config.settings, options)
        if not module.check_mode:
            report["points"] = {name: client.count_points(name) for name in report["collections"]}
    report.pop("dry_run")
    return {"changed": True, **report}


def main() -> None:
    run_module(
        AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True), run_restore, connect=False
    )


if __name__ == "__main__":
    main()
