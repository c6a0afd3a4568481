"""Waiting for the cluster to reach a state, with one deadline rule everywhere."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    missing: Callable[[], str | None], *, timeout: float, interval: float, error: Callable[[str], Exception]
) -> None:
    """Call `missing` every `interval` seconds until it returns None (the state is reached); it
    returns what is still missing otherwise. After `timeout` seconds, raise `error(what is missing)`."""
    deadline = time.monotonic() + timeout
    while (what := missing()) is not None:
        if time.monotonic() > deadline:
            raise error(what)
        time.sleep(interval)
