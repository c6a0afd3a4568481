#!/usr/bin/python
"""Ansible module: read the state of a Qdrant cluster."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: qdrant_cluster_info
short_description: Peers, raft state, collections, exact point counts and shard placement of a Qdrant cluster
description:
  - Reads C(GET /cluster), C(GET /collections), C(GET /collections/{name}/cluster) and exact counts.
  - Never changes anything.
  - Runs with an interpreter that can import the C(qdrant_ops) package.
options:
  collections:
    description: Include collections with exact counts and shard placement.
    type: bool
    default: true
extends_documentation_fragment:
  - qdrant_ops.qdrant.qdrant_module
  - qdrant_ops.qdrant.qdrant_connection
  - qdrant_ops.qdrant.qdrant_zones
  - ansible.builtin.action_common_attributes
author: qdrant-ops team (@qdrant-ops)
version_added: 0.1.0
"""

EXAMPLES = r"""
- name: Read the cluster state
  qdrant_ops.qdrant.qdrant_cluster_info:
    url: ["http://10.0.1.10:6333", "http://10.0.2.10:6333"]
    api_key: "{{ qdrant_read_only_api_key }}"
  register: cluster

- name: Fail when a replica is not Active
  ansible.builtin.assert:
    that: cluster.collections | map(attribute='unhealthy_replicas') | flatten | length == 0
"""

RETURN = r"""
version:
  description: Qdrant version of the node that answered.
  returned: always
  type: str
  sample: 1.18.3
cluster_enabled:
  description: Whether distributed mode is on.
  returned: always
  type: bool
peers:
  description: Peers with their id and p2p URI.
  returned: when cluster_enabled
  type: list
  elements: dict
  sample: [{"id": 381894127, "uri": "http://10.0.1.10:6335/"}]
leader:
  description: Peer id of the raft leader, null when there is none.
  returned: when cluster_enabled
  type: int
term:
  description: Raft term.
  returned: when cluster_enabled
  type: int
commit:
  description: Raft commit index.
  returned: when cluster_enabled
  type: int
pending_operations:
  description: Consensus operations not yet applied on the answering peer.
  returned: when cluster_enabled
  type: int
collections:
  description: Per collection, its status, exact point count, shard count, replication factor and every replica.
  returned: when collections=true
  type: list
  elements: dict
  sample:
    - name: cities
      status: green
      points_exact: 1000000
      shard_number: 6
      replication_factor: 2
      replicas: [{"shard_id": 0, "peer_id": 381894127, "state": "Active"}]
      unhealthy_replicas: []
shared_zones:
  description: Shards whose replicas share a zone, C(avoidable) (a rebalance with the same zones spreads them) and
    C(too_few_zones) (as even as the zones allow); each entry names the collection, shard and zones.
  returned: when cluster_enabled and collections=true
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.qdrant_ops.qdrant.plugins.module_utils.qdrant_common import (
    CONNECTION_ARGUMENT_SPEC,
    ZONES_ARGUMENT_SPEC,
    run_module,
)

try:
    from qdrant_ops.cluster import zones
    from qdrant_ops.cluster.health import cluster_overview
except ImportError:
    cluster_overview = zones = None  # reported by client_from_module


ARGUMENT_SPEC = {
    **CONNECTION_ARGUMENT_SPEC,
    **ZONES_ARGUMENT_SPEC,
    "collections": {"type": "bool", "default": True},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_module(
        module,
        lambda m, client: {
            "changed": False,
            **cluster_overview(
                client,
                include_collections=m.params["collections"],
                zones=zones.resolve(client, m.params["zones"], skip_silent=True),
            ),
        },
    )


if __name__ == "__main__":
    main()
