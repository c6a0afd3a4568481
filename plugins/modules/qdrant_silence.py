#!/usr/bin/python
"""Ansible module: an Alertmanager silence for the alerts planned work raises, or its end."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: qdrant_silence
short_description: Silence the alerts a planned operation on a Qdrant cluster raises, or end that silence
description:
  - With O(state=present), creates an Alertmanager silence for O(alerts) of one O(cluster) (and the extra
    O(labels), e.g. one host), ending by itself after O(duration_minutes) even when the play is killed.
    With O(state=absent), expires the silence O(silence_id) (one already ended is fine).
  - Planned work pages nobody for what it does on purpose, while every other alert keeps paging (a node
    that stops during a rebalance still raises QdrantNodeDown). See docs/monitoring.md, "Planned work".
  - An Alertmanager that refuses or does not answer is a warning, not a failure (monitoring being down
    must not stop a repair), unless O(required). An empty O(alertmanager_url) does nothing.
  - Never reports a change (a silence for the length of a run is bookkeeping, not a change to the cluster).
  - Runs with an interpreter that can import the C(qdrant_ops) package.
options:
  alertmanager_url:
    description: Alertmanager's base URL, e.g. C(https://10.0.1.20:9093). Empty for none.
    type: str
    required: true
  username:
    description: Alertmanager's basic-auth user.
    type: str
  password:
    description: Alertmanager's basic-auth password.
    type: str
  ca_cert:
    description: CA file Alertmanager's certificate is checked with.
    type: path
  state:
    description: C(present) creates a silence, C(absent) expires O(silence_id).
    type: str
    choices: [present, absent]
    default: present
  cluster:
    description: Value of the C(cluster) label the silence matches. Required with O(state=present).
    type: str
  alerts:
    description: Alert names it silences.
    type: list
    elements: str
    default: [QdrantDeadReplicas, QdrantReplicationBelowTarget]
  labels:
    description: "More labels the silenced alerts must carry exactly, e.g. C({host: qdrant-2})."
    type: dict
    default: {}
  duration_minutes:
    description: When the silence ends by itself.
    type: int
    default: 240
  comment:
    description: Why, shown in Alertmanager (name the playbook and what it does).
    type: str
    default: planned work by qdrant-ops
  silence_id:
    description: The silence to expire with O(state=absent).
    type: str
  required:
    description: Fail when Alertmanager refuses or does not answer.
    type: bool
    default: false
extends_documentation_fragment:
  - qdrant_ops.qdrant.qdrant_module
  - ansible.builtin.action_common_attributes
author: qdrant-ops team (@qdrant-ops)
version_added: 0.1.0
"""

EXAMPLES = r"""
- name: Silence replica alerts while the drain moves replicas
  qdrant_ops.qdrant.qdrant_silence:
    alertmanager_url: "{{ qdrant_alertmanager_url }}"
    username: monitoring
    password: "{{ monitoring_web_password }}"
    cluster: prod
    comment: "drain_node.yml: qdrant-3"
  register: silence

- name: End it
  qdrant_ops.qdrant.qdrant_silence:
    alertmanager_url: "{{ qdrant_alertmanager_url }}"
    password: "{{ monitoring_web_password }}"
    state: absent
    silence_id: "{{ silence.silence_id }}"
  when: silence.silence_id
"""

RETURN = r"""
silence_id:
  description: The silence created (empty in check mode, without an Alertmanager, or when it refused).
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.qdrant_ops.qdrant.plugins.module_utils.qdrant_common import run_module

ARGUMENT_SPEC = {
    "alertmanager_url": {"type": "str", "required": True},
    "username": {"type": "str"},
    "password": {"type": "str", "no_log": True},
    "ca_cert": {"type": "path"},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "cluster": {"type": "str"},
    "alerts": {
        "type": "list",
        "elements": "str",
        "default": ["QdrantDeadReplicas", "QdrantReplicationBelowTarget"],
    },
    "labels": {"type": "dict", "default": {}},
    "duration_minutes": {"type": "int", "default": 240},
    "comment": {"type": "str", "default": "planned work by qdrant-ops"},
    "silence_id": {"type": "str"},
    "required": {"type": "bool", "default": False},
}


def silence(module) -> dict:
    from qdrant_ops import silences  # here: a missing library is reported by run_module

    params = module.params
    if not params["alertmanager_url"] or module.check_mode:
        return {"changed": False, "silence_id": ""}
    manager = silences.Alertmanager(params["alertmanager_url"], params["username"], params["password"],
                                    params["ca_cert"])  # fmt: skip
    try:
        if params["state"] == "absent":
            silences.expire(manager, params["silence_id"])
            return {"changed": False, "silence_id": params["silence_id"]}
        labels = {name: str(value) for name, value in params["labels"].items()}
        found = silences.add(manager, params["cluster"], params["alerts"], params["duration_minutes"] * 60,
                             comment=params["comment"], labels=labels)  # fmt: skip
        return {"changed": False, "silence_id": found}
    except silences.SilenceError as exc:
        if params["required"]:
            raise
        module.warn(f"no silence: {exc}; the planned work's alerts may page")
        return {"changed": False, "silence_id": ""}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=[("state", "present", ["cluster"]), ("state", "absent", ["silence_id"])],
        supports_check_mode=True,
    )
    run_module(module, silence, connect=False)


if __name__ == "__main__":
    main()
