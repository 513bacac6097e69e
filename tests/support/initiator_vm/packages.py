"""What the VM needs from Debian, installed with apt-get (as root) when missing."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from tests.support import apt
from tests.support.initiator_vm.initramfs import is_static

# package -> the executables that show it is installed
PACKAGES = {
    "qemu-system-x86": ("qemu-system-x86_64",),
    "busybox-static": ("busybox",),
    "kmod": ("depmod",),  # and modprobe: the kernel's module dependencies
    "cpio": ("cpio",),
    "open-iscsi": ("iscsid",),  # the guest runs the host's own iscsid and iscsiadm
}


def missing() -> str | None:
    """Why the VM cannot run here (None when it can), after installing what is missing."""
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        return "the initiator VM needs an x86_64 Linux host"
    if os.geteuid() != 0:
        return "the initiator VM needs root (apt-get, qemu's 9p shares of / as root)"
    for tool in ("apt-get", "apt-cache", "dpkg-deb"):
        if shutil.which(tool) is None:
            return f"the initiator VM needs Debian's packages ({tool} is missing)"
    for package, executables in PACKAGES.items():
        path, why = apt.ensure(package, executables, recommends=False)
        if path is None:
            return why
    if not is_static(busybox()):
        return "busybox is dynamically linked: the VM's initramfs needs busybox-static"
    if not Path("/usr/bin/python3").exists():
        return "the guest runs the host's /usr/bin/python3, which is missing"
    return None


def busybox() -> Path:
    return Path(shutil.which("busybox") or "/bin/busybox").resolve()
