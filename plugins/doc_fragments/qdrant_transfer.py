"""Options of the modules that move or copy shards (qdrant_rebalance, qdrant_replicas)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  method:
    description: Shard transfer method.
    type: str
    choices: [stream_records, snapshot, wal_delta]
    default: stream_records
  transfer_timeout:
    description: Seconds allowed for each transfer (each batch of transfers that run at once) to finish.
    type: float
    default: 3600
"""
