"""The healer's decision rule over generated placements and peer states (hypothesis), its settings
and its state file. The run against a real Qdrant: tests/e2e/test_healer_real_qdrant.py."""

from __future__ import annotations

import json
import textwrap
from collections import Counter

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from qdrant_ops.cli import main
from qdrant_ops.cluster import healer_config, healer_metrics, healer_run
from qdrant_ops.cluster.healer import REASONS, HealerState, Observation, Policy, decide
from qdrant_ops.cluster.zones import spread_is_even
from qdrant_ops.errors import ConfigError

POLICY = Policy(grace=600, cooldown=3600, disk_headroom=2)
NOW = 10_000.0


@st.composite
def observations(draw) -> tuple[Observation, HealerState]:
    peers = list(range(1, draw(st.integers(3, 7)) + 1))
    zone_names = draw(st.sampled_from([("a", "b", "c"), ("a", "b"), ()]))
    zones = {p: z for p in peers if (z := draw(st.sampled_from((*zone_names, None))))} if zone_names else {}
    placements, factors = {}, {}
    # sampled_from leans to its first element: the common case comes first.
    for index in range(draw(st.sampled_from([1, 2, 3, 0]))):
        factor = draw(st.sampled_from([2, 3, 1]))
        replicas = []
        for shard in range(draw(st.integers(1, 4))):
            holders = draw(st.lists(st.sampled_from(peers), min_size=1, max_size=factor, unique=True))
            states = st.sampled_from(["Active"] * 30 + ["Dead", "Partial"])
            replicas += [{"shard_id": shard, "peer_id": p, "state": draw(states)} for p in holders]
        placements[f"c{index}"], factors[f"c{index}"] = replicas, factor
    # Mostly one peer down, the case the healer is for; sometimes none, several or most.
    down = draw(st.sampled_from([1, 1, 1, 1, 0, 2, len(peers) // 2 + 1]))
    unreachable = frozenset(draw(st.lists(st.sampled_from(peers), unique=True, min_size=down, max_size=down)))
    reachable = [p for p in peers if p not in unreachable]
    observation = Observation(
        now=NOW,
        peers=frozenset(peers),
        leader=draw(st.sampled_from([*reachable, None])) if reachable else None,
        unreachable=unreachable,
        placements=placements,
        factors=factors,
        transfers=draw(st.sampled_from([0] * 9 + [1])),
        planned_work=draw(st.sampled_from([()] * 9 + [("restore.yml",), None])),
        free_bytes=draw(
            st.sampled_from([{p: 10.0**12 for p in reachable}, None, {p: 1.0 for p in reachable}])
        ),
        shard_bytes={(c, r["shard_id"]): 1000.0 for c, rs in placements.items() for r in rs},
        zones=zones,
    )
    state = HealerState(
        unreachable_since={p: NOW - draw(st.sampled_from([5000, 600, 300, 0])) for p in unreachable},
        last_action=draw(st.sampled_from([None, None, None, NOW - 7200, NOW - 100])),
    )
    return observation, state


def holders_after(observation: Observation, decision) -> dict[tuple[str, int], set[int]]:
    """Each shard's holders once the plan ran and the dead peers were removed."""
    held: dict[tuple[str, int], set[int]] = {}
    for name, placement in observation.placements.items():
        for r in placement:
            if r["peer_id"] not in decision.remove:
                held.setdefault((name, r["shard_id"]), set()).add(r["peer_id"])
    for t in decision.replications:
        held[(t.collection, t.shard_id)].add(t.to_peer)
    return held


PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_the_generated_cases_include_real_actions():
    """Else every property below could pass without ever checking an action."""
    found = find(
        observations(),
        lambda case: (d := decide(*case, POLICY)).acts and len(d.replications) >= 3 and bool(case[0].zones),
        settings=settings(max_examples=2000, deadline=None, database=None),
    )
    assert found


@PROPERTY
@given(observations())
def test_never_acts_on_lost_quorum_or_without_a_leader(case):
    observation, state = case
    decision = decide(observation, state, POLICY)
    reachable = len(observation.peers - observation.unreachable)
    if reachable * 2 <= len(observation.peers) or observation.leader is None:
        assert not decision.acts
        if decision.dead:
            assert {"quorum", "no_leader"} & set(decision.refusals)


@PROPERTY
@given(observations())
def test_acts_only_on_peers_past_the_grace_period_and_never_on_refusal(case):
    observation, state = case
    decision = decide(observation, state, POLICY)
    for peer in decision.dead:
        assert NOW - state.unreachable_since[peer] >= POLICY.grace
    assert set(decision.remove) <= set(decision.dead) <= observation.unreachable
    assert set(decision.refusals) <= set(REASONS)
    if decision.acts:
        assert not decision.refusals and observation.planned_work == () and observation.transfers == 0


@PROPERTY
@given(observations())
def test_never_removes_a_peer_whose_shards_lack_an_active_copy_on_a_live_peer(case):
    observation, state = case
    decision = decide(observation, state, POLICY)
    if not decision.acts:
        return
    live = observation.peers - observation.unreachable
    for name, placement in observation.placements.items():
        for r in placement:
            if r["peer_id"] in decision.remove:
                assert any(
                    o["shard_id"] == r["shard_id"] and o["peer_id"] in live and o["state"] == "Active"
                    for o in placement
                ), (name, r)
    for t in decision.replications:
        assert t.from_peer in live


@PROPERTY
@given(observations())
def test_plan_places_each_copy_once_on_a_live_peer_and_reaches_the_factor(case):
    observation, state = case
    decision = decide(observation, state, POLICY)
    if not decision.acts:
        return
    live = observation.peers - observation.unreachable
    targets = Counter((t.collection, t.shard_id, t.to_peer) for t in decision.replications)
    assert max(targets.values(), default=1) == 1
    before = {
        (name, r["shard_id"], r["peer_id"])
        for name, placement in observation.placements.items()
        for r in placement
        if r["peer_id"] not in decision.remove
    }
    for t in decision.replications:
        assert t.to_peer in live and (t.collection, t.shard_id, t.to_peer) not in before
    for (name, _), holders in holders_after(observation, decision).items():
        assert len(holders) >= observation.factors[name]


@PROPERTY
@given(observations())
def test_new_replicas_never_crowd_a_zone_needlessly(case):
    observation, state = case
    decision = decide(observation, state, POLICY)
    if not decision.acts or not decision.replications:
        return
    live = observation.peers - observation.unreachable
    for (name, shard), holders in holders_after(observation, decision).items():
        survivors = {
            r["peer_id"]
            for r in observation.placements[name]
            if r["shard_id"] == shard and r["peer_id"] not in decision.remove
        }
        if holders == survivors:
            continue
        pool = live | survivors
        if spread_is_even(survivors, pool, observation.zones):
            assert spread_is_even(holders, pool, observation.zones), (name, shard, survivors, holders)


@PROPERTY
@given(observations())
def test_a_run_right_after_a_successful_one_does_nothing(case):
    observation, state = case
    decision = decide(observation, state, POLICY)
    if not decision.acts:
        return
    healed = Observation(
        now=NOW + 60,
        peers=observation.peers - set(decision.remove),
        leader=observation.leader,
        unreachable=observation.unreachable - set(decision.remove),
        placements={
            name: [r for r in placement if r["peer_id"] not in decision.remove]
            + [{"shard_id": t.shard_id, "peer_id": t.to_peer, "state": "Active"}
               for t in decision.replications if t.collection == name]
            for name, placement in observation.placements.items()
        },
        factors=observation.factors,
        zones=observation.zones,
    )  # fmt: skip
    state.last_action = NOW
    state.seen(healed)
    again = decide(healed, state, POLICY)
    assert not again.acts and not again.replications
    # and another peer lost now waits for the cooldown, whatever the grace period says
    state.unreachable_since = {p: 0.0 for p in healed.peers}
    later = decide(Observation(**{**healed.__dict__, "unreachable": healed.peers}), state, POLICY)
    assert not later.acts and "cooldown" in later.refusals


# -- examples the operator meets -------------------------------------------------------------------
def three_peers(**changes) -> Observation:
    placement = [
        {"shard_id": s, "peer_id": p, "state": "Active"}
        for s in range(6)
        for p in ((s % 3) + 1, ((s + 1) % 3) + 1)
    ]
    base = dict(now=NOW, peers=frozenset({1, 2, 3}), leader=1, unreachable=frozenset({3}),
                placements={"c": placement}, factors={"c": 2})  # fmt: skip
    return Observation(**{**base, **changes})


def test_one_node_lost_on_three_with_factor_two_waits_then_acts():
    observation = three_peers()
    state = HealerState()
    state.seen(observation)
    waiting = decide(observation, state, POLICY)
    assert not waiting.dead and waiting.waiting == {3: 600}
    later = Observation(**{**observation.__dict__, "now": NOW + 601})
    state.seen(later)
    decision = decide(later, state, POLICY)
    assert decision.acts and decision.remove == (3,)
    # every shard peer 3 held (4 of 6) gets a new replica on the one peer that lacks it
    assert sorted((t.shard_id, t.to_peer) for t in decision.replications) == [(1, 1), (2, 2), (4, 1), (5, 2)]
    assert decision.missing_replicas == 4


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"unreachable": frozenset({2, 3}), "leader": None}, "quorum"),
        ({"planned_work": ("playbooks/restore.yml recovers collections",)}, "planned_work"),
        ({"planned_work": None}, "lock_unknown"),
        ({"transfers": 1}, "busy"),
        ({"free_bytes": {1: 1000.0, 2: 1000.0}, "shard_bytes": {("c", s): 1e9 for s in range(6)}}, "disk"),
        ({"free_bytes": {1: 1e12}, "shard_bytes": {("c", s): 1e9 for s in range(6)}}, "disk_unknown"),
        ({"factors": {"c": 1}}, "too_many_down"),
        ({"placements": {"c": [{"shard_id": 0, "peer_id": 3, "state": "Active"}]}}, "last_copy"),
        (
            {
                "placements": {"c": [{"shard_id": 0, "peer_id": p, "state": "Active"} for p in (1, 3)]},
                "factors": {"c": 3},
            },
            "cannot_place",
        ),
    ],
)
def test_refusals_name_their_reason(changes, reason):
    observation = three_peers(**changes)
    state = HealerState(unreachable_since={p: 0.0 for p in observation.unreachable})
    decision = decide(observation, state, POLICY)
    assert not decision.acts and reason in decision.refusals, decision.refusals


def test_an_interrupted_action_is_finished_despite_the_cooldown():
    observation = three_peers()
    state = HealerState(unreachable_since={3: 0.0}, last_action=NOW - 60)
    assert "cooldown" in decide(observation, state, POLICY).refusals
    state.acting_on = (3,)
    assert decide(observation, state, POLICY).acts


# -- settings, state file, metrics -----------------------------------------------------------------
def write_config(tmp_path, text: str):
    path = tmp_path / "healer.yml"
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cluster: prod\n", "qdrant.urls"),
        ("qdrant: {urls: [http://a:6333]}\n", "set 'cluster'"),
        ("cluster: p\nqdrant: {urls: [http://a:6333]}\ngrace: 5\n", "unknown keys grace"),
        ("cluster: p\nqdrant: {urls: [http://a:6333]}\ngrace_seconds: -1\n", "grace_seconds must be"),
        ("cluster: p\nqdrant: {urls: [http://a:6333]}\ngrace_seconds: yes\n", "must be a number"),
        ("cluster: p\nqdrant: {urls: [http://a:6333]}\ndry_run: 'no'\n", "true or false"),
        ("cluster: p\nqdrant: {urls: [http://a:6333]}\ntransfer_method: rsync\n", "transfer_method"),
        (
            "cluster: p\nqdrant: {urls: [http://a:6333]}\ndisk: {prometheus_url: http://p:9090}\n",
            "disk.hosts",
        ),
        ("cluster: p\nqdrant: {urls: [http://a:6333]}\nalertmanager: {url: a:9093}\n", r"an http\(s\) URL"),
        ("cluster: p\nqdrant: {urls: [http://a:6333]}\nzones: {a: 3}\n", "zone names"),
        ("- a\n", "must be a mapping"),
        ("cluster: [\n", "not valid YAML"),
    ],
)
def test_bad_settings_are_named(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        healer_config.load(write_config(tmp_path, text))


def test_settings_and_the_cli_refusal(tmp_path, capsys):
    path = write_config(
        tmp_path,
        f"""\
        cluster: prod
        qdrant: {{urls: ["http://127.0.0.1:1"], timeout: 2}}
        grace_seconds: 120
        enabled: false
        state_file: {tmp_path / "state.json"}
        metrics_dir: {tmp_path / "metrics"}
        """,
    )
    config = healer_config.load(path)
    assert config.policy.grace == 120 and config.policy.cooldown == 3600 and not config.enabled
    assert main(["cluster", "heal", "--config", path]) == 0  # switched off: nothing observed
    assert "switched off" in capsys.readouterr().err
    metrics = (tmp_path / "metrics" / healer_metrics.FILENAME).read_text()
    assert 'qdrant_ops_healer_enabled{cluster="prod"} 0.0' in metrics
    assert all(f'qdrant_ops_healer_refusing{{cluster="prod",reason="{r}"}} 0.0' in metrics for r in REASONS)
    on = path.replace("healer.yml", "on.yml")
    (tmp_path / "on.yml").write_text(
        (tmp_path / "healer.yml").read_text().replace("enabled: false", "enabled: true")
    )
    assert main(["cluster", "heal", "--config", on]) == 2  # nobody answers: a clear error, metrics say so
    assert "no node answered" in capsys.readouterr().err
    assert (
        'qdrant_ops_healer_last_run_success{cluster="prod"} 0.0'
        in (tmp_path / "metrics" / healer_metrics.FILENAME).read_text()
    )


def test_state_file_round_trip_and_damage(tmp_path):
    path = tmp_path / "state.json"
    lines = []
    state = HealerState(unreachable_since={3: 5.0}, last_action=7.0, acting_on=(3,), actions=2)
    healer_run.save_state(path, state)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert healer_run.load_state(path, lines.append) == state
    path.write_text(json.dumps({"unreachable_since": {"x": "y"}}))
    assert healer_run.load_state(path, lines.append) == HealerState() and "starting afresh" in lines[0]


def test_a_state_file_that_cannot_be_written_stops_the_run_with_the_fix(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(healer_run.HealerError, match=r"cannot write the healer's state file .*ReadWrite"):
        healer_run.save_state(tmp_path / "file/state.json", HealerState())


class _OnlyPeerOneAnswers:
    """Peers 1-3 on 127.0.0.1-3; only peer 1 answers (the others' ports are closed)."""

    urls = ("http://127.0.0.1:1",)

    def probe_peer_id(self, url, timeout=3.0):
        return 1 if "127.0.0.1" in url else None


def test_no_leader_is_reported_as_leader_zero_and_counts_as_none():
    """Seen in the lab with two of three nodes stopped: raft_info.leader is 0, which is no peer."""
    peers = {str(p): {"uri": f"http://127.0.0.{p}:9"} for p in (1, 2, 3)}
    status = {"status": "enabled", "peers": peers, "raft_info": {"leader": 0}}
    leader, unreachable, notes = healer_run._reachability(_OnlyPeerOneAnswers(), status)
    assert leader is None and unreachable == {2, 3}
    assert "nor does a raft leader" in notes[0]


class _GeneratedCluster:
    """A cluster as the run observes it: which peers answer nothing here (`silent`) and which the
    raft leader cannot send to (`failing`, as the leader's message_send_failures spells them)."""

    urls = ("http://node-1:6333",)

    def __init__(self, silent, failing, spelling):
        self.silent, self.failing, self.spelling = silent, failing, spelling
        self.asked_leader = []

    def cluster_status(self, node=None):
        self.asked_leader.append(node)
        return {"message_send_failures": {self.spelling(p): {"count": 3} for p in self.failing}}


@PROPERTY
@given(
    st.integers(3, 7).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.sets(st.integers(1, n)),
            st.sets(st.integers(1, n)),
            st.sampled_from([*range(1, n + 1), 0, None, 99]),
            st.sampled_from([str.lower, str.upper]),
        )
    )
)
def test_observation_counts_a_peer_down_only_when_here_and_the_leader_agree(case):
    """Whatever answers here and whatever the leader reports: a peer the leader reaches is never
    counted down; without a leader that can be asked the run reports none, so it cannot act."""
    n, silent, failing, leader, case_of_host = case
    peers = {str(p): {"uri": f"http://node-{p}:6335"} for p in range(1, n + 1)}
    status = {"status": "enabled", "peers": peers, "raft_info": {"leader": leader}}
    cluster = _GeneratedCluster(silent, failing, lambda p: f"http://{case_of_host('NODE-')}{p}:6335/")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            healer_run.replicas, "sign_of_life", lambda _c, p, _peers: None if p in silent else "answers"
        )
        found_leader, unreachable, notes = healer_run._reachability(cluster, status)
    assert unreachable <= silent
    if found_leader is None:
        assert unreachable == silent
        observation = Observation(NOW, frozenset(range(1, n + 1)), None, unreachable, {}, {})
        assert not decide(observation, HealerState({p: 0.0 for p in unreachable}), POLICY).acts
    else:
        assert found_leader == leader and leader not in silent
        assert unreachable == silent & failing
        assert cluster.asked_leader == ([f"http://node-{leader}:6333"] if silent else [])
        assert len(notes) == len(silent - failing)
