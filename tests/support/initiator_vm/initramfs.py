"""The VM's initramfs: busybox, the kernel's modules, init.sh and the guest agent.

Built with ``cpio`` (newc, uncompressed: the emulated guest would spend longer unpacking a
compressed one than qemu spends loading it) and kept in the cache under the hash of
everything in it, so a change to the agent or to init.sh makes a new one by itself.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.initiator_vm.cache import locked
from tests.support.initiator_vm.kernel import Kernel

HERE = Path(__file__).resolve().parent
GUEST_FILES = ("guest_agent.py", "lio.py")


def is_static(executable: Path) -> bool:
    """True if the ELF file has no program interpreter (PT_INTERP): it runs without libc."""
    data = executable.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit only
        return False
    phoff = int.from_bytes(data[0x20:0x28], "little")
    size, count = (int.from_bytes(data[o : o + 2], "little") for o in (0x36, 0x38))
    types = (int.from_bytes(data[phoff + i * size :][:4], "little") for i in range(count))
    return 3 not in types  # PT_INTERP


def _inputs(kernel: Kernel, busybox: Path) -> list[tuple[str, Path]]:
    """(path in the initramfs, source) of every file."""
    files = [("init", HERE / "init.sh"), ("bin/busybox", busybox)]
    files += [(f"vm/{name}", HERE / name) for name in GUEST_FILES]
    files += [(f"lib/modules/{m.name}", m) for m in kernel.modules]
    files.append(("modules.order", kernel.root / "modules.order"))
    return files


def build(kernel: Kernel, busybox: Path, cache: Path) -> Path:
    """The initramfs for ``kernel``, from the cache or built into it."""
    files = _inputs(kernel, busybox)
    digest = hashlib.sha256()
    for name, source in files:
        digest.update(name.encode() + b"\0" + hashlib.sha256(source.read_bytes()).digest())
    image = cache / "initramfs" / f"{kernel.version}-{digest.hexdigest()[:16]}.cpio"
    if image.exists():
        return image
    image.parent.mkdir(parents=True, exist_ok=True)
    with locked(image.parent / ".lock"):
        if image.exists():
            return image
        with tempfile.TemporaryDirectory(dir=image.parent) as scratch:
            tree = Path(scratch) / "tree"
            for sub in ("bin", "dev", "proc", "sys", "vm", "lib/modules"):
                (tree / sub).mkdir(parents=True)
            for name, source in files:
                shutil.copy(source, tree / name)
            (tree / "init").chmod(0o755)
            (tree / "bin" / "busybox").chmod(0o755)
            names = sorted(str(p.relative_to(tree)) for p in tree.rglob("*"))
            partial = Path(scratch) / "image.cpio"
            with open(partial, "wb") as out:
                subprocess.run(
                    ["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"],
                    input="\n".join(names).encode() + b"\n",
                    stdout=out,
                    cwd=tree,
                    check=True,
                    timeout=120,
                )
            partial.rename(image)
    return image
