"""What an administrator does on the VM with iscsiadm, and what the tests read back.

Independent of the library under test: these helpers run iscsiadm in the guest directly
(not through Salt) and read sessions, records and disks as iscsiadm and sysfs show them.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.initiator_vm.machine import InitiatorVm
from tests.support.initiator_vm.targets import Chap

NO_RECORDS = 21  # iscsiadm: no records, targets or sessions found
_SESSION = re.compile(r"^\S+: \[(?P<sid>\d+)\] (?P<portal>\S+),\d+ (?P<target>\S+)")


def discover(vm: InitiatorVm, portal: str = "127.0.0.1:3260") -> str:
    """``iscsiadm -m discovery -t sendtargets``: new records take iscsid.conf's defaults
    (and, as observed, existing ones have node.startup reset to them)."""
    return vm.iscsiadm("-m", "discovery", "-t", "sendtargets", "-p", portal)


def login(vm: InitiatorVm, target: str, portal: str = "127.0.0.1:3260") -> None:
    vm.iscsiadm("-m", "node", "-T", target, "-p", portal, "--login")


def set_startup(
    vm: InitiatorVm, target: str, portal: str, node: str | None = None, conn: str | None = None
) -> None:
    """``-o update`` of ``node.startup`` and/or ``node.conn[0].startup``, as typed by hand."""
    args = ["-m", "node", "-T", target, "-p", portal, "-o", "update"]
    if node is not None:
        args += ["-n", "node.startup", "-v", node]
    if conn is not None:
        args += ["-n", "node.conn[0].startup", "-v", conn]
    vm.iscsiadm(*args)


def _startups(text: str) -> tuple[str | None, str | None]:
    """``(node.startup, node.conn[0].startup)`` in a record's ``key = value`` lines."""
    values = dict(line.split(" = ", 1) for line in text.splitlines() if " = " in line)
    return values.get("node.startup"), values.get("node.conn[0].startup")


def _record_file(vm: InitiatorVm, target: str, portal: str) -> Path | None:
    """The record's file in the node database (a host folder), for the default iface."""
    address, port = portal.rsplit(":", 1)
    return next(Path(vm.etc, "nodes", target).glob(f"{address},{port},*/default"), None)


def startup(vm: InitiatorVm, target: str, portal: str = "127.0.0.1:3260") -> tuple[str, str]:
    """``(node.startup, node.conn[0].startup)`` of a record, as iscsiadm shows it."""
    node, conn = _startups(vm.iscsiadm("-m", "node", "-T", target, "-p", portal, "-o", "show"))
    assert node is not None and conn is not None, (target, portal)
    return node, conn


def recorded_startup(
    vm: InitiatorVm, target: str, portal: str = "127.0.0.1:3260"
) -> tuple[str | None, str | None]:
    """``startup`` as the record's file says, read on the host: a poll that costs the guest
    nothing (iscsiadm in the guest is 0.2 s of emulated CPU). ``None`` for a field not (or
    not yet fully) written."""
    record = _record_file(vm, target, portal)
    return _startups(record.read_text(errors="replace")) if record else (None, None)


def sessions(vm: InitiatorVm) -> set[tuple[str, str]]:
    """``(target, portal)`` of every session (``iscsiadm -m session``)."""
    text = vm.iscsiadm("-m", "session", ok=(0, NO_RECORDS))
    return {(m["target"], m["portal"]) for m in map(_SESSION.match, text.splitlines()) if m}


def session_ids(vm: InitiatorVm) -> dict[str, tuple[str, str]]:
    """sid -> ``(target, portal)``."""
    text = vm.iscsiadm("-m", "session", ok=(0, NO_RECORDS))
    return {
        m["sid"]: (m["target"], m["portal"]) for m in map(_SESSION.match, text.splitlines()) if m
    }


def disks(vm: InitiatorVm) -> dict[str, list[str]]:
    """sid -> the session's block devices (``sdX``), from the guest's sysfs."""
    return vm.request({"op": "disks"})["disks"]


def set_chap(vm: InitiatorVm, target: str, portal: str, chap: Chap) -> None:
    """Give a record one-way CHAP credentials by editing its file in the node database on
    the host (iscsiadm would take the secret in its argv)."""
    record = _record_file(vm, target, portal)
    assert record is not None, (target, portal)
    lines = [
        line
        for line in record.read_text().splitlines()
        if not line.startswith(
            (
                "node.session.auth.authmethod",
                "node.session.auth.username ",
                "node.session.auth.password ",
            )
        )
    ]
    lines += [
        "node.session.auth.authmethod = CHAP",
        f"node.session.auth.username = {chap.userid}",
        f"node.session.auth.password = {chap.secret}",
    ]
    record.write_text("\n".join(lines) + "\n")
