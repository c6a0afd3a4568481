#!/usr/bin/python
"""Ansible module: golden queries drawn into a file before a change and checked after it."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: qdrant_golden
short_description: Golden queries drawn before a change to a Qdrant cluster and checked after it
description:
  - C(state=drawn) draws searches from each collection's own points (seeded), records their exact top-10
    and the recall@10 the index reaches on them now, and writes them to O(path) on the host it runs on
    (mode 0600, the queries are vectors of the collection's points).
  - C(state=checked) runs them again and fails, naming the collection, when the exact search returns other
    ids or scores (the data differs) or the normal search finds fewer of them than the floor (the index
    differs). The floor is O(threshold), or for a source that did not reach it its own recall less three
    standard errors.
  - Changes nothing in the cluster; C(rolling_upgrade.yml) draws before the first restart and checks after
    the last.
  - Runs with an interpreter that can import the C(qdrant_ops) package.
options:
  state:
    description: Draw the queries into O(path), or check the cluster against them.
    type: str
    choices: [drawn, checked]
    required: true
  path:
    description: The file of golden queries.
    type: path
    required: true
  collections:
    description: Only these collections (state=drawn; default every collection).
    type: list
    elements: str
    default: []
  queries:
    description: Searches per collection (state=drawn).
    type: int
    default: 20
  threshold:
    description: The recall@10 that always passes (state=checked).
    type: float
    default: 0.95
extends_documentation_fragment:
  - qdrant_ops.qdrant.qdrant_module
  - qdrant_ops.qdrant.qdrant_connection
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: State C(drawn) draws and reports but writes no file; C(checked) only reads.
author: qdrant-ops team (@qdrant-ops)
version_added: 0.1.0
"""

EXAMPLES = r"""
- name: Draw golden queries before the change
  qdrant_ops.qdrant.qdrant_golden:
    url: "{{ qdrant_cluster_urls }}"
    api_key: "{{ qdrant_admin_api_key }}"
    state: drawn
    path: /tmp/golden-prod.json

- name: The cluster answers them alike after it
  qdrant_ops.qdrant.qdrant_golden:
    url: "{{ qdrant_cluster_urls }}"
    api_key: "{{ qdrant_admin_api_key }}"
    state: checked
    path: /tmp/golden-prod.json
"""

RETURN = r"""
collections:
  description:
    - state=drawn, per collection C(queries) and C(source_recall).
    - state=checked, per collection C(queries), C(recall), C(source_recall), C(floor), C(exact_differences)
      and C(passed).
  returned: always
  type: dict
problems:
  description: Why the check failed, one line per collection and cause (state=checked).
  returned: when state is checked
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.qdrant_ops.qdrant.plugins.module_utils.qdrant_common import (
    CONNECTION_ARGUMENT_SPEC,
    run_module,
)

ARGUMENT_SPEC = {
    **CONNECTION_ARGUMENT_SPEC,
    "state": {"type": "str", "choices": ["drawn", "checked"], "required": True},
    "path": {"type": "path", "required": True},
    "collections": {"type": "list", "elements": "str", "default": []},
    "queries": {"type": "int", "default": 20},
    "threshold": {"type": "float", "default": 0.95},
}


def converge(module, client) -> dict:
    from qdrant_ops.cluster import golden  # here: a missing library is reported by run_module

    params = module.params
    if params["state"] == "drawn":
        if not 1 <= params["queries"] <= 100:
            module.fail_json(msg=f"queries must be between 1 and 100, not {params['queries']}")
        drawn = golden.draw(client, params["collections"], count=params["queries"])
        if not module.check_mode:
            golden.write_file(params["path"], drawn)
        summary = {
            n: {"queries": len(g["queries"]), "source_recall": g["source_recall"]} for n, g in drawn.items()
        }
        return {"changed": False, "collections": summary}
    if not 0 < params["threshold"] <= 1:
        module.fail_json(msg=f"threshold must be a recall between 0 and 1, not {params['threshold']}")
    lines: list[str] = []
    results, problems = golden.check_all(
        client, golden.read_file(params["path"]), lines.append, threshold=params["threshold"]
    )
    if problems:
        module.fail_json(msg="; ".join(problems), collections=results, problems=problems, log=lines)
    return {"changed": False, "collections": results, "problems": [], "log": lines}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_module(module, converge)


if __name__ == "__main__":
    main()
