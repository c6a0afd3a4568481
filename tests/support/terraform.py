"""The one way the tests read terraform/: a parse that does not depend on how a python-hcl2
version prints things.

python-hcl2 changed its output across majors: up to 4.x (and checkov's fork, bc-python-hcl2) it
wraps every attribute value in a one-element list and prints string literals bare; from 7.x it
keeps the source's quotes around block labels and string literals (`"\\"qdrant\\""`), adds
`__is_block__` / `__comments__` markers, and gives line numbers only when asked. Everything here
is normalised to one shape:

- block labels and string literals without their quotes (`qdrant`, `s3:GetObject`);
- expressions as `${...}` text, as terraform would interpolate them;
- attribute values as they are (a list is a list, a scalar a scalar);
- every block as a list of dicts (blocks may repeat), with `__start_line__`/`__end_line__`;
- no parser markers or comments.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import hcl2

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "terraform"
_MARKERS = ("__is_block__", "__comments__", "__inline_comments__")


def _options():
    """python-hcl2 >= 7 only gives line numbers when asked; older versions always give them."""
    try:
        from hcl2.utils import SerializationOptions  # noqa: PLC0415  (absent before 7.x)
    except ImportError:
        return {}
    return {"serialization_options": SerializationOptions(with_meta=True, with_comments=False)}


def unquote(text: str) -> str:
    """A string literal without its quotes, escapes decoded; anything else unchanged."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            decoded = json.loads(text)
        except ValueError:  # HCL escapes JSON does not know (e.g. `$${`): strip the quotes only
            return text[1:-1]
        return decoded if isinstance(decoded, str) else text
    return text


def normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {unquote(key): normalise(item) for key, item in value.items() if key not in _MARKERS}
    if isinstance(value, list):
        return [normalise(item) for item in value]
    if isinstance(value, str):
        return unquote(value)
    return value


@cache
def parse(path: Path) -> dict:
    """One .tf file, normalised (cached: the tests read the same files many times)."""
    with path.open() as handle:
        return normalise(hcl2.load(handle, **_options()))


def module(directory: Path = TF) -> dict[str, dict]:
    """Every .tf file of a module directory, by file name."""
    return {path.name: parse(path) for path in sorted(directory.glob("*.tf"))}


def blocks(parsed_files: dict[str, dict], kind: str, type_: str) -> dict[str, dict]:
    """Every `kind "type_" "name" {}` block (resource, data) of a module, by name."""
    found: dict[str, dict] = {}
    for parsed in parsed_files.values():
        for block in parsed.get(kind, []):
            found.update(block.get(type_, {}))
    return found


def single(value: Any) -> Any:
    """The one block of a nested block list (`metadata_options { ... }` parses as [{...}])."""
    assert isinstance(value, list) and len(value) == 1, f"expected exactly one block, got {value!r}"
    return value[0]
