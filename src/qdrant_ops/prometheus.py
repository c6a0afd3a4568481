"""What the healer reads from Prometheus on the monitoring host: the free space of each Qdrant
node's data disk as node_exporter reports it, by the `host` label the prometheus role gives every
target (roles/prometheus/templates/file_sd.yml.j2). HTTP API: GET /api/v1/query (instant query)."""

from __future__ import annotations

from qdrant_ops.silences import SilenceError, WebService


def free_bytes_by_host(prometheus: WebService, mountpoint: str) -> dict[str, float]:
    """node_filesystem_avail_bytes of `mountpoint` per `host` label. Raises SilenceError (the
    monitoring services' error) when Prometheus does not answer or answers something else."""
    query = f'node_filesystem_avail_bytes{{job="node",mountpoint="{mountpoint}"}}'
    response = prometheus.request("GET", "/api/v1/query", params={"query": query})
    try:
        return {
            str(item["metric"]["host"]): float(item["value"][1])
            for item in response.json()["data"]["result"]
            if "host" in item["metric"]
        }
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise SilenceError(
            f"Prometheus at {prometheus.url} answered the disk query with something else: {exc}"
        ) from None
