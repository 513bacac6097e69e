"""What is mounted from the disks behind Linux sessions (util-linux's ``lsblk``): what
``iscsi.absent`` must not pull from under a running system without ``force``."""

from __future__ import annotations

import json
import re
import shutil

from saltext_win_iscsi.errors import IscsiError, safe_text
from saltext_win_iscsi.openiscsi.iscsiadm import run_program

_DISK = re.compile(r"sd[a-z]{1,4}")  # what iscsiadm reports as "Attached scsi disk"


def mounts(lsblk: str | None, names: list[str], timeout: float) -> dict[str, list[str]]:
    """disk name -> the mount points on it and its partitions (``/`` for the root)."""
    if not names:
        return {}
    bad = [n for n in names if not _DISK.fullmatch(n)]
    if bad:
        raise IscsiError(f"iSCSI: not a SCSI disk name: {safe_text(bad[0])}")
    program = lsblk or shutil.which("lsblk") or "lsblk"
    argv = [program, "--json", "--output", "NAME,MOUNTPOINT", *(f"/dev/{n}" for n in names)]
    code, out, err = run_program(argv, timeout, "lsblk", "install util-linux")
    if code != 0:
        raise IscsiError(f"iSCSI: lsblk failed (exit {code}): {safe_text(err.strip())}")
    try:
        devices = json.loads(out)["blockdevices"]
    except (ValueError, KeyError, TypeError) as exc:
        raise IscsiError(f"iSCSI: lsblk answered something else than JSON: {exc}") from None
    return {device["name"]: sorted(_mounted(device)) for device in devices}


def _mounted(device: dict) -> set[str]:
    found = {device["mountpoint"]} if device.get("mountpoint") else set()
    for child in device.get("children") or []:
        found |= _mounted(child)
    return found


def risks(session: dict, mounted: dict[str, list[str]]) -> list[str]:
    """Why logging out of this session would hurt: the root file system or any mounted
    file system on its disks."""
    found = []
    for name in session.get("AttachedDisks") or []:
        points = mounted.get(name) or []
        if "/" in points:
            found.append(f"/dev/{name} holds the root file system")
        elif points:
            found.append(f"/dev/{name} is mounted at {', '.join(points)}")
    return found
