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


class _Missed(Exception):
    pass


def reached(check: Callable[[], bool], *, timeout: float, interval: float) -> bool:
    """`wait_until` for a caller that reports a missed deadline instead of failing on it: True
    once `check()` is true, False when `timeout` passed first."""
    try:
        wait_until(lambda: None if check() else "not yet", timeout=timeout, interval=interval, error=_Missed)
    except _Missed:
        return False
    return True
