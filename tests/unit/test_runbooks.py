"""docs/runbooks.md has one section per alert that files/alerts ships, and none for an alert that
is gone."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_every_alert_has_its_runbook_section_and_no_other():
    alerts = {
        rule["alert"]
        for path in (ROOT / "files/alerts").glob("*.rules.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    sections = {
        line[3:].strip()
        for line in (ROOT / "docs/runbooks.md").read_text().splitlines()
        if line.startswith("## ")
    }
    assert sections == alerts, {"missing": alerts - sections, "stale": sections - alerts}
