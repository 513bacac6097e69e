"""PowerShell processes and wall time to unregister N sessions: one call vs a loop.

Ours: one ``iscsi.unregister_session(target_node_address=...)`` for all N sessions. Naive:
one call per session, as ``Unregister-IscsiSession`` run in a loop would be (each call is a
PowerShell process). For N = 1000 the naive loop is measured on its first 100 sessions and
scaled (marked "extrapolated"), to keep the run short.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import local_host

NAIVE_SAMPLE = 100


def measure(n: int, ps_startup: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-proc-") as tmp:
        host, funcs = local_host(Path(tmp), n, ps_startup)
        host.reset_stats()
        start = time.monotonic()
        report = funcs["iscsi.unregister_session"](target_node_address="*:bench-*")
        ours_s = time.monotonic() - start
        assert sum(r["status"] == "unregistered" for r in report.values()) == n
        ours_p = host.stats()["processes"]
    with tempfile.TemporaryDirectory(prefix="bench-proc-") as tmp:
        host, funcs = local_host(Path(tmp), n, ps_startup)
        ids = [s["SessionIdentifier"] for s in host.sessions()]
        sample = ids[: min(n, NAIVE_SAMPLE)]
        host.reset_stats()
        start = time.monotonic()
        for sid in sample:
            funcs["iscsi.unregister_session"](session_identifier=sid)
        naive_s = (time.monotonic() - start) * n / len(sample)
        naive_p = host.stats()["processes"] * n // len(sample)
    return {
        "n": n,
        "ours_processes": ours_p,
        "ours_s": ours_s,
        "naive_processes": naive_p,
        "naive_s": naive_s,
        "naive_extrapolated": len(sample) < n,
    }
