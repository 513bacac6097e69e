"""get_sessions and policy evaluation at 10, 1,000 and 10,000 sessions on one host.

Ours: one ``get_sessions`` and one policy evaluation (``unregister_session`` in test mode
with a target glob and an exception), each one PowerShell process. Naive policy evaluation:
one call per session (``get_sessions(session_identifier=...)``: a process and a listing each),
measured on 100 sessions and scaled. Growth per 100x sessions should be about 100x
(linear) or less.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import local_host


def measure(n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        host, funcs = local_host(Path(tmp), n, 0.0)
        start = time.monotonic()
        sessions = funcs["iscsi.get_sessions"]()
        get_s = time.monotonic() - start
        assert len(sessions) == n
        start = time.monotonic()
        report = funcs["iscsi.unregister_session"](
            target_node_address="iqn.1991-05.com.contoso:bench-*",
            exclude_target_node_address="*:bench-7",
            test=True,
        )
        policy_s = time.monotonic() - start
        expected = sum(1 for i in range(1, n + 1) if i % 10 != 7)
        assert len(report) == expected, (len(report), expected)
        assert {r["status"] for r in report.values()} == {"would_unregister"}
        sample = [s["SessionIdentifier"] for s in sessions[: min(n, 100)]]
        start = time.monotonic()
        for sid in sample:
            funcs["iscsi.get_sessions"](session_identifier=sid)
        naive_s = (time.monotonic() - start) * n / len(sample)
    return {"n": n, "get_sessions_s": get_s, "policy_s": policy_s, "naive_policy_s": naive_s}
