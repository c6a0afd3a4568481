"""One redaction for every message the CLI and the modules print: the secrets this process read
(API keys, S3 secret keys, registered where they are read) and the signing parts of presigned S3
URLs, in every shape an error can carry them: plain, JSON-escaped (`https:\\/\\/`), Rust's Debug
form of a URL (`query: Some("X-Amz-...")`), percent-encoded (`X-Amz-Signature%3D...`), and with
lower-case parameter names. A presigned URL is a bearer token for its object until it expires."""

from __future__ import annotations

import re
import threading

HIDDEN = "<hidden>"
# The query parameters that sign or authorise a presigned URL (SigV4 and SigV2), case-insensitive,
# followed by '=' or its percent-encoding; the value ends at the next separator in any shape.
_SIGNING = re.compile(
    r"(?i)(?<![a-z])(x-amz-(?:signature|credential|security-token)|signature|awsaccesskeyid)(=|%3D)"
    r"(?:[^&\s\"'\\)%,;<>]|%(?!26)[0-9A-Fa-f]{2})*"
)
_MIN_SECRET = 4  # shorter strings would hide ordinary words
_secrets: set[str] = set()
_lock = threading.Lock()


def register(secret: str | None) -> str | None:
    """Remember a secret this process holds, so that no message shows it; returns it unchanged."""
    if secret and len(secret) >= _MIN_SECRET:
        with _lock:
            _secrets.add(secret)
    return secret


def redact(text: str) -> str:
    """`text` without any registered secret and without presigned URLs' signing values."""
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)  # longest first: a key inside another
    for secret in known:
        text = text.replace(secret, HIDDEN)
    return _SIGNING.sub(lambda match: f"{match.group(1)}{match.group(2)}{HIDDEN}", text)
