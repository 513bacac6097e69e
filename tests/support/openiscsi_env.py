"""A Linux minion's open-iscsi for tests: the real iscsiadm on a private node database.

``PrivateNodeDb(root)`` makes the directories and an executable ``bin/iscsiadm`` that runs
the real iscsiadm in a private mount namespace (``unshare`` + ``privns.py``) with the
private directories bound over ``/etc/iscsi`` and ``/var/lib/iscsi``: a minion configured
with ``iscsi.iscsiadm`` (the wrapper) and ``iscsi.node_dirs`` (the private node dirs) never
touches the machine's own database. ``require_iscsiadm()`` installs open-iscsi when missing
(as root) or skips with the reason.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import apt

PRIVNS = Path(__file__).with_name("privns.py")


def require_iscsiadm() -> str:
    """The real iscsiadm's path (apt-get install open-iscsi when missing, as root)."""
    if sys.platform != "linux":
        pytest.skip("open-iscsi tests need Linux")
    if os.geteuid() != 0:
        pytest.skip("open-iscsi tests need root (a private mount namespace; apt-get)")
    path, why = apt.ensure("open-iscsi", ("iscsiadm",))
    if path is None:
        pytest.skip(why)
    for tool in ("unshare", "mount"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} (util-linux) is needed for a private node database")
    probe = ["unshare", "--mount", "--net", "--propagation", "private", "true"]
    done = subprocess.run(probe, capture_output=True, text=True, check=False)
    if done.returncode:
        pytest.skip(f"no private mount namespace here (unshare: {done.stderr.strip()})")
    return path


class PrivateNodeDb:
    """A node database of its own, and the iscsiadm wrapper that uses it."""

    def __init__(self, root: Path, iscsiadm: str) -> None:
        self.etc, self.var, lock = root / "etc", root / "var", root / "lock"
        for directory in (self.etc / "nodes", self.var / "nodes", lock, root / "bin"):
            directory.mkdir(parents=True, exist_ok=True)
        (self.etc / "iscsid.conf").write_text("iscsid.startup = /bin/true\nnode.startup = manual\n")
        binds = [f"{self.etc}:/etc/iscsi", f"{lock}:/run/lock"]
        if os.path.isdir("/var/lib/iscsi"):
            binds.append(f"{self.var}:/var/lib/iscsi")
        command = ["unshare", "--mount", "--net", "--propagation", "private", sys.executable]
        command += [str(PRIVNS)] + [arg for bind in binds for arg in ("--bind", bind)]
        command += ["--", iscsiadm]
        self.wrapper = root / "bin" / "iscsiadm"
        self.wrapper.write_text(
            "#!/bin/sh\nexec " + " ".join(shlex.quote(c) for c in command) + ' "$@"\n'
        )
        self.wrapper.chmod(0o755)

    @property
    def node_dirs(self) -> list[str]:
        return [str(self.etc / "nodes"), str(self.var / "nodes")]

    def minion_config(self) -> dict:
        return {"iscsi.iscsiadm": str(self.wrapper), "iscsi.node_dirs": self.node_dirs}

    def iscsiadm(self, *args: str, none_found_ok: bool = True) -> str:
        done = subprocess.run(
            [str(self.wrapper), *args], capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode not in ((0, 21) if none_found_ok else (0,)):  # 21: no records
            raise RuntimeError(f"iscsiadm {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout

    def new_record(self, target: str, portal: str, startup: str = "manual") -> None:
        self.iscsiadm("-m", "node", "-T", target, "-p", portal, "-o", "new")
        self.set_startup(target, portal, startup)

    def set_startup(self, target: str, portal: str, startup: str) -> None:
        """What an admin does by hand (iscsiadm -o update -n node.startup)."""
        self.iscsiadm(
            "-m", "node", "-T", target, "-p", portal, "-o", "update",
            "-n", "node.startup", "-v", startup, "-n", "node.conn[0].startup", "-v", startup,
            none_found_ok=False,
        )  # fmt: skip

    def startup(self, target: str, portal: str) -> str:
        text = self.iscsiadm("-m", "node", "-T", target, "-p", portal, "-o", "show")
        for line in text.splitlines():
            if line.startswith("node.startup = "):
                return line.split(" = ", 1)[1].strip()
        raise AssertionError(f"no node.startup for {target} {portal}: {text!r}")
