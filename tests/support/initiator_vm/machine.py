"""``InitiatorVm``: a Linux initiator with real iSCSI sessions, booted and rebooted for real.

One VM, many boots. Its node database (the guest's ``/etc/iscsi``) is a folder on the host
that outlives every boot; LIO targets live in guest RAM and are written again at each
boot from ``targets``, before the initiator's boot service runs. ``bin/iscsiadm`` is the
forwarder a minion names in ``iscsi.iscsiadm``; ``node_dirs`` is what its beacon hashes.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.initiator_vm import qemu
from tests.support.initiator_vm.channel import Channel, ChannelError
from tests.support.initiator_vm.image import Image
from tests.support.initiator_vm.relay import Relay
from tests.support.initiator_vm.targets import Target, spec

INITIATOR = "iqn.2024-01.org.saltext-win-iscsi:vm-initiator"
BOOT_LIMIT = 300  # seconds from qemu start to the agent's first answer, on a busy host
COMMAND_LIMIT = 120  # seconds a command may run in the guest
FORWARDER = Path(__file__).with_name("forwarder.py")


@dataclass(frozen=True)
class Completed:
    """A command that ran in the guest (its output decoded as UTF-8)."""

    argv: list[str]
    rc: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Boot:
    """One boot: seconds from qemu start to the agent, and to the boot service's end."""

    boot_id: str
    agent_s: float
    ready_s: float
    login: Completed


class GuestError(AssertionError):
    """A command in the guest failed; the message has its output."""


def install_forwarder(
    directory: Path, relay_socket: Path, timeout: float, program: str = "iscsiadm"
) -> Path:
    """``directory/<program>``: forwarder.py with a shebang of this Python, and its config.

    The interpreter itself, isolated and without site-packages (``-IS``; standard library
    only): a minion runs the forwarder for every iscsiadm call, and ``python3`` on PATH
    may be a wrapper (pyenv's shim is a bash script: 0.21 CPU-seconds a call, against 0.06)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / program
    path.write_text(f"#!{sys.executable} -IS\n")
    with open(path, "a") as out:
        out.write(FORWARDER.read_text())
    path.chmod(0o755)
    config = f'{{"socket": "{relay_socket}", "timeout": {float(timeout)}}}\n'
    path.with_suffix(".json").write_text(config)
    return path


class InitiatorVm:
    def __init__(self, root: Path, image: Image) -> None:
        self.root = root
        self.image = image
        self.etc = root / "etc-iscsi"  # the guest's /etc/iscsi
        self.console = root / "console.log"
        self.targets: list[Target] = []
        # AF_UNIX paths are short (108 bytes): a folder of its own under /tmp.
        self._sockets = Path(tempfile.mkdtemp(prefix="ivm-"))
        self._channel: Channel | None = None
        self._qemu: subprocess.Popen | None = None
        self.forwarder_socket = self._sockets / "relay.sock"
        self._relay = Relay(self.forwarder_socket, lambda: self._channel)
        self.forwarder = install_forwarder(root / "bin", self.forwarder_socket, 90)
        self.lsblk = install_forwarder(root / "bin", self.forwarder_socket, 30, "lsblk")
        self.systemctl = install_forwarder(root / "bin", self.forwarder_socket, 30, "systemctl")
        self.pidof = install_forwarder(root / "bin", self.forwarder_socket, 30, "pidof")
        self.etc.mkdir(parents=True, exist_ok=True)
        (self.etc / "initiatorname.iscsi").write_text(f"InitiatorName={INITIATOR}\n")
        self.set_default_startup("manual")
        self.boots: list[Boot] = []

    # -- what a minion is configured with ------------------------------------------------

    @property
    def node_dirs(self) -> list[str]:
        return [str(self.etc / "nodes")]

    def minion_config(self) -> dict:
        return {
            "iscsi.iscsiadm": str(self.forwarder),
            "iscsi.lsblk": str(self.lsblk),
            "iscsi.systemctl": str(self.systemctl),
            "iscsi.pidof": str(self.pidof),
            "iscsi.node_dirs": self.node_dirs,
            "iscsi.iscsid_conf": str(self.etc / "iscsid.conf"),
        }

    # -- the guest's configuration, kept on the host ---------------------------------------

    def set_default_startup(self, mode: str) -> None:
        """``node.startup`` of new records (iscsid.conf): Debian ships ``manual``, RHEL
        ``automatic``. iscsid is started by the boot service, not on demand."""
        (self.etc / "iscsid.conf").write_text(
            "iscsid.startup = /bin/true\n"
            f"node.startup = {mode}\n"
            "node.conn[0].timeo.login_timeout = 15\n"
            "node.session.initial_login_retry_max = 2\n"
        )

    def forget_records(self) -> None:
        """An empty node database (with no session logged in)."""
        for name in ("nodes", "send_targets", "ifaces"):
            shutil.rmtree(self.etc / name, ignore_errors=True)

    # -- power -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._qemu is not None and self._qemu.poll() is None

    def boot(self) -> Boot:
        """Power on; write the targets; start iscsid and log in the ``automatic`` records,
        as Debian's ``open-iscsi.service`` does (``iscsiadm -m node --loginall=automatic``)."""
        assert not self.running, "boot while the VM runs"
        for stale in ("agent.sock", "qmp.sock"):
            (self._sockets / stale).unlink(missing_ok=True)
        argv = qemu.command(
            self.image.kernel.vmlinux,
            self.image.initramfs,
            self.etc,
            self._sockets / "agent.sock",
            self._sockets / "qmp.sock",
            self.console,
        )
        with open(self.console, "a") as log:
            log.write(f"\n===== boot {len(self.boots) + 1} =====\n")
        started = time.monotonic()
        self._qemu = qemu.start(argv, self.root / "qemu.log")
        self._channel = Channel(self._sockets / "agent.sock", started + BOOT_LIMIT)
        boot_id = self._wait_for_agent(started + BOOT_LIMIT)
        agent_s = time.monotonic() - started
        self._write_targets()
        self.run(["iscsid"])
        # Debian counts 15 (already logged in) and 21 (no records) as success too.
        login = self.run(["iscsiadm", "-m", "node", "--loginall=automatic"], ok=(0, 15, 21))
        boot = Boot(boot_id, agent_s, time.monotonic() - started, login)
        self.boots.append(boot)
        return boot

    def _write_targets(self) -> None:
        answer = self.request({"op": "lio", "spec": spec(self.targets)}, COMMAND_LIMIT)
        assert answer["targets"] == sorted(t.iqn for t in self.targets), answer

    def reset(self, targets: list[Target], default_startup: str = "manual") -> None:
        """The running VM as a fresh boot would leave it, without the boot: no session, an
        empty node database, ``targets`` in LIO, ``default_startup`` in iscsid.conf. (A
        boot costs some 10 s; tests that need a real one reboot.)"""
        if not self.running:
            self.targets = list(targets)
            self.forget_records()
            self.set_default_startup(default_startup)
            self.boot()
            return
        # Every session by its id: --logoutall skips onboot records' sessions.
        listed = self.run(["iscsiadm", "-m", "session"], ok=(0, 21)).stdout
        for sid in re.findall(r"^\S+: \[(\d+)\]", listed, re.MULTILINE):
            self.run(["iscsiadm", "-m", "session", "-r", sid, "--logout"])
        self.forget_records()
        self.set_default_startup(default_startup)
        self.targets = list(targets)
        self._write_targets()

    def _wait_for_agent(self, deadline: float) -> str:
        while True:
            if not self.running:
                raise GuestError(f"the VM stopped while booting:\n{self.console_tail()}")
            try:
                return self._channel.request({"op": "ping"}, 0.5)["boot_id"]
            except ChannelError:
                if time.monotonic() > deadline:
                    raise GuestError(
                        f"no agent within {BOOT_LIMIT} s:\n{self.console_tail()}"
                    ) from None

    def power_off(self) -> None:
        """Shut down as a clean reboot does: log every session out (open-iscsi.service's
        stop), sync, power off; then wait for qemu to end."""
        if not self.running:
            return
        self.run(["iscsiadm", "-m", "node", "--logoutall=all"], ok=(0, 21))
        self.request({"op": "poweroff"}, COMMAND_LIMIT)
        try:
            self._qemu.wait(timeout=COMMAND_LIMIT)
        except subprocess.TimeoutExpired:
            self._qemu.kill()
            self._qemu.wait()
            raise GuestError(f"the VM did not power off:\n{self.console_tail()}") from None
        finally:
            self._channel.close()
            self._channel = None

    def reboot(self) -> Boot:
        self.power_off()
        return self.boot()

    def pause(self) -> None:
        """Freeze the guest (QMP ``stop``): it answers nothing until ``resume``."""
        qemu.qmp(self._sockets / "qmp.sock", "stop")

    def resume(self) -> None:
        qemu.qmp(self._sockets / "qmp.sock", "cont")

    def close(self) -> None:
        """Stop the VM and the forwarder's relay. qemu is killed, not powered off (a clean
        power-off logs every session out first: some 7 s under TCG): nothing in the guest
        needs saving, since its node database is the host folder, written through (9p
        without a cache)."""
        try:
            if self.running:
                self._qemu.kill()
                self._qemu.wait()
        finally:
            if self._channel is not None:
                self._channel.close()
                self._channel = None
            self._relay.close()
            shutil.rmtree(self._sockets, ignore_errors=True)

    @property
    def journal(self) -> list:
        """Every iscsiadm run the forwarder asked for (relay.Call)."""
        return self._relay.journal

    def console_tail(self, lines: int = 40) -> str:
        text = self.console.read_text(errors="replace") if self.console.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # -- commands in the guest -----------------------------------------------------------

    def request(self, message: dict, timeout: float = COMMAND_LIMIT) -> dict:
        """The guest agent's answer to ``message`` (see guest_agent.py)."""
        if self._channel is None:
            raise GuestError("the VM is not running")
        answer = self._channel.request(message, timeout + 5)
        if "error" in answer:
            raise GuestError(f"the guest agent failed: {answer['error']}")
        return answer

    def run(
        self,
        argv: list[str],
        ok: tuple[int, ...] | None = (0,),
        stdin: bytes | None = None,
        timeout: float = COMMAND_LIMIT,
    ) -> Completed:
        """Run ``argv`` in the guest (no shell); GuestError unless it exits with one of
        ``ok`` (any code if ``ok`` is None)."""
        message = {"op": "run", "argv": argv, "timeout": timeout}
        if stdin is not None:
            message["stdin"] = base64.b64encode(stdin).decode()
        answer = self.request(message, timeout)
        if answer.get("timed_out"):
            raise GuestError(f"{argv} did not finish in the guest within {timeout} s")
        done = Completed(
            argv,
            answer["rc"],
            base64.b64decode(answer["stdout"]).decode("utf-8", "replace"),
            base64.b64decode(answer["stderr"]).decode("utf-8", "replace"),
        )
        if ok is not None and done.rc not in ok:
            raise GuestError(f"{argv} exited {done.rc}: {done.stdout}{done.stderr}")
        return done

    def iscsiadm(self, *args: str, ok: tuple[int, ...] = (0,)) -> str:
        """stdout of ``iscsiadm args`` in the guest, as an administrator would run it."""
        return self.run(["iscsiadm", *args], ok=ok).stdout
