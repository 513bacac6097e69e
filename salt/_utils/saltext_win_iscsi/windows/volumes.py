"""Persistently bound volumes: the iSCSI service does not finish starting until every
volume on its bound list is there (SetupPersistentIScsiDevices; iscsicli
BindPersistentVolumes). A target that no longer reconnects at boot must take its volumes
off the list, or every boot waits for them until the service gives up.
"""

from __future__ import annotations

from saltext_win_iscsi.windows.hostcall import HostCall
from saltext_win_iscsi.windows.protocol import describe_windows_error


def unbind_volumes(
    host: HostCall, session_ids: list[str], test: bool, keep_reconnecting: bool = False
) -> list[dict]:
    """Take the volumes of these sessions' disks off the bound list (``test``: only say
    which; ``keep_reconnecting``: not those of a target that a persistent login still
    brings back at boot). One entry per list entry: ``session``, ``path``, ``status``
    (``unbound``, ``would_unbind``, ``failed`` with ``error``)."""
    if not session_ids:
        return []
    results = host.request(
        "unbind_volumes",
        ids=list(session_ids),
        test=bool(test),
        keep_reconnecting=keep_reconnecting,
    )["results"]
    report = []
    for item in results:
        entry = {"session": item.get("id"), "path": item.get("path")}
        if not item.get("ok"):
            entry.update(status="failed", error=describe_windows_error(item.get("error") or {}))
        elif test:
            entry["status"] = "would_unbind"
        else:
            entry["status"] = "unbound"
            host.done.append(f"unbind volume {item.get('path')}")
        report.append(entry)
    return report


def bound_sessions(sessions: list[dict]) -> list[str]:
    """Ids of the sessions (read with disks) that have a volume on the bound list."""
    return [
        s["SessionIdentifier"]
        for s in sessions
        if any(v.get("IsBound") for d in s.get("Disks") or [] for v in d.get("Volumes") or [])
    ]
