"""Beacon tick cost: an idle tick (nothing new) vs a tick that runs the full query.

Ours: ``iscsi.watch(previous_digest=..., keep_open=True)``, what the beacon calls each tick:
one digest request to a PowerShell kept open between ticks. Naive: a new PowerShell process
per tick running the full ``Get-IscsiSession`` query (``iscsi.get_sessions``). The Windows
side is the simulated host; powershell.exe's start-up is modelled as ``ps_startup`` seconds.
Run: ``python -m bench.tick [ticks] [ps_startup] [sessions]``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.common import loader
from tests.support.simhost.model import SimulatedHost
from tests.support.simhost.powershell_standin import install


def _median_seconds(call, ticks: int) -> float:
    samples = []
    for _ in range(ticks):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def measure(ticks: int = 50, ps_startup: float = 0.3, sessions: int = 3) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-tick-") as tmp:
        root = Path(tmp)
        host = SimulatedHost(root / "host.json").reset(sessions=min(sessions, 3))
        for _ in range(max(0, sessions - 3)):
            host.add_session("iqn.1991-05.com.contoso:bench", persistent=True)
        host.set_fault("startup_delay", ps_startup)
        funcs = loader(
            root,
            **{
                "iscsi.backend": "windows",
                "iscsi.powershell": str(install(root / "bin", host.path)),
            },
        )
        digest = funcs["iscsi.watch"](keep_open=True)["digest"]  # the beacon's first tick
        host.reset_stats()
        idle = _median_seconds(
            lambda: funcs["iscsi.watch"](previous_digest=digest, keep_open=True), ticks
        )
        idle_processes = host.stats()["processes"]
        host.reset_stats()
        full = _median_seconds(funcs["iscsi.get_sessions"], max(5, ticks // 10))
        full_processes = host.stats()["processes"]
    return {
        "ticks": ticks,
        "sessions": sessions,
        "ps_startup": ps_startup,
        "idle_tick_s": idle,
        "idle_processes": idle_processes,
        "full_query_s": full,
        "full_processes": full_processes,
        "ratio": idle / full,
    }


def main(argv: list[str]) -> None:
    ticks = int(argv[0]) if argv else 50
    startup = float(argv[1]) if len(argv) > 1 else 0.3
    sessions = int(argv[2]) if len(argv) > 2 else 3
    r = measure(ticks, startup, sessions)
    print(
        f"Beacon tick, simulated Windows host ({sessions} sessions, PowerShell start-up "
        f"modelled as {startup} s), median of {ticks} idle ticks:\n"
        f"  idle tick (kept PowerShell, digest only): {r['idle_tick_s'] * 1000:.2f} ms, "
        f"{r['idle_processes']} processes started\n"
        f"  full query (new PowerShell + Get-IscsiSession): {r['full_query_s'] * 1000:.1f} ms, "
        f"{r['full_processes']} processes for {max(5, ticks // 10)} queries\n"
        f"  ratio: {r['ratio']:.4f} (target < 0.01)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
