#!/usr/bin/python
"""Ansible module: spread shard replicas evenly over the Qdrant peers, or drain one peer."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: qdrant_rebalance
short_description: Spread Qdrant shard replicas evenly over the peers, or move every replica off one peer
description:
  - Plans from the live placement of every collection (C(GET /collections/{c}/cluster)) a list of
    C(move_shard) batches that spreads every shard's replicas over the O(zones) and leaves each collection's
    replicas per peer differing by at most one (as far as the zones allow),
    never lowers a shard's replica count, never puts two replicas of a shard on one peer, and keeps each
    peer within its incoming and outgoing transfer limits per batch; applies it batch by batch, waiting
    for each transfer, and checks at the end that every replica is Active and the balance holds.
  - With O(drain) (or O(drain_url)), every replica on that peer is moved to the others first; refused when
    the others cannot hold a shard at its replica count. With O(remove_drained), the emptied peer is then
    removed from the cluster without force (Qdrant drops nothing, the peer holds no replica).
  - The plan is recomputed on every run, so an interrupted run is finished by running it again; a
    balanced cluster reports no change. Check mode returns the plan.
  - Runs with an interpreter that can import the C(qdrant_ops) package.
options:
  drain:
    description: Peer id to empty before it leaves the cluster.
    type: int
  drain_url:
    description: REST URL of the node to empty, instead of its peer id in O(drain).
    type: str
  remove_drained:
    description: Remove the drained peer from the cluster once it holds no replica.
    type: bool
    default: false
  incoming_limit:
    description: Transfers a peer receives at once (Qdrant's incoming_shard_transfers_limit).
    type: int
    default: 1
  outgoing_limit:
    description: Transfers a peer sends at once (Qdrant's outgoing_shard_transfers_limit).
    type: int
    default: 1
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
- name: Spread the shards over every node (after adding nodes)
  qdrant_ops.qdrant.qdrant_rebalance:
    url: "{{ qdrant_api_urls }}"
    api_key: "{{ qdrant_api_key }}"

- name: Empty a node before removing it
  qdrant_ops.qdrant.qdrant_rebalance:
    url: "{{ qdrant_api_urls }}"
    api_key: "{{ qdrant_api_key }}"
    drain: 381894127
"""

RETURN = r"""
batches:
  description: The moves done (or planned in check mode), in batches; each collection, shard_id, from_peer, to_peer.
  returned: always
  type: list
  elements: list
moves:
  description: Number of moves.
  returned: always
  type: int
drained_peer:
  description: Peer id of the drained node.
  returned: with drain or drain_url
  type: int
removed_peer:
  description: Whether the drained peer was (in check mode, would be) removed; false when it was already gone.
  returned: with remove_drained
  type: bool
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
    "drain": {"type": "int"},
    "drain_url": {"type": "str"},
    "remove_drained": {"type": "bool", "default": False},
    "incoming_limit": {"type": "int", "default": 1},
    "outgoing_limit": {"type": "int", "default": 1},
    **TRANSFER_ARGUMENT_SPEC,
    **ZONES_ARGUMENT_SPEC,
}


def balance(module, client) -> dict:
    from qdrant_ops.cluster import rebalance, zones  # here: a missing library is reported by run_module

    params = module.params
    drain = rebalance.peer_of(client, params["drain_url"]) if params["drain_url"] else params["drain"]
    options = rebalance.RebalanceOptions(
        drain=drain,
        remove_drained=params["remove_drained"],
        method=params["method"],
        incoming_limit=params["incoming_limit"],
        outgoing_limit=params["outgoing_limit"],
        timeout=params["transfer_timeout"],
        dry_run=module.check_mode,
    )
    plan, removed = rebalance.run(client, options, zones=zones.resolve(client, params["zones"]))
    result = {} if drain is None else {"drained_peer": drain}
    if removed is not None:
        result["removed_peer"] = removed
    moves = sum(len(batch) for batch in plan)
    result.update(moves=moves, batches=[[dataclasses.asdict(m) for m in batch] for batch in plan])
    return {"changed": moves > 0 or bool(result.get("removed_peer")), **result}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC, supports_check_mode=True, mutually_exclusive=[("drain", "drain_url")],
        required_if=[("remove_drained", True, ("drain", "drain_url"), True)],
    )  # fmt: skip
    run_module(module, balance)


if __name__ == "__main__":
    main()
