"""The qemu process of one boot: its command line, its console log, a QMP client.

Software emulation (``-accel tcg``: no KVM here), one CPU, no devices but the ones named:
two 9p shares (the host's ``/`` read-only as the guest's root, the node database folder
writable as its ``/etc/iscsi``), a virtio-serial port for the agent, the serial console
into a file, and QMP to pause, resume and stop the machine. ``-no-reboot``: a guest that
powers off, reboots or panics ends the process.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

MEMORY_MB = 768
# The baseline x86-64 model: every command in the guest runs some 20 % faster under TCG
# than with ``max`` (measured: iscsiadm -m node 0.15-0.18 s against 0.18-0.23 s), and the
# host's Debian binaries the guest runs need nothing newer.
CPU = "qemu64"
# Two arguments that make guest commands cheaper and change nothing the tests look at:
# ``norandmaps`` (the same addresses for a program at each run, so that TCG finds the code
# it translated for the last run instead of translating it again: an iscsiadm call 20-30 %
# cheaper, ``-m node -o show`` 0.28 against 0.21 CPU-seconds) and ``mitigations=off``
# (no Spectre-style barriers in a guest that runs only the tests' commands: some 16 % more).
KERNEL_ARGS = "console=ttyS0 panic=-1 quiet norandmaps mitigations=off"


def command(
    vmlinux: Path, initramfs: Path, etc_iscsi: Path, agent: Path, qmp: Path, console: Path
) -> list[str]:
    share = "security_model=none,multidevs=remap"
    return [
        "qemu-system-x86_64",
        "-accel", "tcg",
        "-machine", "pc",
        "-cpu", CPU,
        "-smp", "1",
        "-m", str(MEMORY_MB),
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-kernel", str(vmlinux),
        "-initrd", str(initramfs),
        "-append", KERNEL_ARGS,
        "-chardev", f"file,id=console,path={console},append=on",
        "-serial", "chardev:console",
        "-virtfs", f"local,path=/,mount_tag=hostroot,readonly=on,{share}",
        "-virtfs", f"local,path={etc_iscsi},mount_tag=iscsietc,{share}",
        "-device", "virtio-serial-pci",
        "-chardev", f"socket,id=agent,path={agent},server=on,wait=off",
        "-device", "virtserialport,chardev=agent,name=agent",
        "-qmp", f"unix:{qmp},server=on,wait=off",
    ]  # fmt: skip


def qmp(path: Path, execute: str, timeout: float = 30) -> dict:
    """Run one QMP command (``stop``, ``cont``, ``quit``) and return its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        lines = sock.makefile("rwb")
        json.loads(lines.readline())  # the greeting
        answers = []
        for name in ("qmp_capabilities", execute):
            lines.write(json.dumps({"execute": name}).encode() + b"\n")
            lines.flush()
            while True:
                message = json.loads(lines.readline())
                if "return" in message or "error" in message:
                    answers.append(message)
                    break  # events ("STOP", ...) come in between
        return answers[-1]


def start(argv: list[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
