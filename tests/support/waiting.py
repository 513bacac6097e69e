"""Waiting on a condition, never on a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def wait_for(predicate: Callable[[], object], timeout: float, step: float = 0.05) -> float:
    """Seconds until ``predicate()`` held; fails the test after ``timeout`` seconds, naming
    the predicate by its docstring."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"not within {timeout} s: {predicate.__doc__ or predicate}")
        time.sleep(step)
    return time.monotonic() - start
