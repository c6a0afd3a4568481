"""Backups to S3 and restores (docs/qdrant-behaviour.md §3): model (ids, names, the key layout,
settings), node_part (one node's snapshots and part record), catalog (sets and their manifests),
retention, job (the configured backup and prune runs), s3, metrics and restore.

Every node runs the same job
in the same schedule slot; each uploads one snapshot of every shard it is the designated source of
(one Active replica per shard, chosen the same way on every node), then a part record. The set's
manifest is always built from the part records when read, never stored by a node.

One replica per shard, not one collection snapshot per node: a set of a collection with
replication factor 2 holds its data once, not twice, and a restore puts each shard's snapshot on
every replica of a new collection, in a cluster of any size (backup/restore.py).

S3 layout under `<prefix>/<cluster>/<backup_id>/` (format 3, written now):
    nodes/<node>/<collection>/<shard_id>.snapshot   one per shard (metadata: sha256)
    nodes/<node>/part.json      what that node uploaded, its view of the cluster, its status
Everything a node writes lies under its own `nodes/<node>/`, so IAM can confine each node to its
own keys (terraform/iam.tf) and no node writes anything shared. A set is "complete" only when
every peer's part is present and succeeded, every shard has a snapshot, and every object matches
its size (and, when verified, its sha256).
Format 2 (`<collection>/shards/<shard>.<peer>.snapshot`, `parts/<peer>.json`) and format 1 sets
(`<collection>/<peer>.snapshot`) are still listed, verified and restored; their stored
`manifest.json` is ignored, like any summary a node could have written. The backup id is the UTC
schedule slot, so the timer runs of all nodes in one slot form one set.
"""
