"""The two ``fcntl`` names the host model uses, for Windows (test code).

``tests/windows`` mirrors a real host into a ``SimulatedHost`` on Windows, where there is no
``fcntl``: ``msvcrt.locking`` on the lock file's first byte gives the same exclusive lock.
"""

from __future__ import annotations

import msvcrt
import os
import time

LOCK_EX = 2
LOCK_UN = 8


def flock(file, operation: int) -> None:
    fd = file.fileno()
    os.lseek(fd, 0, os.SEEK_SET)
    if operation == LOCK_UN:
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    while True:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return
        except OSError:
            time.sleep(0.01)
