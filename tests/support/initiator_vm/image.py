"""What qemu boots: the cached kernel and initramfs, made on first use."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.initiator_vm import initramfs
from tests.support.initiator_vm.cache import cache_dir
from tests.support.initiator_vm.kernel import Kernel, kernel
from tests.support.initiator_vm.packages import busybox


@dataclass(frozen=True)
class Image:
    kernel: Kernel
    initramfs: Path
    seconds: float  # how long getting it took (download and builds, or cache look-ups)


def prepare(cache: Path | None = None) -> Image:
    """Kernel and initramfs from the cache, downloaded and built there when missing."""
    started = time.monotonic()
    cache = cache or cache_dir()
    found = kernel(cache)
    image = initramfs.build(found, busybox(), cache)
    return Image(found, image, time.monotonic() - started)
