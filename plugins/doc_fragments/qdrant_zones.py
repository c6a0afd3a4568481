"""The zones option of the modules that place replicas or report on placement."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  zones:
    description:
      - Availability zone per peer, keyed by peer id or by node REST URL (the cluster_defaults role
        builds it from each host's C(qdrant_zone) as C(qdrant_node_zones)).
      - Every shard's replicas are kept in distinct zones whenever the zones allow it, else spread as evenly
        as their sizes allow; a peer without a zone counts as a zone of its own.
    type: dict
    default: {}
"""
