"""LUN availability: a session this extension made must show its target's disks.

After a login the disks behind it appear when the array presents its LUNs and the host
has enumerated them, usually within seconds; a target that maps no LUN to this initiator
shows none at all. ``iscsi.connected`` waits for them, bounded, and reports "session up,
no disk" as a failure instead of success when none appears (``iscsi.rescan`` asks the
host to look again).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from saltext_win_iscsi.outcome import Outcome, disk_names
from saltext_win_iscsi.spec import TargetSpec, same_target

POLL = 0.5  # seconds between two reads while waiting
# Why a session's disks are unknown (``DisksUnknown``): said by the wait and by ``absent``.
DISKS_UNKNOWN = (
    "its disks are unknown (none found, but the cluster service runs: Windows may not "
    "associate clustered disks with the session)"
)


def wait_for_disks(
    read: Callable[[], list[dict]],
    spec: TargetSpec,
    timeout: float,
    report: Outcome,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Read the target's sessions (with their disks) until one shows a disk or ``timeout``
    seconds passed; then an error in ``report`` if none did (a comment, at once, if the
    host cannot tell their disks)."""
    deadline = clock() + timeout
    while True:
        sessions = [s for s in read() if same_target(s, spec.node_address)]
        if any(s.get("DisksUnknown") for s in sessions):
            report.comments.append(f"{spec.node_address}: not waiting for disks: {DISKS_UNKNOWN}")
            return
        disks = disk_names(sessions)
        if disks or clock() >= deadline:
            break
        sleep(min(POLL, max(0.0, deadline - clock())))
    if not disks:
        report.error(
            f"session up, no disk: {spec.node_address} is connected but shows no disk after "
            f"{timeout:g} s (no LUN mapped to this initiator, or not yet seen: iscsi.rescan)"
        )


def made_a_session(report: Outcome) -> bool:
    """Whether the run connected a path (its changes name a new session)."""
    return any(key.startswith("session ") for key in report.changes)
