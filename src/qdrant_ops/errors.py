"""Exceptions raised by qdrant_ops. The CLI and the Ansible modules turn them into a message and a
non-zero exit / fail_json at the edge; nothing below the edge prints or exits."""


class QdrantOpsError(Exception):
    """Base class: the message names the problem and, where there is one, the fix."""


class ConfigError(QdrantOpsError):
    """Bad input from the user (arguments, files, inventory)."""
