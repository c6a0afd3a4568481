#!/usr/bin/python
"""Ansible module: a Qdrant collection and its payload indexes, declared."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: qdrant_collection
short_description: Create, change in place, recreate or delete a Qdrant collection and its payload indexes
description:
  - Reads the collection, compares only the options given with what Qdrant has, and applies the
    difference. What Qdrant can change on a live collection (HNSW, optimizer, quantization and
    strict-mode settings, C(on_disk), replication and write consistency factors, payload indexes) is
    changed in place with C(PATCH). What it cannot (vector names, sizes, distance, datatype, shard
    number, sparse vector names) fails with a message unless O(recreate=true), which deletes the
    collection and all its points first.
  - Bad input (unknown distance or index type, non-positive sizes or shard numbers, a replication
    factor above the node count) fails before any request that changes something.
  - Runs with an interpreter that can import the C(qdrant_ops) package.
options:
  name:
    description: Collection name.
    type: str
    required: true
  state:
    description: Whether the collection should exist. V(absent) deletes it with all its points.
    type: str
    choices: [present, absent]
    default: present
  vectors:
    description:
      - Dense vectors. One unnamed vector as C({size, distance, on_disk, hnsw_config, quantization_config, datatype}),
        named vectors as a mapping from name to such parameters, or omitted / C({}) for a collection
        without dense vectors (payload-only points).
      - C(distance) is one of Cosine, Euclid, Dot, Manhattan (case-insensitive).
    type: dict
  sparse_vectors:
    description: Sparse vectors, a mapping from name to C({index, modifier}).
    type: dict
  shard_number:
    description: Number of shards; Qdrant's default is the number of peers at creation. Cannot change later.
    type: int
  replication_factor:
    description:
      - Replicas per shard; at most the number of nodes.
      - Changing it on an existing collection changes the config only; Qdrant does not add replicas by itself.
    type: int
  write_consistency_factor:
    description: Replicas that must acknowledge a write; at most O(replication_factor).
    type: int
  on_disk_payload:
    description: Keep payloads on disk (deprecated by Qdrant 1.19 in favour of O(payload)).
    type: bool
  payload:
    description:
      - 'Qdrant 1.19 and later: payload storage placement, C({"memory": "cold"}) or C({"memory": "cached"}).'
      - C(memory) placements (C(cold), C(cached), C(pinned)) are accepted in vector, HNSW, quantization,
        sparse and payload index parameters too; against an older Qdrant the module fails before any change.
    type: dict
  hnsw_config:
    description: HNSW index settings (m, ef_construct, full_scan_threshold, on_disk, ...).
    type: dict
  optimizers_config:
    description: Optimizer settings (indexing_threshold, default_segment_number, ...).
    type: dict
  quantization_config:
    description: 'Quantization, for example C({"scalar": {"type": "int8", "always_ram": true}}).'
    type: dict
  strict_mode_config:
    description: 'Strict-mode limits, for example C({"enabled": true, "max_query_limit": 1000}).'
    type: dict
  payload_indexes:
    description:
      - Payload indexes as a mapping from field to a type (keyword, integer, float, geo, text, bool,
        datetime, uuid) or to C({type, ...params}).
      - A declared index whose type or parameters differ is dropped and created again.
    type: dict
  prune_payload_indexes:
    description: Drop payload indexes that O(payload_indexes) does not declare.
    type: bool
    default: false
  recreate:
    description: Allow deleting and recreating the collection (losing its points) to change what cannot change in place.
    type: bool
    default: false
  fix_zones:
    description:
      - After creating the collection, move replicas that share an availability zone needlessly (Qdrant
        places by counts only), with the rebalance planner and O(zones). Nothing happens without zones.
    type: bool
    default: true
notes:
  - Supports check mode and diff mode.
extends_documentation_fragment:
  - qdrant_ops.qdrant.qdrant_module
  - qdrant_ops.qdrant.qdrant_connection
  - qdrant_ops.qdrant.qdrant_zones
  - ansible.builtin.action_common_attributes
author: qdrant-ops team (@qdrant-ops)
version_added: 0.1.0
attributes:
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Cities with a 384-d vector, two replicas and payload indexes
  qdrant_ops.qdrant.qdrant_collection:
    url: "{{ qdrant_api_urls }}"
    api_key: "{{ qdrant_api_key }}"
    name: cities
    vectors: {size: 384, distance: Cosine, on_disk: true}
    shard_number: 6
    replication_factor: 2
    hnsw_config: {m: 16, ef_construct: 100}
    payload_indexes:
      city: keyword
      population: {type: integer, range: true}

- name: Payload-only records (id, city, location)
  qdrant_ops.qdrant.qdrant_collection:
    url: "{{ qdrant_api_urls }}"
    api_key: "{{ qdrant_api_key }}"
    name: places
    payload_indexes: {city: keyword, location: geo}

- name: Remove a collection and its points
  qdrant_ops.qdrant.qdrant_collection:
    url: "{{ qdrant_api_urls }}"
    api_key: "{{ qdrant_api_key }}"
    name: scratch
    state: absent
"""

RETURN = r"""
zone_moves:
  description: Replicas moved after the creation so that no shard's replicas share a zone needlessly.
  returned: always
  type: int
action:
  description: What was done (or would be, in check mode).
  returned: always
  type: str
  sample: update
  choices: [create, update, recreate, delete, none]
patch:
  description: The body sent with C(PATCH /collections/{name}) for in-place changes.
  returned: always
  type: dict
  sample: {"hnsw_config": {"m": 32}}
indexes_created:
  description: Payload index fields created.
  returned: always
  type: list
  elements: str
indexes_deleted:
  description: Payload index fields dropped.
  returned: always
  type: list
  elements: str
diff:
  description: The collection as a spec before and after (returned with --diff).
  returned: when diff mode is on
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.qdrant_ops.qdrant.plugins.module_utils.qdrant_common import (
    CONNECTION_ARGUMENT_SPEC,
    ZONES_ARGUMENT_SPEC,
    run_module,
)

try:
    from qdrant_ops.cluster import collections, zones
    from qdrant_ops.cluster.collection_spec import SPEC_KEYS
except ImportError:
    SPEC_KEYS, collections, zones = set(), None, None  # reported by client_from_module

ARGUMENT_SPEC = {
    **CONNECTION_ARGUMENT_SPEC,
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "vectors": {"type": "dict"},
    "sparse_vectors": {"type": "dict"},
    "shard_number": {"type": "int"},
    "replication_factor": {"type": "int"},
    "write_consistency_factor": {"type": "int"},
    "on_disk_payload": {"type": "bool"},
    "payload": {"type": "dict"},
    "hnsw_config": {"type": "dict"},
    "optimizers_config": {"type": "dict"},
    "quantization_config": {"type": "dict"},
    "strict_mode_config": {"type": "dict"},
    "payload_indexes": {"type": "dict"},
    "prune_payload_indexes": {"type": "bool", "default": False},
    "recreate": {"type": "bool", "default": False},
    "fix_zones": {"type": "bool", "default": True},
    **ZONES_ARGUMENT_SPEC,
}


def apply(module, client) -> dict:
    params = module.params
    spec = {key: params[key] for key in SPEC_KEYS if params.get(key) is not None}
    options = collections.ApplyOptions(
        state=params["state"],
        recreate=params["recreate"],
        prune_payload_indexes=params["prune_payload_indexes"],
        fix_zones=params["fix_zones"],
        dry_run=module.check_mode,
    )
    (plan,), moved = collections.apply_specs(
        client, [spec], options, zones=lambda: zones.resolve(client, params["zones"])
    )
    for warning in plan.warnings:
        module.warn(warning)
    result = {
        "changed": plan.changed,
        "action": plan.action,
        "patch": plan.patch,
        "indexes_created": sorted(plan.indexes_to_create),
        "indexes_deleted": plan.indexes_to_delete,
        "zone_moves": sum(map(len, moved)),
    }
    if module._diff:
        result["diff"] = {"before": plan.before, "after": plan.after}
    return result


def main() -> None:
    run_module(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True), apply)


if __name__ == "__main__":
    main()
