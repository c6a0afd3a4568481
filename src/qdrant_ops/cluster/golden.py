"""Golden queries: a few searches drawn from a collection's own points, stored with their exact
top-k (ids and scores), and run again wherever the collection comes back (restore, `backup
verify`, the upgrade drill, standby promotion).

Counts and point hashes cannot see an index that came back different (other HNSW parameters, a
quantization lost, a graph not rebuilt): searches can. Two checks per query:

- the exact search (`params.exact`, quantization ignored) returns the stored ids and scores: the
  data itself is the same;
- the normal (indexed) search finds the stored exact top-k: recall@k over all queries, compared
  with what the same searches reached on the source when they were drawn. Random data (the tests'
  Gaussian vectors) keep HNSW well below 0.95 even on a healthy index, so a fixed floor alone
  would fail every restore of it: the check fails when recall is below both `threshold` and the
  source's own recall less three standard errors of it (docs/backups.md, "Golden queries").

The draw is seeded (seed and collection name) among the first WINDOW points in id order, so it
costs one scroll of ids, one retrieve and two batched searches per collection.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from qdrant_ops import private_file
from qdrant_ops.client import ClusterClient
from qdrant_ops.errors import QdrantOpsError

K = 10
WINDOW = 10_000  # the draw's candidates: the first points in id order
THRESHOLD = 0.95  # recall@K that always passes
# How far below the source's own recall a restored index may land, in standard errors of that
# recall: the replicas of a shard build their graphs apart, so the source's figure is itself a
# sample of which replica answered.
STANDARD_ERRORS = 3.0
SCORE_TOLERANCE = 1e-4  # relative; the same vectors score the same, but SIMD code differs across builds
EXACT = {"exact": True, "quantization": {"ignore": True}}
# A standby's sync draws its golden queries (exact searches over every point) on the primary again
# once a day, not on every sync: they load the primary, and the index they judge changes slowly.
REDRAW_SECONDS = 86400.0


class GoldenError(QdrantOpsError):
    """Stored golden queries that cannot be read."""


def validate(raw, where: str) -> dict:
    """Stored golden queries as read from a set or a file: untrusted until their shape is checked."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("queries"), list):
        raise GoldenError(f"{where} are not a mapping with a list of queries")
    recall_ = raw.get("source_recall")
    if recall_ is not None and not (isinstance(recall_, int | float) and 0 <= recall_ <= 1):
        raise GoldenError(f"{where}: source_recall {str(recall_)[:20]} is not between 0 and 1")
    for query in raw["queries"]:
        if not isinstance(query, Mapping) or not isinstance(query.get("vector"), list):
            raise GoldenError(f"{where}: a query has no vector")
        if query.get("using") is not None and not isinstance(query["using"], str):
            raise GoldenError(f"{where}: a query's vector name is not text")
        exact = query.get("exact")
        if not isinstance(exact, list) or not all(
            isinstance(hit, list) and len(hit) == 2 and isinstance(hit[1], int | float) for hit in exact
        ):
            raise GoldenError(f"{where}: a query's exact results are not [id, score] pairs")
    return dict(raw)


def dense_vector_names(params: Mapping) -> list[str | None]:
    """The collection's dense vectors a query can use: [None] for the unnamed default vector,
    else their names (sparse vectors are left out: their index is exact)."""
    vectors = params.get("vectors")
    if not isinstance(vectors, Mapping) or not vectors:
        return []
    if "size" in vectors:
        return [None]
    return sorted(name for name, value in vectors.items() if isinstance(value, Mapping))


def _search(client: ClusterClient, collection: str, queries: list[dict], params: dict | None) -> list:
    searches = [
        {
            "query": q["vector"],
            **({"using": q["using"]} if q["using"] is not None else {}),
            "limit": K,
            "with_payload": False,
            **({"params": params} if params else {}),
        }
        for q in queries
    ]
    answers = client.query_batch(collection, searches)
    return [[(p["id"], float(p["score"])) for p in answer["points"]] for answer in answers]


def capture(client: ClusterClient, collection: str, params: Mapping, *, count: int, seed: int) -> dict:
    """Draw `count` points as queries (per dense vector in turn) and record their exact top-K and
    the recall the normal search reaches on them now."""
    names = dense_vector_names(params)
    golden: dict = {"k": K, "seed": seed, "source_recall": None, "queries": []}
    if count <= 0 or not names:
        return golden
    ids = [
        p["id"]
        for p in client.scroll_points(collection, limit=WINDOW, with_payload=False, with_vector=False)[
            "points"
        ]
    ]
    chosen = random.Random(f"{seed}:{collection}").sample(ids, min(count, len(ids)))
    points = {
        p["id"]: p for p in client.retrieve_points(collection, chosen, with_payload=False, with_vector=True)
    }
    queries = []
    for index, point_id in enumerate(chosen):
        using = names[index % len(names)]
        vector = (points.get(point_id) or {}).get("vector")
        vector = vector.get(using or "") if isinstance(vector, Mapping) and using is not None else vector
        if vector is None or isinstance(vector, Mapping):
            continue  # deleted meanwhile, or no vector of that name on this point
        queries.append({"point_id": point_id, "using": using, "vector": vector})
    if not queries:
        return golden
    exact = _search(client, collection, queries, EXACT)
    for query, found in zip(queries, exact, strict=True):
        query["exact"] = [[point_id, score] for point_id, score in found]
    golden["queries"] = queries
    golden["source_recall"] = recall(exact, _search(client, collection, queries, None))
    return golden


def not_drawn(reason: str) -> dict:
    """What a set records for a collection whose searches could not be run: no queries, and why."""
    return {"k": K, "seed": None, "source_recall": None, "queries": [], "not_drawn": reason}


def recall(exact: list[list[tuple]], found: list[list[tuple]]) -> float:
    """recall@K: the share of each exact top-K the other search found, over all queries."""
    wanted = sum(len(e) for e in exact)
    hits = sum(len({i for i, _ in e} & {i for i, _ in f}) for e, f in zip(exact, found, strict=True))
    return 1.0 if wanted == 0 else hits / wanted


def exact_difference(expected: list[tuple], found: list[tuple]) -> str | None:
    """Why an exact top-K differs from the stored one, or None. Ties: ids that share the lowest
    stored score may be swapped for others of that score (which of them make the cut is not
    defined), every other id must be the same."""
    if len(expected) != len(found):
        return f"{len(found)} results, {len(expected)} stored"
    for (_, want), (_, got) in zip(expected, found, strict=True):
        if not math.isclose(want, got, rel_tol=SCORE_TOLERANCE, abs_tol=SCORE_TOLERANCE):
            return f"score {got} where {want} is stored"
    if not expected:
        return None
    lowest = min(score for _, score in expected)

    def above_the_tie(pairs: list[tuple]) -> set:
        return {i for i, s in pairs if not math.isclose(s, lowest, rel_tol=1e-6, abs_tol=1e-6)}

    missing = above_the_tie(expected) - above_the_tie(found)
    extra = above_the_tie(found) - above_the_tie(expected)
    if missing or extra:
        return f"ids {sorted(map(str, missing))} not found, {sorted(map(str, extra))} found instead"
    return None


@dataclass(frozen=True)
class GoldenResult:
    """What the stored golden queries found on one collection."""

    queries: int
    recall: float | None
    source_recall: float | None
    floor: float | None
    exact_differences: tuple[str, ...]
    # False where the data may have moved on since the queries were drawn (a standby synced under
    # writes): exact differences are reported, and the recall is judged alone.
    exact_required: bool = True

    @property
    def recall_too_low(self) -> bool:
        return self.recall is not None and self.floor is not None and self.recall < self.floor

    @property
    def passed(self) -> bool:
        return not (self.exact_required and self.exact_differences) and not self.recall_too_low

    def summary(self, collection: str) -> str:
        if not self.queries:
            return f"{collection}: no golden queries in the set"
        return (
            f"{collection}: {self.queries} golden queries, recall@{K} {self.recall:.3f} "
            f"(source {_share(self.source_recall)}, floor {self.floor:.3f}), exact search "
            + ("identical" if not self.exact_differences else f"differs in {len(self.exact_differences)}")
            + ("" if self.exact_required or not self.exact_differences else " (the data changed since)")
        )

    def report(self) -> dict:
        return {**dataclasses.asdict(self), "passed": self.passed}

    def problems(self, collection: str) -> list[str]:
        differences = self.exact_differences[:3] if self.exact_required else ()
        found = [f"{collection}: exact search differs from the set: {d}" for d in differences]
        if self.recall_too_low:
            found.append(
                f"{collection}: the index finds recall@{K} {self.recall:.3f} of the exact results, below "
                f"{self.floor:.3f} (the source reached {_share(self.source_recall)}): the index differs "
                "from the one backed up (HNSW settings, quantization): compare the collection's config "
                "with the set's"
            )
        return found


def recall_cell(result: Mapping | None, absent: str) -> str:
    """A table cell for a result as reports hold it: "0.912 (source 0.930)", else `absent`."""
    if not result or result.get("recall") is None:
        return absent
    return f"{result['recall']:.3f} (source {_share(result.get('source_recall'))})"


def _share(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.3f}"


def floor_for(source_recall: float | None, results: int, threshold: float = THRESHOLD) -> float:
    """The recall below which the check fails: `threshold`, or lower for a source that did not
    reach it (random data), its own recall less STANDARD_ERRORS standard errors over `results`
    stored results (a source at 1.0 keeps the threshold; at 0.8 over 200 results, about 0.72)."""
    if source_recall is None:
        return threshold
    error = math.sqrt(source_recall * (1 - source_recall) / max(results, 1))
    return min(threshold, source_recall - STANDARD_ERRORS * error)


def check(
    client: ClusterClient,
    collection: str,
    golden: Mapping | None,
    *,
    threshold: float = THRESHOLD,
    exact_required: bool = True,
) -> GoldenResult:
    """Run the stored golden queries of `collection` against `client`'s cluster. The recall is the
    normal search's against the collection's own exact results now: the stored ones whenever the
    exact search is unchanged (else that difference fails the check, unless not `exact_required`)."""
    queries = list((golden or {}).get("queries") or [])
    if not queries:
        return GoldenResult(0, None, None, None, (), exact_required)
    expected = [[(i, float(s)) for i, s in q["exact"]] for q in queries]
    exact = _search(client, collection, queries, EXACT)
    differences = tuple(
        f"query from point {q['point_id']}: {why}"
        for q, want, got in zip(queries, expected, exact, strict=True)
        if (why := exact_difference(want, got))
    )
    found = recall(exact, _search(client, collection, queries, None))
    source = golden.get("source_recall")
    floor = floor_for(source, sum(len(e) for e in expected), threshold)
    return GoldenResult(len(queries), found, source, floor, differences, exact_required)


def judged(client: ClusterClient, collection: str, golden: Mapping | None, log, **options) -> GoldenResult:
    """`check`, with its summary logged (and, where the data may have moved on, its problems as
    warnings: the caller goes on)."""
    result = check(client, collection, golden, **options)
    reason = (golden or {}).get("not_drawn")
    log(result.summary(collection) + (f" (not drawn: {reason})" if reason and not result.queries else ""))
    if not result.exact_required:
        for problem in result.problems(collection):
            log(f"WARNING: {problem}")
    return result


def refreshed(
    client: ClusterClient,
    collection: str,
    held: Mapping | None,
    *,
    count: int,
    now: float,
    max_age: float = REDRAW_SECONDS,
) -> dict | None:
    """Golden queries drawn anew when `held` is missing or older than `max_age` seconds (with their
    `captured_at`), else None: keep `held`."""
    if not count or now - float((held or {}).get("captured_at") or 0) < max_age:
        return None
    return draw(client, [collection], count=count)[collection] | {"captured_at": now}


# -- a file of golden queries: drawn before a change (a rolling upgrade), checked after it ---------
def draw(client: ClusterClient, collections: Sequence[str], *, count: int) -> dict[str, dict]:
    """Golden queries of each collection (default every one), by name."""
    drawn = {}
    for name in collections or client.collection_names():
        info = client.collection_info(name)
        if info is None:
            raise GoldenError(f"there is no collection {name}: give the names `collections list` shows")
        drawn[name] = capture(client, name, info["config"].get("params") or {}, count=count, seed=0)
    return drawn


def write_file(path: str | os.PathLike, drawn: Mapping[str, dict]) -> None:
    """The queries hold vectors of the collection's own points: the file is the owner's only."""
    try:
        private_file.write_json(path, {"format": 1, "collections": drawn})
    except OSError as exc:
        raise GoldenError(f"cannot write the golden queries to {path}: {exc.strerror or exc}") from None


def read_file(path: str | os.PathLike) -> dict[str, dict]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise GoldenError(
            f"no golden queries at {path}: draw them first (`qdrant-ops golden draw`)"
        ) from None
    except (OSError, ValueError) as exc:
        raise GoldenError(f"cannot read the golden queries in {path}: {exc}") from None
    if (
        not isinstance(data, Mapping)
        or data.get("format") != 1
        or not isinstance(data.get("collections"), Mapping)
    ):
        raise GoldenError(f"{path} is not a file of golden queries (format 1): draw them again")
    return {
        str(name): validate(stored, f"{path}: {str(name)[:60]}'s golden queries")
        for name, stored in data["collections"].items()
    }


def check_all(
    client: ClusterClient, stored: Mapping[str, dict], log, *, threshold: float = THRESHOLD
) -> tuple[dict[str, dict], list[str]]:
    """Each collection's result and every problem (a collection gone is one)."""
    present, results, problems = set(client.collection_names()), {}, []
    for name, queries in sorted(stored.items()):
        if name not in present:
            problems.append(f"{name}: the collection is gone")
            continue
        result = judged(client, name, queries, log, threshold=threshold)
        results[name] = result.report()
        problems += result.problems(name)
    return results, problems
