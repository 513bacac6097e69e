"""Debian's kernel for the VM: downloaded once with apt-get, kept in the cache by version.

Of the package only the kernel and the modules the guest loads are kept (a few MB of the
400 MB it unpacks to), with the order ``insmod`` needs them in (from ``modprobe
--show-depends``, which includes soft dependencies such as libcrc32c's crc32c). The kernel
is kept decompressed (``vmlinux``, an ELF file with a PVH entry point: qemu starts it
directly, which saves the emulated guest some 4 s of firmware and decompression per boot).
"""

from __future__ import annotations

import lzma
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.support import apt
from tests.support.initiator_vm.cache import locked

META_PACKAGE = "linux-image-amd64"
# What the guest needs: SCSI disks, the iSCSI initiator and the LIO target, virtio
# (9p for its root and node database, serial for the agent), overlayfs for a writable
# root. Without crc32c_generic and libcrc32c every login fails ("crypto_alloc_ahash()
# failed").
MODULES = (
    "configfs",
    "sd_mod",
    "iscsi_tcp",
    "target_core_mod",
    "target_core_file",
    "iscsi_target_mod",
    "virtio_pci",
    "virtio_console",
    "9pnet_virtio",
    "9p",
    "overlay",
    "crc32c_generic",
    "libcrc32c",
)


@dataclass(frozen=True)
class Kernel:
    """An unpacked kernel in the cache: ``vmlinux`` and ``modules/`` in load order."""

    version: str
    root: Path

    @property
    def vmlinux(self) -> Path:
        return self.root / "vmlinux"

    @property
    def modules(self) -> list[Path]:
        order = (self.root / "modules.order").read_text().split()
        return [self.root / "modules" / name for name in order]


def _run(argv: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, timeout=600)
    if done.returncode:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr[-800:]}")
    return done.stdout


def current_version() -> str:
    """The kernel version ``linux-image-amd64`` depends on now (e.g. 6.1.0-57-amd64)."""
    text = _run(["apt-cache", "depends", META_PACKAGE])
    found = re.findall(r"Depends: linux-image-(\d\S*-amd64)\b", text)
    if not found:
        raise RuntimeError(f"apt-cache depends {META_PACKAGE}: no kernel in {text!r}")
    return found[0]


def load_order(tree: Path, version: str) -> list[Path]:
    """The module files of ``MODULES`` and their dependencies, dependencies first."""
    _run(["depmod", "-b", str(tree), version])
    order: list[Path] = []
    for module in MODULES:
        text = _run(["modprobe", "-d", str(tree), "-S", version, "--show-depends", module])
        for line in text.splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "insmod" and Path(words[1]) not in order:
                order.append(Path(words[1]))
    return order


def decompress(bzimage: bytes) -> bytes:
    """The ELF kernel inside a bzImage (Debian compresses it with xz)."""
    start = bzimage.find(b"\xfd7zXZ\x00")
    if start < 0:
        raise RuntimeError("the kernel image holds no xz stream")
    elf = lzma.LZMADecompressor().decompress(bzimage[start:])
    if elf[:4] != b"\x7fELF":
        raise RuntimeError("the kernel image's xz stream is not an ELF file")
    return elf


def unpack(deb: Path, into: Path, version: str) -> None:
    """Keep the kernel image and the guest's modules of ``deb`` in ``into``."""
    with tempfile.TemporaryDirectory(dir=into.parent) as scratch:
        tree = Path(scratch)
        _run(["dpkg-deb", "-x", str(deb), str(tree)])
        order = load_order(tree, version)
        staging = into.with_name(into.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "modules").mkdir(parents=True)
        bzimage = (tree / "boot" / f"vmlinuz-{version}").read_bytes()
        (staging / "vmlinux").write_bytes(decompress(bzimage))
        for module in order:
            shutil.copy(module, staging / "modules" / module.name)
        (staging / "modules.order").write_text("\n".join(m.name for m in order) + "\n")
        staging.rename(into)  # complete or absent: an interrupted run leaves no half kernel


def kernel(cache: Path) -> Kernel:
    """Debian's current amd64 kernel, from the cache or downloaded into it."""
    try:
        version = current_version()
    except RuntimeError:  # no package lists yet
        with locked(apt.LOCK):
            _run(["apt-get", "update", "-q"])
        version = current_version()
    root = cache / "kernel" / version
    if (root / "modules.order").exists():
        return Kernel(version, root)
    root.parent.mkdir(parents=True, exist_ok=True)
    with locked(root.parent / ".lock"):
        if not (root / "modules.order").exists():
            with tempfile.TemporaryDirectory(dir=root.parent) as download:
                package = f"linux-image-{version}"
                with locked(apt.LOCK):  # apt-get update elsewhere rewrites the lists
                    _run(["apt-get", "download", "-q", package], cwd=Path(download))
                (deb,) = Path(download).glob(f"{package}_*.deb")
                unpack(deb, root, version)
    return Kernel(version, root)
