"""Debian packages the tests need (open-iscsi's iscsiadm, chromium), installed with
apt-get when missing and we are root. One install at a time across pytest-xdist workers
(apt-get takes dpkg's lock and fails, not waits, when another holds it)."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

LOCK = Path(tempfile.gettempdir()) / "saltext-win-iscsi-tests-apt.lock"


def _run(command: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        command, capture_output=True, text=True, env=env, check=False, timeout=900
    )


def ensure(
    package: str, executables: tuple[str, ...], recommends: bool = True
) -> tuple[str | None, str]:
    """The path of the first of ``executables`` found, installing ``package`` when none
    is (without its recommended packages if not ``recommends``: qemu's pull in a
    desktop); ``(None, why)`` when it cannot be had."""

    def found() -> str | None:
        return next((p for p in map(shutil.which, executables) if p), None)

    if found():
        return found(), ""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, f"{executables[0]} is missing: apt-get install {package} (as root)"
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if found():  # another worker installed it meanwhile
            return found(), ""
        install = ["apt-get", "install", "-y", "-q", package]
        if not recommends:
            install.insert(2, "--no-install-recommends")
        done = _run(install)
        if done.returncode != 0:  # a stale package list: refresh once
            _run(["apt-get", "update", "-q"])
            done = _run(install)
    if found():
        return found(), ""
    return None, f"apt-get install {package} failed: {(done.stdout + done.stderr)[-800:]}"
