"""Beacon tick cost: what ``iscsi.beacon_events`` runs each tick (``Monitor.tick`` with the
Windows checker) when nothing changed, against the naive tick (a new PowerShell process and
the full query).

The host has ``sessions`` sessions of which 3 are persistent (allowed by the policy): the
rest are what the policy leaves behind, non-persistent. With only ``not_persistent`` rules
the check asks the persistent-login list alone, so the idle tick should not grow with the
non-persistent sessions. PowerShell's start-up is modelled as ``ps_startup`` seconds.
Run: ``python -m bench.tick [ticks] [ps_startup] [sessions]``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.common import settings_for
from saltext_win_iscsi.backend import backend_for
from saltext_win_iscsi.beacon.monitor import Monitor, MonitorSettings
from saltext_win_iscsi.policy import Policy
from saltext_win_iscsi.selection import Selector
from tests.support.simhost.model import SimulatedHost

POLICY = Policy.parse({"not_persistent": [{"target": "iqn.1991-05.com.contoso:scratch-*"}]})
ALLOWED = "iqn.1991-05.com.contoso:db-01"
LEFT_ALONE = "iqn.1991-05.com.contoso:scratch-01"  # non-persistent, as the policy wants


def _median_seconds(call, times: int) -> float:
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def measure(ticks: int = 50, ps_startup: float = 0.3, sessions: int = 3) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-tick-") as tmp:
        root = Path(tmp)
        host = SimulatedHost(root / "host.json").reset()
        host.add_sessions([ALLOWED] * 3, persistent=True)
        host.add_sessions([LEFT_ALONE] * max(0, sessions - 3))
        host.set_fault("startup_delay", ps_startup)
        backend = backend_for(settings_for(root, host))
        monitor = Monitor(backend.checker(), str(root / "beacon.json"))
        settings = MonitorSettings()

        def tick() -> None:
            """One tick and the check it starts, to the end (a tick itself never waits that
            long: the check runs in the background and the next tick collects it)."""
            monitor.tick(settings, POLICY, lambda: False)
            worker = monitor._worker  # noqa: SLF001  (the bench waits; a tick never does)
            if worker is not None:
                worker.join()

        tick()  # the first starts PowerShell and reads everything
        host.reset_stats()
        idle = _median_seconds(tick, ticks)
        idle_processes = host.stats()["processes"]
        monitor.close()
        host.reset_stats()
        queries = max(5, ticks // 10)
        full = _median_seconds(lambda: backend.get_sessions(Selector()), queries)
        full_processes = host.stats()["processes"]
    return {
        "ticks": ticks,
        "sessions": sessions,
        "ps_startup": ps_startup,
        "idle_tick_s": idle,
        "idle_processes": idle_processes,
        "full_query_s": full,
        "full_processes": full_processes,
        "full_queries": queries,
        "ratio": idle / full,
    }


def main(argv: list[str]) -> None:
    ticks = int(argv[0]) if argv else 50
    startup = float(argv[1]) if len(argv) > 1 else 0.3
    sessions = int(argv[2]) if len(argv) > 2 else 3
    r = measure(ticks, startup, sessions)
    print(
        f"Beacon tick (Monitor.tick and the check it starts, to the end), simulated Windows host ({sessions} sessions, 3 "
        f"persistent; PowerShell start-up modelled as {startup} s), median of {ticks} idle "
        f"ticks:\n"
        f"  idle tick (kept PowerShell, persistent-login digest): "
        f"{r['idle_tick_s'] * 1000:.2f} ms, {r['idle_processes']} processes started\n"
        f"  naive tick (new PowerShell + Get-IscsiSession): {r['full_query_s'] * 1000:.1f} ms, "
        f"{r['full_processes']} processes for {r['full_queries']} queries\n"
        f"  ratio: {r['ratio']:.4f} (target <= 0.01)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
