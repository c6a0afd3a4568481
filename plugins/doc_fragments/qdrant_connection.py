"""Options every qdrant_* module that talks to the cluster directly shares."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  url:
    description: Qdrant node URLs; any node answers, the others are tried when one is down.
    type: list
    elements: str
    required: true
    aliases: [urls]
  api_key:
    description: Qdrant API key (the read-only key is enough for modules that only read).
    type: str
  validate_certs:
    description: Verify TLS certificates.
    type: bool
    default: true
  ca_cert:
    description: CA bundle that signed the nodes' certificates.
    type: path
  timeout:
    description: Seconds per request.
    type: float
    default: 30.0
"""
