"""What every module of this collection shares: where it runs, what it needs, what it supports.

List it before ansible.builtin.action_common_attributes: ansible-core merges attributes so that the
module's own entries win over a fragment's, and an earlier fragment's over a later one's
(ansible/plugins/loader add_fragments, merge_fragment). A module that supports diff mode says so itself.
"""


class ModuleDocFragment:
    DOCUMENTATION = r"""
requirements:
  - qdrant-ops, the Python package in this repository's src/ (the controller's virtualenv, or the
    one the qdrant_backup role installs on the nodes), on the interpreter that runs the module
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
"""
