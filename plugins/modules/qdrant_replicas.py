#!/usr/bin/python
"""Ansible module: remove dead peers and bring every shard back to its replication factor."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: qdrant_replicas
short_description: Remove dead Qdrant peers and replicate shards back to their replication factor
description:
  - Force-removes the peers in O(remove_peers) (their replicas are dropped; Qdrant refuses without force
    while a peer holds shards) after checking each is dead (not the raft leader, not answering as itself
    on its REST port) and, unless O(allow_data_loss), that each of its shards has an Active replica on
    another peer; nothing is removed when any check fails. Then it replicates every shard that has fewer replicas than its collection's
    replication factor from an Active replica, one transfer at a time, and checks that every replica is
    Active and every shard at its factor. Qdrant does not do this by itself.
  - Idempotent; check mode returns the plan.
  - Runs with an interpreter that can import the C(qdrant_ops) package.
options:
  remove_peers:
    description: Peer ids of dead nodes to remove from the cluster first.
    type: list
    elements: int
    default: []
  allow_data_loss:
    description:
      - Remove a peer even when it holds the only Active replica of a shard (that data is deleted). A peer
        that is the raft leader or still answers as itself is never removed.
    type: bool
    default: false
  replicate:
    description:
      - Replicate shards back to their replication factor after removing O(remove_peers). C(false) only
        removes, e.g. before the replacement node has joined, so that the new replicas go to it.
    type: bool
    default: true
  prefer_peer:
    description: Put new replicas on this peer first (the replacement node).
    type: int
extends_documentation_fragment:
  - qdrant_ops.qdrant.qdrant_module
  - qdrant_ops.qdrant.qdrant_connection
  - qdrant_ops.qdrant.qdrant_transfer
  - qdrant_ops.qdrant.qdrant_zones
  - ansible.builtin.action_common_attributes
author: qdrant-ops team (@qdrant-ops)
version_added: 0.1.0
"""

EXAMPLES = r"""
- name: Remove the dead peer and refill the replacement
  qdrant_ops.qdrant.qdrant_replicas:
    url: ["http://10.0.1.10:6333"]
    api_key: "{{ qdrant_api_key }}"
    remove_peers: [381894127]
    prefer_peer: "{{ new_peer_id }}"
"""

RETURN = r"""
removed_peers:
  description: Peers removed (those already gone are left out).
  returned: always
  type: list
  elements: int
replications:
  description: Replications done (or planned in check mode), each collection, shard_id, from_peer, to_peer.
  returned: always
  type: list
  elements: dict
"""

import dataclasses

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.qdrant_ops.qdrant.plugins.module_utils.qdrant_common import (
    CONNECTION_ARGUMENT_SPEC,
    TRANSFER_ARGUMENT_SPEC,
    ZONES_ARGUMENT_SPEC,
    run_module,
)

ARGUMENT_SPEC = {
    **CONNECTION_ARGUMENT_SPEC,
    "remove_peers": {"type": "list", "elements": "int", "default": []},
    "replicate": {"type": "bool", "default": True},
    "allow_data_loss": {"type": "bool", "default": False},
    "prefer_peer": {"type": "int"},
    **TRANSFER_ARGUMENT_SPEC,
    **ZONES_ARGUMENT_SPEC,
}


def repair(module, client) -> dict:
    from qdrant_ops.cluster import replicas, zones  # here: a missing library is reported by run_module

    params = module.params
    options = replicas.RepairOptions(
        remove=tuple(params["remove_peers"]),
        replicate=params["replicate"],
        allow_data_loss=params["allow_data_loss"],
        prefer=params["prefer_peer"],
        method=params["method"],
        timeout=params["transfer_timeout"],
        dry_run=module.check_mode,
    )
    peer_zones = zones.resolve(client, params["zones"], skip_silent=True)  # the dead node does not answer
    removed, plan = replicas.repair(client, options, zones=peer_zones)
    return {
        "changed": bool(removed or plan),
        "removed_peers": removed,
        "replications": [dataclasses.asdict(item) for item in plan],
    }


def main() -> None:
    run_module(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True), repair)


if __name__ == "__main__":
    main()
