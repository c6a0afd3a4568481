#!/usr/bin/python
"""Ansible module: make a cluster the warm standby of another, or promote it."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: qdrant_standby
short_description: Set up a warm standby Qdrant cluster, or promote it to take writes
description:
  - With O(state=standby), marks the cluster in O(url) as the standby of the cluster in O(primary_url)
    (one point in the collection C(qdrant_ops_standby)) and creates the primary's collections on it with
    their config, shard number and payload indexes. Refuses a cluster that holds any of those collections
    without the marker (a cluster in use) or that was promoted. Nothing is written to the primary.
    The syncs themselves run on the standby's C(qdrant-standby-sync.timer) (role C(qdrant_backup), C(tasks_from=standby); playbooks/standby.yml).
  - With O(state=promoted), first brings every standby replica of a shard to the shard's first replica (a
    sync cut short by the primary's loss may have updated only that one), then marks the standby promoted,
    so no sync touches it again (stop the sync timer first), and reports per collection its count, the primary's count when the last completed sync began,
    the lag at promotion and, when O(primary_url) is given and still answers, the primary's count now.
  - Idempotent; check mode reports what would be created or the promotion report, and writes nothing.
  - Runs with an interpreter that can import the C(qdrant_ops) package.
options:
  state:
    description: C(standby) sets up the standby; C(promoted) makes it take writes.
    type: str
    choices: [standby, promoted]
    default: standby
  primary_url:
    description:
      - Every primary node's REST URL. Required with O(state=standby); with O(state=promoted) optional (the
        primary may be gone) and used only to report its count.
    type: list
    elements: str
    default: []
  primary_api_key:
    description: The primary's API key (read-only suffices for O(state=standby)).
    type: str
  collections:
    description: Only these collections (default every collection of the primary).
    type: list
    elements: str
    default: []
  promote_timeout:
    description:
      - With O(state=promoted), the longest one round of shard recoveries may take, in seconds (the
        standby's replicas brought to each shard's first replica). O(timeout) is per request.
    type: float
    default: 3600.0
extends_documentation_fragment:
  - qdrant_ops.qdrant.qdrant_module
  - qdrant_ops.qdrant.qdrant_connection
  - ansible.builtin.action_common_attributes
author: qdrant-ops team (@qdrant-ops)
version_added: 0.1.0
"""

EXAMPLES = r"""
- name: Make the second cluster the standby of the first
  qdrant_ops.qdrant.qdrant_standby:
    url: ["http://10.1.1.10:6333", "http://10.1.2.10:6333", "http://10.1.3.10:6333"]
    api_key: "{{ standby_api_key }}"
    primary_url: ["http://10.0.1.10:6333", "http://10.0.2.10:6333", "http://10.0.3.10:6333"]
    primary_api_key: "{{ primary_api_key }}"

- name: Promote it (the primary region is gone)
  qdrant_ops.qdrant.qdrant_standby:
    url: ["http://10.1.1.10:6333"]
    api_key: "{{ standby_api_key }}"
    state: promoted
"""

RETURN = r"""
marker_created:
  description: Whether the standby marker was created (O(state=standby)).
  returned: when state is standby
  type: bool
created:
  description: Collections created on the standby (O(state=standby); to be created in check mode).
  returned: when state is standby
  type: list
  elements: str
synced_collections:
  description: Every collection the standby copies (what playbooks/standby.yml scopes its token to).
  returned: when state is standby
  type: list
  elements: str
already_promoted:
  description: The cluster was promoted before; nothing changed.
  returned: when state is promoted
  type: bool
reconciled:
  description: Standby replicas that differed from their shard's first replica and were brought to it.
  returned: when state is promoted
  type: bool
collections:
  description:
    - Per collection standby_points, primary_points_at_sync, primary_points_now (null when the primary did
      not answer), lag_seconds and behind_last_sync (fewer points than the primary had at the last sync).
    - golden, the golden queries drawn on the primary run on the standby - queries, recall, source_recall
      (the primary's), floor, exact_differences (writes since the draw), passed (false when the standby's
      index finds too few of their exact results).
  returned: when state is promoted
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.qdrant_ops.qdrant.plugins.module_utils.qdrant_common import (
    CONNECTION_ARGUMENT_SPEC,
    run_module,
)

ARGUMENT_SPEC = {
    **CONNECTION_ARGUMENT_SPEC,
    "state": {"type": "str", "choices": ["standby", "promoted"], "default": "standby"},
    "primary_url": {"type": "list", "elements": "str", "default": []},
    "primary_api_key": {"type": "str", "no_log": True},
    "collections": {"type": "list", "elements": "str", "default": []},
    "promote_timeout": {"type": "float", "default": 3600.0},
}


def primary_client(module, *, may_be_gone: bool):
    from qdrant_ops.client import ClusterClient

    params = module.params
    # A primary that may be gone is asked once, briefly: promotion must not wait on a dead region.
    quick = {"retries": 0, "timeout": 5.0} if may_be_gone else {"timeout": params["timeout"]}
    return ClusterClient(params["primary_url"], params["primary_api_key"], verify=params["validate_certs"],
                         ca_file=params["ca_cert"], **quick)  # fmt: skip


def converge(module, standby_client) -> dict:
    from qdrant_ops.cluster import standby  # here: a missing library is reported by run_module

    params = module.params
    if params["state"] == "standby":
        if not params["primary_url"]:
            module.fail_json(msg="state=standby needs primary_url: every primary node's REST URL")
        with primary_client(module, may_be_gone=False) as primary:
            options = standby.StandbyOptions(
                collections=tuple(params["collections"]), dry_run=module.check_mode
            )
            result = standby.init(primary, standby_client, options)
        return {"changed": result["marker_created"] or bool(result["created"]), **result}
    primary = primary_client(module, may_be_gone=True) if params["primary_url"] else None
    try:
        options = standby.StandbyOptions(timeout=params["promote_timeout"], dry_run=module.check_mode)
        report = standby.promote(standby_client, primary, options)
    finally:
        if primary is not None:
            primary.close()
    return {"changed": not report["already_promoted"], **report}


def main() -> None:
    run_module(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True), converge)


if __name__ == "__main__":
    main()
