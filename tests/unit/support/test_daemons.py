"""Test daemons: killed at the end of ``running``, stopped gracefully inside it."""

import signal
import sys

from pytestshellutils.shell import Daemon

from tests.support import daemons

# Exits 0 on SIGTERM, as a Salt daemon does when it is stopped gracefully.
GRACEFUL = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    "time.sleep(120)\n"
)


def daemon() -> Daemon:
    return Daemon(script_name=sys.executable, base_script_args=["-c", GRACEFUL], start_timeout=30)


def test_a_daemon_is_killed_when_the_block_ends():
    factory = daemon()
    with daemons.running(factory):
        assert factory.is_running()
    assert not factory.is_running()
    assert factory.terminate().returncode == -signal.SIGKILL


def test_a_stop_inside_the_block_stays_graceful():
    factory = daemon()
    with daemons.running(factory):
        assert factory.terminate().returncode == 0
        factory.start()
        assert factory.is_running()
    assert factory.terminate().returncode == -signal.SIGKILL
