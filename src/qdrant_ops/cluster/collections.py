"""Collections as code: compare a declared collection (a spec, validated by
cluster/collection_spec.py) with the live one and apply the difference.

Only the keys a spec names are compared: Qdrant fills in defaults for the rest, and a declared
collection should not fight them. What Qdrant can change in place goes through PATCH; what it
cannot (vector names, sizes, distance, datatype, shard count, sparse vector names) is refused
unless the caller asks to recreate the collection, which deletes its points.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from qdrant_ops.client import ClusterClient
from qdrant_ops.cluster import rebalance
from qdrant_ops.cluster.collection_spec import (
    CONFIG_SECTIONS,
    NAME_PATTERN,
    PARAMS_KEYS,
    SINGLE_VECTOR,
    VECTOR_IMMUTABLE,
    is_single_vector,
    require_server_support,
    validate_spec,
)
from qdrant_ops.cluster.replicas import ShardTransfer
from qdrant_ops.cluster.zones import Zones
from qdrant_ops.errors import ConfigError


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
