"""Planned-work silences against a real Alertmanager (Debian's prometheus-alertmanager) serving
HTTPS with basic auth, as the alertmanager role runs it: playbooks/tasks/silence.yml creates a
silence that suppresses the replica alerts of its own cluster only, while QdrantNodeDown of the
same cluster and every alert of another cluster stay active; the end of the run expires it; a wrong
password or a missing Alertmanager is a warning that does not stop the work, or a failure naming
the cause when `required`."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import bcrypt
import pytest
import yaml

from qdrant_ops import silences
from qdrant_ops.cli import main
from qdrant_ops.cli.app import build_parser
from qdrant_ops.cli.common import planned_work_lock
from tests.support.playbook import ROOT, run_playbook
from tests.support.tls import TestCA

ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
pytestmark = pytest.mark.skipif(
    not Path(ALERTMANAGER).exists(), reason="prometheus-alertmanager missing: run `make deps`"
)
PASSWORD = "planned-work-password"
WRONG = "Wr0ngPassw0rd-xyz"
SILENCE_TASKS = str(ROOT / "playbooks/tasks/silence.yml")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory):
    base = tmp_path_factory.mktemp("am")
    ca = TestCA()
    cert, key = ca.issue(["localhost", "127.0.0.1"]).write(base, "am")
    (base / "ca.crt").write_text(ca.cert_pem)
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web = {"tls_server_config": {"cert_file": str(cert), "key_file": str(key)},
           "basic_auth_users": {"monitoring": hashed}}  # fmt: skip
    (base / "web.yml").write_text(yaml.safe_dump(web))
    (base / "am.yml").write_text(
        yaml.safe_dump({"route": {"receiver": "none"}, "receivers": [{"name": "none"}]})
    )
    port = free_port()
    process = subprocess.Popen(
        [ALERTMANAGER, f"--config.file={base / 'am.yml'}", f"--storage.path={base / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", f"--web.config.file={base / 'web.yml'}",
         "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=(base / "am.log").open("w"),
    )  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            call(url, base, "GET", "/api/v2/status")
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail(f"Alertmanager did not start: {(base / 'am.log').read_text()[-2000:]}")
            time.sleep(0.3)
    yield url, base
    process.terminate()
    process.wait(timeout=30)


def call(url: str, base: Path, method: str, path: str, body=None):
    token = base64.b64encode(f"monitoring:{PASSWORD}".encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, method=method, headers={
        "Authorization": f"Basic {token}", "Content-Type": "application/json"})  # fmt: skip
    context = ssl.create_default_context(cafile=str(base / "ca.crt"))
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        text = response.read()
    return json.loads(text) if text else None


def alert_states(url: str, base: Path) -> dict[tuple[str, str, str], tuple[str, list[str]]]:
    """(alertname, cluster, host) -> (state, silenced by) for every alert Alertmanager holds."""
    found = {}
    for alert in call(url, base, "GET", "/api/v2/alerts"):
        labels = alert["labels"]
        key = (labels["alertname"], labels["cluster"], labels.get("host", ""))
        found[key] = (alert["status"]["state"], alert["status"]["silencedBy"])
    return found


def fire(url: str, base: Path) -> None:
    alerts = [("QdrantDeadReplicas", "prod", "q1"), ("QdrantReplicationBelowTarget", "prod", ""),
              ("QdrantNodeDown", "prod", "q3"), ("QdrantDeadReplicas", "other", "o1")]  # fmt: skip
    body = [{"labels": {"alertname": name, "cluster": cluster, **({"host": host} if host else {})}}
            for name, cluster, host in alerts]  # fmt: skip
    call(url, base, "POST", "/api/v2/alerts", body)


def planned_work(tmp_path: Path, url: str, base: Path, work: str, **overrides) -> tuple:
    """A play shaped like rebalance.yml: silence, the work (`work`: a shell command run between),
    the end of the silence in `always`."""
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "vars": {
            "qdrant_cluster_name": "prod",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "planned_work_alertmanager_url": url,
            "planned_work_alertmanager_user": "monitoring",
            "planned_work_alertmanager_password": PASSWORD,
            "planned_work_alertmanager_ca_file": str(base / "ca.crt"),
            **overrides,
        },
        "tasks": [
            {"name": "silence", "ansible.builtin.import_tasks": SILENCE_TASKS,
             "vars": {"silence_comment": "test: rebalance"}},
            {"name": "work", "block": [{"ansible.builtin.command": work, "changed_when": False}],
             "always": [{"name": "end", "ansible.builtin.import_tasks": SILENCE_TASKS,
                         "vars": {"silence_state": "absent"}}]},
        ],
    }  # fmt: skip
    playbook = tmp_path / "work.yml"
    playbook.write_text(yaml.safe_dump([play]))
    return run_playbook(playbook, "-i", "localhost,", "-c", "local",
                        env={"ANSIBLE_STDOUT_CALLBACK": "default", "USER": "alice"})  # fmt: skip


def test_the_work_silences_its_own_replica_alerts_and_nothing_else(alertmanager, tmp_path):
    url, base = alertmanager
    observed = tmp_path / "observed.json"
    # The work itself records what Alertmanager says while the silence is on.
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import json, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from tests.integration.test_silences import alert_states, fire\n"
        "from pathlib import Path\n"
        f"url, base = {url!r}, Path({str(base)!r})\n"
        "fire(url, base)\n"
        "states = alert_states(url, base)\n"
        f"Path({str(observed)!r}).write_text(json.dumps([[list(k), v] for k, v in states.items()]))\n"
    )
    python = str(ROOT / ".venv/bin/python")
    result, _ = planned_work(tmp_path, url, base, f"{python} {probe}")
    assert result.returncode == 0, result.stdout[-3000:]
    during = {tuple(key): (state, by) for key, (state, by) in json.loads(observed.read_text())}
    assert during[("QdrantDeadReplicas", "prod", "q1")][0] == "suppressed"
    assert during[("QdrantReplicationBelowTarget", "prod", "")][0] == "suppressed"
    assert during[("QdrantNodeDown", "prod", "q3")] == ("active", [])  # a stopped node still pages
    assert during[("QdrantDeadReplicas", "other", "o1")] == ("active", [])  # another cluster too
    silence_id = during[("QdrantDeadReplicas", "prod", "q1")][1][0]
    silence = call(url, base, "GET", f"/api/v2/silence/{silence_id}")
    assert silence["createdBy"] == "qdrant-ops" and "test: rebalance" in silence["comment"]
    assert "alice" in silence["comment"]
    assert silence["status"]["state"] == "expired"  # the end of the run ended it
    fire(url, base)
    assert alert_states(url, base)[("QdrantDeadReplicas", "prod", "q1")] == ("active", [])
    assert "changed=0" in result.stdout.split("PLAY RECAP")[-1]  # the silences are not changes


def test_failed_work_still_ends_the_silence(alertmanager, tmp_path):
    url, base = alertmanager
    before = {s["id"] for s in call(url, base, "GET", "/api/v2/silences")}
    result, _ = planned_work(tmp_path, url, base, "false")
    assert result.returncode != 0
    made = [s for s in call(url, base, "GET", "/api/v2/silences") if s["id"] not in before]
    assert len(made) == 1 and made[0]["status"]["state"] == "expired"


def test_a_silence_ends_by_itself_when_the_run_never_ends_it(alertmanager):
    url, base = alertmanager
    manager = silences.Alertmanager(url, "monitoring", PASSWORD, str(base / "ca.crt"))
    silence_id = silences.add(manager, "prod", ["QdrantDeadReplicas"], 90, comment="bounded")
    silence = call(url, base, "GET", f"/api/v2/silence/{silence_id}")
    assert silence["status"]["state"] == "active"
    starts, ends = (silence[k] for k in ("startsAt", "endsAt"))
    assert ends > starts  # RFC 3339 in UTC: compares as text
    assert "password" not in repr(manager) and PASSWORD not in repr(manager)
    silences.expire(manager, silence_id)
    silences.expire(manager, silence_id)  # twice is fine


def test_a_wrong_password_warns_and_the_work_goes_on(alertmanager, tmp_path):
    url, base = alertmanager
    result, _ = planned_work(tmp_path, url, base, "true", planned_work_alertmanager_password=WRONG)
    assert result.returncode == 0, result.stdout[-3000:]
    output = result.stdout + result.stderr  # warnings go to stderr
    assert "no silence" in output and "HTTP 401" in output and "check the web user and password" in output
    assert WRONG not in output


def test_no_alertmanager_answering_warns_and_the_work_goes_on(alertmanager, tmp_path):
    _, base = alertmanager
    url = f"https://127.0.0.1:{free_port()}"
    result, _ = planned_work(tmp_path, url, base, "true")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "no silence" in result.stderr and "did not answer" in result.stderr
    result, _ = planned_work(tmp_path, url, tmp_path, "true")  # no CA file there
    assert result.returncode == 0, result.stdout[-3000:]
    assert "cannot read the CA file" in result.stderr and "No such file" in result.stderr


def test_no_monitoring_host_means_no_silence(tmp_path):
    result, _ = planned_work(tmp_path, "", tmp_path, "true")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "[WARNING]" not in result.stdout + result.stderr


def run_silence_task(tmp_path: Path, options: dict) -> dict:
    playbook = tmp_path / "silence.yml"
    task = {"qdrant_ops.qdrant.qdrant_silence": options, "ignore_errors": True}
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}]))
    _, report = run_playbook(playbook, "-i", "localhost,", "-c", "local",
                             "-e", "ansible_python_interpreter={{ ansible_playbook_python }}")  # fmt: skip
    return report["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_required_turns_a_refusal_into_a_failure_that_names_it(alertmanager, tmp_path):
    url, base = alertmanager
    common = {
        "alertmanager_url": url,
        "username": "monitoring",
        "ca_cert": str(base / "ca.crt"),
        "cluster": "prod",
    }
    outcome = run_silence_task(tmp_path, {**common, "password": WRONG, "required": True})
    assert outcome["failed"] and "HTTP 401" in outcome["msg"] and WRONG not in json.dumps(outcome)
    outcome = run_silence_task(tmp_path, {**common, "password": PASSWORD, "duration_minutes": 0})
    assert outcome["failed"] and "positive duration" in outcome["msg"], outcome
    outcome = run_silence_task(tmp_path, {**common, "password": PASSWORD, "state": "absent"})
    assert outcome["failed"] and "silence_id" in outcome["msg"], outcome


def lock_args(tmp_path: Path, url: str, base: Path, password: str, *extra: str):
    (tmp_path / "am-password").write_text(password + "\n")
    return build_parser().parse_args(
        ["cluster", "repair", "--url", "http://127.0.0.1:9", "--alertmanager-url", url,
         "--alertmanager-password-file", str(tmp_path / "am-password"),
         "--alertmanager-ca-file", str(base / "ca.crt"), *extra]
    )  # fmt: skip


def test_a_command_run_by_hand_holds_the_lock_the_healer_reads(alertmanager, tmp_path, monkeypatch):
    """`qdrant-ops cluster repair/rebalance` and `restore` hold the same planned-work silence as
    the playbooks while they work; the healer's own reading of it (planned_work_holding) sees it,
    and it is gone when the command ends, also when the command fails."""
    url, base = alertmanager
    manager = silences.Alertmanager(url, "monitoring", PASSWORD, str(base / "ca.crt"))
    monkeypatch.delenv("QDRANT_OPS_CLUSTER", raising=False)
    lines: list[str] = []
    args = lock_args(tmp_path, url, base, PASSWORD, "--lock-cluster", "prod")
    with (
        pytest.raises(RuntimeError, match="the work failed"),
        planned_work_lock(args, "cluster repair", lines.append),
    ):
        held = silences.planned_work_holding(manager, "prod")
        other = silences.planned_work_holding(manager, "other")
        raise RuntimeError("the work failed")
    assert [c for c in held if c.startswith("qdrant-ops cluster repair (started by ")] and not other
    assert not silences.planned_work_holding(manager, "prod")
    assert "lock taken for cluster prod" in lines[0] and "released" in lines[1]
    # The cluster from the environment; a dry run changes nothing, so it takes no lock.
    monkeypatch.setenv("QDRANT_OPS_CLUSTER", "prod")
    with planned_work_lock(lock_args(tmp_path, url, base, PASSWORD, "--dry-run"), "repair", print) as lock:
        assert lock is None and not silences.planned_work_holding(manager, "prod")
    with planned_work_lock(lock_args(tmp_path, url, base, PASSWORD), "repair", print) as lock:
        assert lock and silences.planned_work_holding(manager, "prod")


def test_a_lock_asked_for_and_refused_stops_the_command_before_it_changes_anything(
    alertmanager, tmp_path, monkeypatch, capsys
):
    url, base = alertmanager
    monkeypatch.delenv("QDRANT_OPS_CLUSTER", raising=False)
    (tmp_path / "am-password").write_text(WRONG)
    argv = ["cluster", "rebalance", "--url", "http://127.0.0.1:9", "--alertmanager-url", url,
            "--alertmanager-password-file", str(tmp_path / "am-password"),
            "--alertmanager-ca-file", str(base / "ca.crt")]  # fmt: skip
    assert main(argv) == 2
    assert "pass --lock-cluster NAME" in capsys.readouterr().err
    assert main([*argv, "--lock-cluster", "prod"]) == 2  # the wrong password, before Qdrant is asked
    err = capsys.readouterr().err
    assert "cannot take the planned-work lock" in err and "HTTP 401" in err and WRONG not in err
    assert "127.0.0.1:9" not in err
    missing = str(tmp_path / "nothing")
    assert main([*argv[:6], "--alertmanager-password-file", missing, "--lock-cluster", "prod"]) == 2
    assert "cannot read the Alertmanager password file" in capsys.readouterr().err


def test_no_alertmanager_given_means_no_lock_and_the_command_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("QDRANT_OPS_ALERTMANAGER_URL", raising=False)
    lines: list[str] = []
    args = build_parser().parse_args(["cluster", "rebalance", "--url", "http://127.0.0.1:9"])
    with planned_work_lock(args, "cluster rebalance", lines.append) as lock:
        assert lock is None
    assert "no planned-work lock (no --alertmanager-url)" in lines[0]
