"""The guest's iSCSI targets: a kernel LIO target written straight into configfs.

Runs inside the VM (imported by guest_agent.py; standard library only). LIO lives in the
guest's RAM, so the targets are written again at every boot, before the initiator's boot
service logs in. A spec is plain data::

    {"targets": [{"iqn": "iqn.2003-01.org.example:a", "portals": ["127.0.0.1:3260"],
                  "luns": 1, "chap": {"userid": "u", "password": "p"} or None,
                  "mutual": {"userid": "t", "password": "q"} or None}]}

Each LUN is a sparse file on the guest's tmpfs (fileio backstore). Any initiator may log
in (demo mode: generated ACLs, write enabled); with ``chap`` the target demands one-way
CHAP with the TPG's credentials, and with ``mutual`` answers the initiator's challenge
with those (mutual CHAP).
"""

from __future__ import annotations

import os
from pathlib import Path

CONFIGFS = Path("/sys/kernel/config/target")
DISKS = Path("/run/lio")
LUN_BYTES = 16 << 20


def _write(path: Path, value: str) -> None:
    with open(path, "w") as handle:  # configfs: one write per attribute
        handle.write(value)


def _backstore(name: str) -> Path:
    DISKS.mkdir(parents=True, exist_ok=True)
    image = DISKS / f"{name}.img"
    with open(image, "wb") as handle:
        handle.truncate(LUN_BYTES)
    store = CONFIGFS / "core" / "fileio_0" / name
    store.mkdir(parents=True)
    _write(store / "control", f"fd_dev_name={image},fd_dev_size={LUN_BYTES}")
    _write(store / "enable", "1")
    return store


def _target(index: int, spec: dict) -> None:
    tpg = CONFIGFS / "iscsi" / spec["iqn"] / "tpgt_1"
    tpg.mkdir(parents=True)
    for lun in range(int(spec.get("luns", 1))):
        store = _backstore(f"t{index}l{lun}")
        (tpg / "lun" / f"lun_{lun}").mkdir(parents=True)
        os.symlink(store, tpg / "lun" / f"lun_{lun}" / "storage")
    for portal in spec["portals"]:
        (tpg / "np" / portal).mkdir(parents=True)
    attrib = tpg / "attrib"
    _write(attrib / "generate_node_acls", "1")
    _write(attrib / "cache_dynamic_acls", "1")
    _write(attrib / "demo_mode_write_protect", "0")
    chap = spec.get("chap")
    if chap:
        _write(tpg / "auth" / "userid", chap["userid"])
        _write(tpg / "auth" / "password", chap["password"])
    mutual = spec.get("mutual")
    if mutual:
        _write(tpg / "auth" / "userid_mutual", mutual["userid"])
        _write(tpg / "auth" / "password_mutual", mutual["password"])
    _write(attrib / "authentication", "1" if chap else "0")
    _write(tpg / "enable", "1")


def _targets() -> list[Path]:
    fabric = CONFIGFS / "iscsi"  # appears with the first target
    found = fabric.iterdir() if fabric.exists() else ()
    return sorted(p for p in found if p.is_dir() and p.name != "discovery_auth")


def clear() -> None:
    """Remove every target and backstore (no initiator may be logged in): configfs objects
    go child first, as rmdir and unlink of their entries."""
    for target in _targets():
        for tpg in target.glob("tpgt_*"):
            _write(tpg / "enable", "0")
            for lun in (tpg / "lun").iterdir():
                for link in (p for p in lun.iterdir() if p.is_symlink()):
                    link.unlink()
                lun.rmdir()
            for portal in (tpg / "np").iterdir():
                portal.rmdir()
            tpg.rmdir()
        target.rmdir()
    for store in (CONFIGFS / "core").glob("fileio_*/*"):
        if store.is_dir():
            store.rmdir()
    for image in DISKS.glob("*.img"):
        image.unlink()


def configure(spec: dict) -> list[str]:
    """Replace the guest's targets by the spec's; their IQNs."""
    clear()
    for index, target in enumerate(spec["targets"]):
        _target(index, target)
    return [p.name for p in _targets()]
