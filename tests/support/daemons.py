"""Test daemons' lifetime: started for a fixture, killed at its end.

A fixture's teardown waited on Salt's graceful shutdown (the oldest Salt's e2e package:
23.5 s, against 4.8 s killed); a test daemon has nothing to save at the end, so it gets
SIGKILL, as do its children (salt-factories' ``slow_stop=False``). A stop or restart
inside a test (``terminate()``, then ``start()``) stays graceful, as an admin's is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from pytestshellutils.shell import Daemon


def stop(factory: Daemon) -> None:
    """Kill ``factory``'s daemon and its children (nothing if it is not running)."""
    factory.slow_stop = False
    factory.terminate()


@contextlib.contextmanager
def running(factory: Daemon) -> Iterator[Daemon]:
    """``factory.started()``, killed (``stop``) when the block ends."""
    with factory.started():
        try:
            yield factory
        finally:
            stop(factory)
