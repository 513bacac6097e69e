"""Per-session and per-login reports, the same on every backend: a ``status`` per entry,
``failed`` entries with an ``error``."""

from __future__ import annotations

from saltext_win_iscsi.errors import IscsiError


def failed(report: dict | list) -> bool:
    """Whether a per-session or per-login report holds a failure."""
    entries = report.values() if isinstance(report, dict) else report
    return any(isinstance(e, dict) and e.get("status") == "failed" for e in entries)


def passthru_error(report: dict, done_status: str) -> IscsiError:
    """What ``passthru=True`` raises when a session failed: each failure, then what was done."""
    failures = "; ".join(
        f"{sid}: {e['error']}" for sid, e in report.items() if e["status"] == "failed"
    )
    done = ", ".join(s for s, e in report.items() if e["status"] == done_status) or "none"
    return IscsiError(f"iSCSI: {failures}; {done_status}: {done}")
