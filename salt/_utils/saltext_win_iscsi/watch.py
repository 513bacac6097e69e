"""The beacon's cheap check: a digest of persistence, the details only when it changed."""

from __future__ import annotations

from saltext_win_iscsi.selection import Selector
from saltext_win_iscsi.windows.channels import Channel
from saltext_win_iscsi.windows.hostcall import HostCall
from saltext_win_iscsi.windows.persistence import Opener


def watch(
    opener: Opener,
    select: Selector,
    previous_digest: str | None,
    channel: Channel | None = None,
    keep_open: bool = False,
) -> tuple[dict, Channel | None]:
    """``(result, channel)``; ``channel`` is the PowerShell to reuse next time (keep_open).

    ``result``: ``{"digest", "count", "changed"}``, plus, when changed, ``"sessions"``
    (every session), ``"selected"`` (ids of the persistent sessions ``select`` matches)
    and ``"logins"`` (every persistent login, each with ``selected``).
    """
    with HostCall(opener, channel=channel, keep_open=keep_open) as host:
        state = host.request("digest")
        result = {
            "digest": state["digest"],
            "count": state["count"],
            "changed": state["digest"] != previous_digest,
        }
        if result["changed"]:
            sessions = host.sessions()
            logins = host.logins()
            result["sessions"] = sessions
            result["selected"] = [
                s["SessionIdentifier"] for s in sessions if s.get("IsPersistent") and select(s)
            ]
            result["logins"] = [{**lg, "selected": select.selects_login(lg)} for lg in logins]
    return result, (host.channel if keep_open else None)
