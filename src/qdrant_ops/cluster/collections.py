"""Collections as code: validate a declared collection, compare it with the live one, apply the
difference.

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

Only the keys a spec names are compared: Qdrant fills in defaults for the rest, and a declared
collection should not fight them. What Qdrant can change in place goes through PATCH; what it
cannot (vector names, sizes, distance, datatype, shard count, sparse vector names) is refused
unless the caller asks to recreate the collection, which deletes its points.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from qdrant_ops.client import ClusterClient
from qdrant_ops.cluster import rebalance
from qdrant_ops.cluster.replicas import ShardTransfer
from qdrant_ops.cluster.zones import Zones
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


# -- live state as a spec ----------------------------------------------------------------------------
def describe(info: dict, name: str) -> dict:
    """The live collection (GET /collections/{name} result) in spec form."""
    config = info["config"]
    params = config["params"]
    described: dict[str, Any] = {"name": name, "vectors": params.get("vectors") or {}}
    if params.get("sparse_vectors"):
        described["sparse_vectors"] = params["sparse_vectors"]
    for key in ("shard_number", *PARAMS_KEYS):
        if params.get(key) is not None:
            described[key] = params[key]
    for spec_key, config_key in CONFIG_SECTIONS.items():
        if config.get(config_key) is not None:
            described[spec_key] = config[config_key]
    described["payload_indexes"] = {
        fname: {"type": index["data_type"], **(index.get("params") or {})}
        for fname, index in (info.get("payload_schema") or {}).items()
    }
    return described


# -- planning -----------------------------------------------------------------------------------------
def _differs(desired: Any, current: Any) -> bool:
    """True when a declared value is not what Qdrant has; undeclared keys never count."""
    if isinstance(desired, dict):
        if not isinstance(current, dict):
            return True
        return any(_differs(value, current.get(key)) for key, value in desired.items())
    if (
        isinstance(desired, (int, float))
        and isinstance(current, (int, float))
        and not isinstance(desired, bool)
    ):
        return float(desired) != float(current)
    return desired != current


def _index_schema(index: dict) -> str | dict:
    """field_schema for PUT /collections/{c}/index: a bare type unless parameters are given."""
    return index["type"] if set(index) == {"type"} else dict(index)


@dataclass
class Plan:
    name: str
    action: str  # create | update | recreate | delete | none
    create_body: dict = field(default_factory=dict)
    patch: dict = field(default_factory=dict)
    indexes_to_create: dict = field(default_factory=dict)
    indexes_to_delete: list = field(default_factory=list)
    immutable_changes: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.action != "none"


def create_body(spec: dict) -> dict:
    body: dict[str, Any] = {"vectors": copy.deepcopy(spec["vectors"])}
    for key in ("sparse_vectors", "shard_number", *PARAMS_KEYS, *CONFIG_SECTIONS):
        if key in spec:
            body[key] = copy.deepcopy(spec[key])
    return body


def _vector_changes(desired: dict, current: dict, plan: Plan) -> dict:
    """PATCH `vectors` section; immutable differences go to plan.immutable_changes."""
    single = is_single_vector(desired)
    if single != is_single_vector(current) or (not single and set(desired) != set(current)):
        plan.immutable_changes.append(
            f"vectors: declared {_vector_layout(desired)}, the collection has {_vector_layout(current)}"
        )
        return {}
    pairs = {SINGLE_VECTOR: (desired, current)} if single else {n: (desired[n], current[n]) for n in desired}
    patch = {}
    for vname, (want, have) in pairs.items():
        label = "vectors" if single else f"vectors.{vname}"
        for key in VECTOR_IMMUTABLE:
            if key in want and _differs(want[key], have.get(key)):
                plan.immutable_changes.append(f"{label}.{key}: {have.get(key)!r} -> {want[key]!r}")
        changes = {
            key: want[key]
            for key in ("on_disk", "memory", "hnsw_config", "quantization_config")
            if key in want and _differs(want[key], have.get(key))
        }
        if changes:
            patch[vname] = changes
    return patch


def _vector_layout(vectors: dict) -> str:
    if not vectors:
        return "no dense vectors"
    if is_single_vector(vectors):
        return f"one unnamed vector of size {vectors.get('size')}"
    return "named vectors " + ", ".join(sorted(vectors))


def plan_collection(
    spec: dict,
    info: dict | None,
    *,
    state: str = "present",
    recreate: bool = False,
    prune_payload_indexes: bool = False,
) -> Plan:
    """Decide what to do; pure (no requests), so it is what check mode and dry runs report."""
    name = spec["name"]
    plan = Plan(name=name, action="none")
    plan.before = describe(info, name) if info else {}
    if state == "absent":
        plan.action = "delete" if info else "none"
        return plan
    if info is None:
        plan.action = "create"
        plan.create_body = create_body(spec)
        plan.indexes_to_create = dict(spec.get("payload_indexes", {}))
        plan.after = copy.deepcopy(spec)
        return plan

    current = plan.before
    plan.patch = {}
    vectors_patch = _vector_changes(spec["vectors"], current["vectors"], plan)
    if vectors_patch:
        plan.patch["vectors"] = vectors_patch
    if "shard_number" in spec and spec["shard_number"] != current.get("shard_number"):
        plan.immutable_changes.append(
            f"shard_number: {current.get('shard_number')} -> {spec['shard_number']}"
        )
    _plan_sparse_vectors(spec, current, plan)
    _plan_settings(spec, current, plan)
    _plan_payload_indexes(spec, current, plan, prune_payload_indexes)

    plan.after = _merged_after(current, spec)
    if plan.immutable_changes:
        if not recreate:
            return plan  # caller raises: see require_applicable
        plan.action = "recreate"
        plan.create_body = create_body(spec)
        plan.indexes_to_create = dict(spec.get("payload_indexes", {}))
        plan.indexes_to_delete = []
        plan.patch = {}
        plan.after = copy.deepcopy(spec)
        return plan
    if plan.patch or plan.indexes_to_create or plan.indexes_to_delete:
        plan.action = "update"
    return plan


def _plan_sparse_vectors(spec: dict, current: dict, plan: Plan) -> None:
    """Sparse vector names are fixed at creation; their parameters can be patched."""
    if "sparse_vectors" not in spec:
        return
    have_sparse = current.get("sparse_vectors", {})
    if set(spec["sparse_vectors"]) != set(have_sparse):
        plan.immutable_changes.append(
            f"sparse_vectors: declared {sorted(spec['sparse_vectors'])}, "
            f"the collection has {sorted(have_sparse)}"
        )
        return
    sparse_patch = {
        sname: params
        for sname, params in spec["sparse_vectors"].items()
        if _differs(params, have_sparse.get(sname))
    }
    if sparse_patch:
        plan.patch["sparse_vectors"] = sparse_patch


def _plan_settings(spec: dict, current: dict, plan: Plan) -> None:
    """Collection params and the config sections, patched in place."""
    params_patch = {k: spec[k] for k in PARAMS_KEYS if k in spec and _differs(spec[k], current.get(k))}
    if params_patch:
        plan.patch["params"] = params_patch
        if "replication_factor" in params_patch:
            plan.warnings.append(
                "replication_factor changes the collection config only: Qdrant does not add or drop "
                "replicas of existing shards by itself; replicate shards (rebalance) to reach it"
            )
    for key in CONFIG_SECTIONS:
        if key in spec and _differs(spec[key], current.get(key)):
            plan.patch[key] = spec[key]


def _plan_payload_indexes(spec: dict, current: dict, plan: Plan, prune: bool) -> None:
    declared_indexes = spec.get("payload_indexes", {})
    live_indexes = current.get("payload_indexes", {})
    for fname, index in declared_indexes.items():
        if fname not in live_indexes:
            plan.indexes_to_create[fname] = index
        elif _differs(index, live_indexes[fname]):
            # A payload index is rebuilt in place: drop, then create with the new schema.
            plan.indexes_to_delete.append(fname)
            plan.indexes_to_create[fname] = index
    if prune:
        plan.indexes_to_delete += sorted(set(live_indexes) - set(declared_indexes))


def _merged_after(current: dict, spec: dict) -> dict:
    after = copy.deepcopy(current)
    for key, value in spec.items():
        if isinstance(value, dict) and isinstance(after.get(key), dict) and key != "payload_indexes":
            _deep_update(after[key], value)
        elif key == "payload_indexes":
            after[key].update(copy.deepcopy(value))
        else:
            after[key] = copy.deepcopy(value)
    return after


def _deep_update(target: dict, changes: dict) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def require_applicable(plan: Plan) -> None:
    if plan.immutable_changes and plan.action != "recreate":
        raise ConfigError(
            f"collection {plan.name!r} cannot be changed in place: {'; '.join(plan.immutable_changes)}. "
            "Qdrant cannot change these on a live collection. Set recreate: true (or --recreate) to "
            "delete and recreate it - this DELETES ALL ITS POINTS - or restore the old values."
        )


# -- applying -----------------------------------------------------------------------------------------
def apply_plan(client: ClusterClient, plan: Plan, *, timeout: int = 60) -> None:
    """Carry out a plan. Creates and deletes go through consensus; `timeout` bounds the wait."""
    require_applicable(plan)
    if plan.action in ("delete", "recreate"):
        client.delete_collection(plan.name, timeout=timeout)
    if plan.action in ("create", "recreate"):
        client.create_collection(plan.name, plan.create_body, timeout=timeout)
    if plan.action == "update" and plan.patch:
        client.update_collection(plan.name, plan.patch, timeout=timeout)
    for fname in plan.indexes_to_delete:
        client.delete_payload_index(plan.name, fname)
    for fname, index in plan.indexes_to_create.items():
        client.create_payload_index(plan.name, {"field_name": fname, "field_schema": _index_schema(index)})


@dataclass(frozen=True)
class ApplyOptions:
    """What one apply of declared collections does, built once by the CLI and qdrant_collection
    and checked here."""

    state: str = "present"  # absent: delete the named collections
    recreate: bool = False  # drop and create a collection whose immutable settings changed
    prune_payload_indexes: bool = False  # delete payload indexes the spec does not name
    fix_zones: bool = True  # after creating: move replicas that share a zone needlessly
    dry_run: bool = False  # plan only

    def __post_init__(self) -> None:
        if self.state not in ("present", "absent"):
            raise ConfigError(f"state {self.state!r} is unknown: use present or absent")


def plan_specs(client: ClusterClient, specs: list[dict], options: ApplyOptions) -> list[Plan]:
    """Validate every declared collection, then plan each against the live cluster: a typo in the
    third spec refuses before the first is changed."""
    if options.state == "absent":
        normalised = [{"name": _checked_name(spec.get("name"))} for spec in specs]
    else:
        # The peer count is part of validation; the server version is read only once every spec
        # is well-formed, so a typo costs one request.
        peer_count = client.peer_count()
        normalised = [validate_spec(spec, peer_count=peer_count) for spec in specs]
        server_version = client.version()
        for spec in normalised:
            require_server_support(spec, server_version)
    plans = [
        plan_collection(
            spec,
            client.collection_info(spec["name"]),
            state=options.state,
            recreate=options.recreate,
            prune_payload_indexes=options.prune_payload_indexes,
        )
        for spec in normalised
    ]
    for plan in plans:
        require_applicable(plan)
    return plans


def apply_specs(
    client: ClusterClient,
    specs: list[dict],
    options: ApplyOptions,
    *,
    zones: Callable[[], Zones] = dict,
) -> tuple[list[Plan], list[list[ShardTransfer]]]:
    """Plan every spec, then (unless dry_run) apply each changed plan and, with fix_zones, move
    the replicas of created collections that share a zone needlessly (Qdrant places by counts
    only). `zones` is asked only then: reading the zones may ask every node. Returns the plans and
    the zone moves."""
    plans = plan_specs(client, specs, options)
    if options.dry_run:
        return plans, []
    for plan in plans:
        if plan.changed:
            apply_plan(client, plan)
    created = [plan.name for plan in plans if plan.action in ("create", "recreate")]
    if not (created and options.fix_zones):
        return plans, []
    return plans, rebalance.spread_over_zones(client, created, zones())


def _checked_name(name) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ConfigError(f"collection name {name!r} is invalid")
    return name


def ensure_collection(client: ClusterClient, spec: dict, options: ApplyOptions | None = None) -> Plan:
    """Validate, plan and (unless dry_run) apply one declared collection, without zone moves."""
    (plan,), _ = apply_specs(client, [spec], replace(options or ApplyOptions(), fix_zones=False))
    return plan
