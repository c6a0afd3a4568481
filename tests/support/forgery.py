"""What one node can write with its own credentials (issue 33, reproduction 1), for the tests that
prove it changes nothing: tests/integration/test_terraform_iam.py (moto's IAM) and
tests/e2e/test_restore_real_qdrant.py (a real restore)."""

from __future__ import annotations

import json


def forge_set(
    writer, reader, bucket: str, cluster_prefix: str, *, node: str, genuine_id: str, forged_id: str
) -> None:
    """A set holding only `node`'s part, which names that node as the cluster's only peer and every
    shard as its own, each 'snapshot' one of its genuine objects copied under its own keys: complete
    by its parts alone. `writer` holds the node's credentials, `reader` may read the genuine set."""
    source = f"{cluster_prefix}{genuine_id}/nodes/{node}/part.json"
    part = json.loads(reader.get_object(Bucket=bucket, Key=source)["Body"].read())
    me = next(p for p in part["peers"] if p["id"] == part["peer_id"])
    record = next(r for shards in part["shards"].values() for r in shards.values())
    body = reader.get_object(Bucket=bucket, Key=record["key"])["Body"].read()
    part.update(backup_id=forged_id, peers=[me], shards={})
    for name, view in part["collections"].items():
        shards = sorted({r["shard_id"] for r in view["placement"]})
        view["placement"] = [{"shard_id": s, "peer_id": me["id"], "state": "Active"} for s in shards]
        part["shards"][name] = {}
        for shard in shards:
            key = f"{cluster_prefix}{forged_id}/nodes/{node}/{part['attempt']}/{name}/{shard}.snapshot"
            writer.put_object(Bucket=bucket, Key=key, Body=body, Metadata={"sha256": record["sha256"]})
            part["shards"][name][str(shard)] = {**record, "key": key}
    key = f"{cluster_prefix}{forged_id}/nodes/{node}/part.json"
    writer.put_object(Bucket=bucket, Key=key, Body=json.dumps(part).encode(), IfNoneMatch="*")
