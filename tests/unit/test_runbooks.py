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


def test_every_alert_links_its_runbook_section():
    """runbook_url is the configurable base plus the section's anchor (GitHub's: the heading in
    lower case), so the link in a page lands on the right section."""
    anchors = {
        "#" + line[3:].strip().lower()
        for line in (ROOT / "docs/runbooks.md").read_text().splitlines()
        if line.startswith("## ")
    }
    for path in (ROOT / "files/alerts").glob("*.rules.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    url = rule["annotations"].get("runbook_url", "")
                    assert url == f"[[ alert.runbook_base_url ]]#{rule['alert'].lower()}", rule["alert"]
                    assert url.split("]]", 1)[1] in anchors, rule["alert"]
    thresholds = yaml.safe_load((ROOT / "files/alerts/thresholds.yml").read_text())
    assert thresholds["runbook_base_url"]
