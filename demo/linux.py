"""The demo's Linux minion, when the real-initiator VM can run here: real iSCSI sessions
in a qemu guest (``tests/support/initiator_vm``), managed through the VM's iscsiadm."""

from __future__ import annotations

import os
import shutil
import sys
import threading
from pathlib import Path

from demo import show
from demo.daemons import Fleet
from tests.support.initiator_vm import admin, image
from tests.support.initiator_vm.initramfs import is_static
from tests.support.initiator_vm.machine import InitiatorVm
from tests.support.initiator_vm.packages import PACKAGES, busybox
from tests.support.initiator_vm.targets import Target

FORBIDDEN = "iqn.2003-01.org.example:testiscsi-backup"
ALLOWED = "iqn.2003-01.org.example:db"
PORTAL = "127.0.0.1:3260"


def unavailable() -> str | None:
    """Why the VM cannot run here (None when it can); installs nothing."""
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        return "the initiator VM needs an x86_64 Linux host"
    if os.geteuid() != 0:
        return "the initiator VM needs root"
    missing = [p for p, tools in PACKAGES.items() if not all(shutil.which(t) for t in tools)]
    if missing:
        return f"the initiator VM needs Debian's {' '.join(missing)} (./dev test installs them as root)"
    if not is_static(busybox()):
        return "the initiator VM needs busybox-static"
    return None


class LinuxSide:
    """A guest logged in to two targets whose records start ``automatic``, one of which the
    policy forbids. It boots in the background while the master starts."""

    label = "Linux"

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.vm: InitiatorVm | None = None
        self._failed: BaseException | None = None
        self._booting = threading.Thread(target=self._boot, args=(fleet.work / "vm",))
        self._booting.start()
        self.minion = None

    def _boot(self, root: Path) -> None:
        try:
            root.mkdir()
            self.vm = InitiatorVm(root, image.prepare())
            self.vm.reset([Target(FORBIDDEN), Target(ALLOWED)], default_startup="automatic")
            admin.discover(self.vm)
            self.vm.iscsiadm("-m", "node", "--loginall=all")
        except BaseException as exc:  # reported by start(), in the main thread
            self._failed = exc

    def start(self) -> None:
        self._booting.join()
        if self._failed is not None:
            raise self._failed
        assert self.vm is not None
        overrides = {**self.vm.minion_config(), "iscsi.timeout": 60, "loop_interval": 1}
        self.minion = self.fleet.master.salt_minion_daemon("linux01", overrides=overrides)
        self.fleet.minions["linux01"] = self.minion
        self.fleet.start_minion(self.minion)

    def describe(self) -> str:
        assert self.vm is not None
        boot = self.vm.boots[-1].ready_s
        return (
            f"{self.minion.id}: open-iscsi in a qemu guest, real sessions (booted in {boot:.0f} s)"
        )

    def table(self) -> None:
        assert self.vm is not None
        logged_in = {target for target, _ in admin.sessions(self.vm)}
        startup, name = {}, ""
        for line in self.vm.iscsiadm("-m", "node", "-o", "show").splitlines():
            key, _, value = line.partition(" = ")
            if key == "node.name":
                name = value
            elif key == "node.startup":
                startup[name] = value
        show.table(
            ["node record", "node.startup", "logged in"],
            [[f"{t} {PORTAL}", startup.get(t), t in logged_in] for t in (FORBIDDEN, ALLOWED)],
        )

    def beacon_ticked(self) -> bool:
        """the Linux beacon's first tick has run"""
        return (Path(self.minion.config["cachedir"]) / "iscsi_beacon.json").exists()

    def register_by_hand(self) -> str:
        assert self.vm is not None
        admin.set_startup(self.vm, FORBIDDEN, PORTAL, node="automatic")
        return f"iscsiadm -m node -T {FORBIDDEN} -p {PORTAL} -o update -n node.startup -v automatic"

    def undone(self) -> bool:
        """the record set to automatic by hand is manual again"""
        assert self.vm is not None
        return admin.startup(self.vm, FORBIDDEN)[0] == "manual"

    def close(self) -> None:
        self._booting.join()
        if self.vm is not None:
            self.vm.close()
