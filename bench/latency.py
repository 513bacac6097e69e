"""Registration → remediated latency through real master, minion, beacon and reactor.

Runs the end-to-end test (tests/integration/e2e) that registers sessions by hand on the simulated host
and waits until the reactor's policy run made them non-persistent, and reads the figures
it prints. Naive comparison: remediation by a periodic highstate every ``period`` seconds,
whose expected latency is half the period (computed, not measured).
"""

from __future__ import annotations

import re
import subprocess
import sys

from bench.common import REPO

LINE = re.compile(
    r"beacon interval (?P<interval>[\d.]+) s: median (?P<median>[\d.]+) s, worst (?P<worst>[\d.]+) s"
)


def measure(period: float = 60.0) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-s",
            "-p",
            "no:cacheprovider",
            "tests/integration/e2e/test_beacon_reactor.py::test_registration_by_hand_is_undone",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    match = LINE.search(out.stdout)
    if out.returncode != 0 or not match:
        raise RuntimeError(f"end-to-end run failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return {
        "beacon_interval_s": float(match["interval"]),
        "median_s": float(match["median"]),
        "worst_s": float(match["worst"]),
        "naive_highstate_period_s": period,
        "naive_expected_s": period / 2,
    }
