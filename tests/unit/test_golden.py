"""Golden queries' pure parts: which vectors a query can use, recall, the exact comparison (ties
included), the floor, what a failure says, and the manifest's reading of stored queries. Against a
real Qdrant: tests/e2e/test_golden_real_qdrant.py and the restore drills."""

from __future__ import annotations

import pytest

from qdrant_ops.backup.manifest import ManifestError, _golden
from qdrant_ops.cli import main
from qdrant_ops.cluster import golden
from qdrant_ops.cluster.golden import GoldenResult, exact_difference, floor_for, recall


def test_dense_vectors_a_query_can_use():
    assert golden.dense_vector_names({"vectors": {"size": 4, "distance": "Dot"}}) == [None]
    named = {"vectors": {"text": {"size": 4}, "image": {"size": 8}}, "sparse_vectors": {"s": {}}}
    assert golden.dense_vector_names(named) == ["image", "text"]
    assert golden.dense_vector_names({"vectors": {}}) == []  # payload only
    assert golden.dense_vector_names({}) == []


def test_recall_counts_the_exact_results_the_other_search_found():
    exact = [[(1, 0.9), (2, 0.8)], [(3, 0.7), (4, 0.6)]]
    assert recall(exact, [[(1, 0.9), (2, 0.8)], [(3, 0.7), (5, 0.5)]]) == 0.75
    assert recall(exact, [[(9, 0.9)], []]) == 0.0
    assert recall([], []) == 1.0


def test_exact_results_must_match_but_ties_at_the_cut_may_swap():
    stored = [(1, 0.9), (2, 0.8), (3, 0.5), (4, 0.5)]
    assert exact_difference(stored, list(stored)) is None
    assert exact_difference(stored, [(1, 0.9), (2, 0.8), (4, 0.5), (3, 0.5)]) is None  # order in a tie
    assert exact_difference(stored, [(1, 0.9), (2, 0.8), (3, 0.5), (7, 0.5)]) is None  # 7 ties with 4
    assert (
        exact_difference(stored, [(1, 0.9), (7, 0.8), (3, 0.5), (4, 0.5)])
        == "ids ['2'] not found, ['7'] found instead"
    )
    assert "score 0.85 where 0.8" in exact_difference(stored, [(1, 0.9), (2, 0.85), (3, 0.5), (4, 0.5)])
    assert exact_difference(stored, stored[:3]) == "3 results, 4 stored"
    assert exact_difference(stored, [(1, 0.90000001), (2, 0.8), (3, 0.5), (4, 0.5)]) is None  # float32 noise


def test_the_floor_is_the_threshold_or_the_sources_own_recall_less_three_standard_errors():
    assert floor_for(None, 200) == 0.95
    assert floor_for(1.0, 200) == 0.95
    assert floor_for(0.99, 200) == 0.95
    assert floor_for(0.97, 200) == pytest.approx(0.934, abs=0.001)  # near the threshold: its noise
    assert floor_for(0.8, 200) == pytest.approx(0.8 - 3 * (0.8 * 0.2 / 200) ** 0.5)  # random data
    assert floor_for(0.8, 10) < floor_for(0.8, 1000) < 0.8  # fewer results, wider margin


def test_a_failure_names_what_differs_and_where_to_look():
    low = GoldenResult(10, 0.3, 0.9, floor_for(0.9, 100), ())
    assert not low.passed and low.recall_too_low
    (problem,) = low.problems("cities")
    assert "recall@10 0.300" in problem and "below 0.810" in problem and "HNSW settings" in problem
    differs = GoldenResult(10, 1.0, 1.0, 0.95, ("query from point 7: 9 results, 10 stored",))
    assert (
        not differs.passed
        and "exact search differs from the set: query from point 7" in differs.problems("c")[0]
    )
    none = GoldenResult(0, None, None, None, ())
    assert none.passed and none.summary("c") == "c: no golden queries in the set"
    good = GoldenResult(10, 0.91, None, 0.95, ())
    assert good.recall_too_low and "source unknown" in good.summary("c")


QUERY = {"point_id": 1, "using": None, "vector": [0.1, 0.2], "exact": [[1, 1.0], [2, 0.5]]}
GOOD = {"k": 10, "seed": 0, "source_recall": 0.9, "queries": [QUERY]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"queries": "x"}, "not a mapping with a list of queries"),
        ({"source_recall": 2}, "source_recall 2 is not between 0 and 1"),
        ({"source_recall": "high"}, "source_recall high is not between 0 and 1"),
        ({"queries": [{"using": None, "exact": []}]}, "a query has no vector"),
        ({"queries": [{"vector": [1.0], "using": 5, "exact": []}]}, "vector name is not text"),
        ({"queries": [{"vector": [1.0], "using": None, "exact": [[1]]}]}, "not \\[id, score\\] pairs"),
        ({"queries": [{"vector": [1.0], "using": None, "exact": [[1, "x"]]}]}, "not \\[id, score\\] pairs"),
        ({"queries": [{"vector": [1.0], "using": None}]}, "not \\[id, score\\] pairs"),
    ],
)
def test_stored_golden_queries_that_cannot_be_used_are_named(change, message):
    assert _golden(GOOD, "c") == GOOD and _golden(None, "c") is None  # sets made before golden queries
    with pytest.raises(ManifestError, match=message):
        _golden({**GOOD, **change}, "collection 'c'")


def test_a_file_of_golden_queries_round_trips_owner_only(tmp_path):
    path = tmp_path / "golden.json"
    golden.write_file(path, {"cities": GOOD})
    assert golden.read_file(path) == {"cities": GOOD}
    assert path.stat().st_mode & 0o777 == 0o600  # vectors of the owner's data


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no golden queries at .*: draw them first"),
        ("{", "cannot read the golden queries in"),
        ('{"format": 2, "collections": {}}', "is not a file of golden queries \\(format 1\\)"),
        (
            '{"format": 1, "collections": {"c": {"queries": [{}]}}}',
            "c's golden queries: a query has no vector",
        ),
    ],
)
def test_a_file_that_cannot_be_used_is_named_with_the_fix(tmp_path, content, message):
    path = tmp_path / "golden.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(golden.GoldenError, match=message):
        golden.read_file(path)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["golden", "draw", "-o", "/nonexistent/dir/g.json"], "is not a directory this user can write to"),
        (["golden", "draw", "-o", "g.json", "--queries", "0"], "not a number of queries between 1 and 100"),
        (["golden", "check", "g.json", "--threshold", "1.5"], "not a recall between 0 and 1"),
        (["golden", "check", "g.json", "--threshold", "nan"], "not a recall between 0 and 1"),
    ],
)
def test_bad_golden_command_lines_are_usage_errors(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--url", "http://127.0.0.1:9"])
    assert exit_.value.code == 64 and message in capsys.readouterr().err


def test_checking_without_a_drawn_file_says_to_draw_first(capsys, tmp_path):
    assert main(["golden", "check", str(tmp_path / "none.json"), "--url", "http://127.0.0.1:9"]) == 2
    assert "draw them first (`qdrant-ops golden draw`)" in capsys.readouterr().err
