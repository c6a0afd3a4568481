"""Fail when any secret file's content appears in a log (e.g. a molecule run's output).

Usage: python -m tests.support.no_secrets LOG SECRETS_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path


def leaked(log: Path, secrets_dir: Path) -> list[str]:
    text = log.read_text(errors="replace")
    found = []
    for secret_file in sorted(p for p in secrets_dir.rglob("*") if p.is_file()):
        value = secret_file.read_text(errors="replace").strip()
        # Certificates are public; private keys and API keys are not.
        if value and not value.startswith("-----BEGIN CERTIFICATE") and value in text:
            found.append(str(secret_file))
    return found


if __name__ == "__main__":
    log, secrets_dir = Path(sys.argv[1]), Path(sys.argv[2])
    if not secrets_dir.is_dir() or not any(secrets_dir.rglob("*")):
        print(f"error: no secrets under {secrets_dir}: the run did not generate any", file=sys.stderr)
        sys.exit(1)
    problems = leaked(log, secrets_dir)
    for path in problems:
        print(f"error: the content of {path} appears in {log}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"no secret from {secrets_dir} in {log}")
