"""API keys, read from files or given inline: exactly one printable-ASCII line.

A key goes into HTTP headers, where control characters and non-ASCII text are not allowed, and a
second line (an old and a new key during a rotation) would be sent as part of the key and then
printed in the error. Messages name the file and what is wrong with it, never its content.
"""

from __future__ import annotations

from pathlib import Path

from qdrant_ops.errors import ConfigError
from qdrant_ops.redact import register


def read_key_file(path: str | Path, what: str) -> str:
    """The one key in the file (surrounding whitespace and the final newline removed); `what`
    names the file in messages ("the API key file", "--api-key-file")."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ConfigError(
            f"{what} {path} holds non-ASCII bytes: a key is printable ASCII; write the key alone"
        ) from None
    return check_key(text, f"{what} {path}")


def check_key(text: str, where: str) -> str:
    """`text` as a key: one printable-ASCII line without spaces. `where` names its source in
    messages (a file, a config key, an environment variable); the key itself is never shown."""
    if not text:
        raise ConfigError(f"{where} is empty: write the key into it")
    lines = text.splitlines()
    if len(lines) > 1:
        raise ConfigError(
            f"{where} holds {len(lines)} lines: put exactly one key in it "
            "(during a rotation, the key the nodes accept now)"
        )
    if any(not 0x20 < ord(char) < 0x7F for char in text):
        raise ConfigError(
            f"{where} holds a space, control or non-ASCII character inside the key: write the key alone"
        )
    return register(text)  # never shown in a message from now on (redact.py)
