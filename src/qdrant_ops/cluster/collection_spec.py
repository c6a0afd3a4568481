"""A declared collection (a spec) and its validation, before any request: cluster/collections.py
compares a valid spec with the live collection and applies the difference.

A spec is a plain dict, the same in Ansible (`qdrant_collection` options, `qdrant_collections`
group var) and in files (`qdrant-ops collections apply -f spec.yml`):

    name: cities
    vectors: {size: 384, distance: Cosine}          # single; or {text: {...}, image: {...}};
                                                    # or omitted / {} for payload-only points
    sparse_vectors: {keywords: {modifier: idf}}
    shard_number: 6
    replication_factor: 2
    write_consistency_factor: 1
    on_disk_payload: true                           # Qdrant >= 1.19: payload: {memory: cold}
    hnsw_config: {m: 16}
    optimizers_config: {indexing_threshold: 10000}
    quantization_config: {scalar: {type: int8}}
    strict_mode_config: {enabled: true}
    payload_indexes: {city: keyword, population: {type: integer, range: true}}

Every nested section (vector params, hnsw, optimizers, quantization, strict mode, sparse
vectors) is checked against qdrant-client's models of the deployed Qdrant's API (pinned to its
minor version in pyproject.toml), strictly: an unknown or misspelt key, or a value of the wrong
type, is refused with its path before any request.

Qdrant 1.19's `memory` placements (`cold`, `cached`, `pinned`), which deprecate `on_disk`,
`on_disk_payload` and `always_ram`, are accepted next to them: checked here (the models are 1.18's),
refused when they contradict the flag they replace, and refused before any request when the
cluster runs an older Qdrant (docs/qdrant-behaviour.md §2).
"""

from __future__ import annotations

import json
import re
from typing import Any

from qdrant_ops.errors import ConfigError

DISTANCES = ("Cosine", "Euclid", "Dot", "Manhattan")
INDEX_TYPES = ("keyword", "integer", "float", "geo", "text", "bool", "datetime", "uuid")
VECTOR_KEYS = {
    "size",
    "distance",
    "on_disk",
    "memory",
    "hnsw_config",
    "quantization_config",
    "datatype",
    "multivector_config",
}
VECTOR_IMMUTABLE = ("size", "distance", "datatype", "multivector_config")
SPEC_KEYS = {
    "name",
    "vectors",
    "sparse_vectors",
    "shard_number",
    "replication_factor",
    "write_consistency_factor",
    "on_disk_payload",
    "payload",
    "hnsw_config",
    "optimizers_config",
    "quantization_config",
    "strict_mode_config",
    "payload_indexes",
}
# Keys of the spec that live under config.params in GET /collections/{name}.
PARAMS_KEYS = ("replication_factor", "write_consistency_factor", "on_disk_payload", "payload")
# spec key -> key under `config` in GET /collections/{name} (optimizers vs optimizer is Qdrant's).
CONFIG_SECTIONS = {
    "hnsw_config": "hnsw_config",
    "optimizers_config": "optimizer_config",
    "quantization_config": "quantization_config",
    "strict_mode_config": "strict_mode_config",
}
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]{1,255}$")
SINGLE_VECTOR = ""  # the name Qdrant's PATCH uses for the unnamed vector


# -- validation ------------------------------------------------------------------------------------
MAX_VECTOR_SIZE = 65536  # lib/collection/src/operations/types.rs (VectorParams.size) at v1.18.3
U32_MAX = 2**32 - 1  # shard_number, replication_factor, write_consistency_factor are u32 in Qdrant
# (lib/storage/src/content_manager/collection_meta_ops.rs at v1.18.3)


def _positive_int(value: Any, where: str, maximum: int = U32_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise ConfigError(f"{where} must be an integer from 1 to {maximum}, got {value!r}")
    return value


def _mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}")
    return value


# spec section -> the qdrant-client model describing it (qdrant_client.http.models)
SECTION_MODELS = {
    "hnsw_config": "HnswConfigDiff",
    "optimizers_config": "OptimizersConfigDiff",
    "quantization_config": "QuantizationConfig",
    "strict_mode_config": "StrictModeConfig",
}


# -- Qdrant 1.19 memory placements ----------------------------------------------------------------
MEMORY_SINCE = (1, 19)
PLACEMENTS = ("cold", "cached", "pinned")
# The deprecated flag a sibling `memory` replaces, and the placement its `true` stands for; a
# `false` stands for any other (lib/segment/src/types.rs at v1.19.0: Memory::from_on_disk,
# legacy_always_ram_placement).
LEGACY_FLAGS = {"on_disk": "cold", "always_ram": "pinned"}
# Models whose 1.19 versions carry `memory` somewhere inside (vector storage, HNSW graph,
# quantized vectors, sparse index); elsewhere a `memory` key stays an unknown key.
MEMORY_MODELS = ("VectorParams", "SparseVectorParams", "HnswConfigDiff", "QuantizationConfig")


def _check_placement(memory: Any, where: str, allowed: tuple = PLACEMENTS) -> None:
    if memory not in allowed:
        raise ConfigError(f"{where}.memory must be one of {', '.join(allowed)}, got {memory!r}")


def _without_memory(value: Any, where: str) -> Any:
    """A copy without `memory` keys, each checked first (value, and agreement with the flag it
    replaces), so the rest can be held against the 1.18 models."""
    if not isinstance(value, dict):
        return value
    if "memory" in value:
        _check_placement(value["memory"], where)
        for flag, placement in LEGACY_FLAGS.items():
            if isinstance(value.get(flag), bool) and value[flag] != (value["memory"] == placement):
                raise ConfigError(
                    f"{where}: {flag}: {str(value[flag]).lower()} contradicts memory: {value['memory']} "
                    f"(Qdrant would follow memory); declare only memory, {flag} is deprecated since 1.19"
                )
    return {k: _without_memory(v, f"{where}.{k}") for k, v in value.items() if k != "memory"}


def _has_placement(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    # A string `memory` is a placement; a mapping under that key is a vector named "memory".
    return isinstance(value.get("memory"), str) or any(map(_has_placement, value.values()))


def uses_memory_placement(spec: dict) -> bool:
    """True when a normalised spec needs Qdrant 1.19 (a `memory` placement or a `payload` section)."""
    indexes = spec.get("payload_indexes") or {}
    sections = [v for k, v in spec.items() if k != "payload_indexes"] + list(indexes.values())
    return "payload" in spec or any(map(_has_placement, sections))


def require_server_support(spec: dict, server_version: str) -> None:
    """Refuse, before any request, a spec the running Qdrant would not understand."""
    try:
        running = tuple(int(part) for part in server_version.lstrip("v").split(".")[:2])
    except ValueError:
        running = MEMORY_SINCE  # a build without a plain version: let Qdrant judge
    if running < MEMORY_SINCE and uses_memory_placement(spec):
        raise ConfigError(
            f"collection {spec['name']!r} uses memory placements (memory / payload.memory), which need "
            f"Qdrant {'.'.join(map(str, MEMORY_SINCE))} or later; this cluster runs {server_version}. "
            "Use on_disk / on_disk_payload / always_ram until the cluster is upgraded."
        )


def check_against_model(value: Any, model_name: str, where: str) -> None:
    """Refuse what Qdrant's API (as qdrant-client models it) would not take, naming the field.
    Strict JSON validation: no extra keys, "16" is not an integer and "false" not a boolean."""
    if model_name in MEMORY_MODELS:
        value = _without_memory(value, where)
    import pydantic  # noqa: PLC0415 - qdrant-client's models are heavy to import; only specs need them
    from qdrant_client.http import models  # noqa: PLC0415

    try:
        pydantic.TypeAdapter(getattr(models, model_name)).validate_json(json.dumps(value), strict=True)
    except pydantic.ValidationError as exc:
        # A union (quantization) fails once per variant: report the variant that came closest,
        # and in it an unknown key first (the likeliest cause is a typo).
        by_variant: dict[str, list[dict]] = {}
        for error in exc.errors():
            head = str(error["loc"][0]) if error["loc"] else ""
            by_variant.setdefault(head if head[:1].isupper() else "", []).append(error)
        variant, errors = min(by_variant.items(), key=lambda item: len(item[1]))
        error = sorted(errors, key=lambda e: e["type"] != "extra_forbidden")[0]
        path = ".".join([where, *(str(p) for p in error["loc"][1 if variant else 0 :])])
        what = "unknown key" if error["type"] == "extra_forbidden" else error["msg"].lower()
        raise ConfigError(
            f"{path}{f' (as {variant})' if variant else ''}: {what}, got {error.get('input')!r}; "
            f"see {model_name} in Qdrant's API reference for the keys and types"
        ) from None


def _vector_params(params: Any, where: str) -> dict:
    params = dict(_mapping(params, where))
    unknown = set(params) - VECTOR_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(VECTOR_KEYS)}")
    if "size" not in params:
        raise ConfigError(f"{where}.size is required (the vector dimension, e.g. 384)")
    params["size"] = _positive_int(params["size"], f"{where}.size", MAX_VECTOR_SIZE)
    distance = str(params.get("distance", ""))
    canonical = {d.lower(): d for d in DISTANCES}.get(distance.lower())
    if canonical is None:
        raise ConfigError(f"{where}.distance {distance!r} is unknown; use one of {', '.join(DISTANCES)}")
    params["distance"] = canonical
    params = {k: v for k, v in params.items() if v is not None}
    if "memory" in params:  # dense vector storage cannot be pinned (validate_dense_vector_memory)
        _check_placement(params["memory"], where, ("cold", "cached"))
    check_against_model(params, "VectorParams", where)
    return params


def _payload_index(field_name: str, value: Any) -> dict:
    where = f"payload_indexes.{field_name}"
    index = {"type": value} if isinstance(value, str) else dict(_mapping(value, where))
    index_type = str(index.get("type", "")).lower()
    if index_type not in INDEX_TYPES:
        raise ConfigError(
            f"{where}: index type {index.get('type')!r} is unknown; use one of {', '.join(INDEX_TYPES)}"
        )
    index["type"] = index_type
    _without_memory(index, where)  # 1.19 placement of the index (e.g. keyword: memory cold)
    return index


def _check_replication(spec: dict, peer_count: int | None) -> None:
    if peer_count is not None and spec.get("replication_factor", 1) > peer_count:
        raise ConfigError(
            f"replication_factor {spec['replication_factor']} is above the {peer_count} node(s) of the "
            "cluster: a shard cannot have two replicas on one node; lower it or add nodes"
        )
    if spec.get("write_consistency_factor", 1) > spec.get("replication_factor", 1):
        raise ConfigError(
            f"write_consistency_factor {spec['write_consistency_factor']} exceeds replication_factor "
            f"{spec.get('replication_factor', 1)}: every write would fail; lower it"
        )


def _payload_storage(value: Any, on_disk_payload: bool | None) -> dict:
    """`payload: {memory: cold|cached}` (1.19), which replaces on_disk_payload."""
    payload = dict(_mapping(value, "payload"))
    if set(payload) != {"memory"}:
        raise ConfigError(f"payload: only memory can be set (cold or cached), got keys {sorted(payload)}")
    _check_placement(payload["memory"], "payload", ("cold", "cached"))
    if on_disk_payload is not None and on_disk_payload != (payload["memory"] == "cold"):
        raise ConfigError(
            f"on_disk_payload: {str(on_disk_payload).lower()} contradicts payload.memory: "
            f"{payload['memory']} (Qdrant would follow payload.memory); declare only payload.memory"
        )
    return payload


def validate_spec(spec: dict, peer_count: int | None = None) -> dict:
    """Return the normalised spec, or raise ConfigError naming the offending field."""
    spec = _mapping(spec, "collection spec")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise ConfigError(f"collection spec: unknown key(s) {sorted(unknown)}; allowed: {sorted(SPEC_KEYS)}")
    name = spec.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ConfigError(f"collection name {name!r} is invalid: use 1-255 letters, digits, '_', '-' or '.'")
    result: dict[str, Any] = {"name": name}

    vectors = _mapping(spec.get("vectors"), "vectors")
    if "size" in vectors or "distance" in vectors:
        result["vectors"] = _vector_params(vectors, "vectors")
    else:
        result["vectors"] = {vname: _vector_params(p, f"vectors.{vname}") for vname, p in vectors.items()}

    if spec.get("sparse_vectors") is not None:
        result["sparse_vectors"] = {
            sname: dict(_mapping(p, f"sparse_vectors.{sname}"))
            for sname, p in _mapping(spec["sparse_vectors"], "sparse_vectors").items()
        }
        for sname, params in result["sparse_vectors"].items():
            check_against_model(params, "SparseVectorParams", f"sparse_vectors.{sname}")
    for key in ("shard_number", "replication_factor", "write_consistency_factor"):
        if spec.get(key) is not None:
            result[key] = _positive_int(spec[key], key)
    _check_replication(result, peer_count)
    if spec.get("on_disk_payload") is not None:
        if not isinstance(spec["on_disk_payload"], bool):
            raise ConfigError(f"on_disk_payload must be true or false, got {spec['on_disk_payload']!r}")
        result["on_disk_payload"] = spec["on_disk_payload"]
    if spec.get("payload") is not None:
        result["payload"] = _payload_storage(spec["payload"], result.get("on_disk_payload"))
    for key in CONFIG_SECTIONS:
        if spec.get(key) is not None:
            result[key] = dict(_mapping(spec[key], key))
            check_against_model(result[key], SECTION_MODELS[key], key)
    if spec.get("payload_indexes") is not None:
        result["payload_indexes"] = {
            fname: _payload_index(fname, value)
            for fname, value in _mapping(spec["payload_indexes"], "payload_indexes").items()
        }
    return result


def is_single_vector(vectors: dict) -> bool:
    return "size" in vectors
