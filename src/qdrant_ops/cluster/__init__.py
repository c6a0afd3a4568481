"""The cluster as it runs: health (placement and replica states), collections (specs, plans,
apply), points, replicas (repair, replicate) and rebalance (planned shard moves)."""
