#!/usr/bin/python
"""Ansible module: the backup sets of a cluster in S3 (read only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: qdrant_snapshot_info
short_description: List a Qdrant cluster's backup sets in S3
description:
  - Returns the cluster's backup sets, newest first, with each set's status (C(complete) once sealed,
    C(unsealed), C(incomplete)), collections, peers, bytes and problems, as C(qdrant-ops backup list)
    shows them.
  - Settings come from O(config_file) (the file the qdrant_backup role writes) with the options given
    here taking precedence, or from the options alone. Only the S3 settings and the cluster name are used.
  - Reads S3 only; it changes nothing.
extends_documentation_fragment:
  - qdrant_ops.qdrant.qdrant_module
  - qdrant_ops.qdrant.qdrant_backup_config
  - ansible.builtin.action_common_attributes
author: qdrant-ops team (@qdrant-ops)
version_added: 0.1.0
attributes:
  diff_mode:
    support: N/A
"""

EXAMPLES = r"""
- name: List the sets
  qdrant_ops.qdrant.qdrant_snapshot_info:
    config_file: /etc/qdrant-ops/backup.yml
  register: backups

- name: The newest restorable set
  ansible.builtin.debug:
    msg: "{{ (backups.sets | selectattr('status', 'equalto', 'complete') | first).backup_id }}"
"""

RETURN = r"""
sets:
  description: The cluster's sets, newest first, with status, collections, peers, bytes and problems.
  returned: always
  type: list
  elements: dict
seconds:
  description: Wall-clock seconds of the whole task.
  returned: always
  type: float
"""

import contextlib

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.qdrant_ops.qdrant.plugins.module_utils.qdrant_common import (
    BACKUP_CONFIG_ARGUMENT_SPEC,
    load_backup_config,
    run_module,
)

with contextlib.suppress(ImportError):  # reported by run_module before any of these is used
    from qdrant_ops.backup import catalog, s3

# A listing is of whole sets: the collections a node backs up do not narrow it.
ARGUMENT_SPEC = {
    option: spec for option, spec in BACKUP_CONFIG_ARGUMENT_SPEC.items() if option != "collections"
}


def list_sets(module) -> dict:
    settings = load_backup_config(module.params).settings
    return {"changed": False, "sets": catalog.list_sets(s3.make_client(settings.s3), settings)}


def main() -> None:
    run_module(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True), list_sets, connect=False)


if __name__ == "__main__":
    main()
