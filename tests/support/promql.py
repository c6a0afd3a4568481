"""PromQL helpers shared by the alert rule and dashboard tests: the metric names that exist
(Qdrant 1.18, node_exporter, the backup job) and the names an expression uses."""

from __future__ import annotations

import re
from pathlib import Path

from qdrant_ops import certs
from qdrant_ops.backup import metrics
from qdrant_ops.cluster import healer_metrics, standby_metrics, zone_metrics

DATA = Path(__file__).resolve().parents[1] / "data"
PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                "offset", "le", "inf", "nan"}  # fmt: skip


def exported_names() -> set[str]:
    lines = (DATA / "qdrant-metrics-1.18.tsv").read_text().splitlines()
    qdrant = {line.split("\t")[0] for line in lines if line and not line.startswith(("#", "name\t"))}
    qdrant |= {f"{name}_{suffix}" for name in set(qdrant) for suffix in ("bucket", "sum", "count")}
    backup = {name + ("_total" if key == "failures" else "")
              for job in metrics.JOBS for key, name in metrics.metric_names(job).items()}  # fmt: skip
    return (
        qdrant
        | node_exporter_names()
        | backup
        | set(zone_metrics.METRIC_NAMES)
        | set(certs.METRIC_NAMES)
        | set(standby_metrics.METRIC_NAMES)
        | set(healer_metrics.METRIC_NAMES)
        | {"up"}
    )


def node_exporter_names() -> set[str]:
    lines = (DATA / "node-exporter-metrics.txt").read_text().splitlines()
    return {line for line in lines if line and line[0] != "#"}


def metric_names_in(expr: str) -> set[str]:
    expr = re.sub(r'"[^"]*"', "", expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr))
    return {n for n in names if n.lower() not in PROMQL_WORDS and not re.fullmatch(r"\d+[smhdwy]?", n)}
