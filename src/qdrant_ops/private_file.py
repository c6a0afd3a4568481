"""A JSON file only its owner may read (mode 0600), replaced whole: a reader sees the old file or
the new one, never half of one. The healer's state and the golden queries' file use it."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_json(path: str | os.PathLike, data) -> None:
    """Raises OSError; the caller names the file's purpose and the fix."""
    target = Path(path)
    temporary = target.with_name(target.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    os.replace(temporary, target)
