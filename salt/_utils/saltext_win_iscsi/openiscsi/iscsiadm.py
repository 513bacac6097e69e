"""Running ``iscsiadm``: argv lists only, a timeout, exit codes turned into clear errors.

Every target name, portal and iface name is checked before it is put into argv: iscsiadm
parses ``-p`` itself (``address:port,tpgt``, IPv6 in brackets) and uses target and iface
names as file names in its node database, so a comma, a slash, whitespace, a control
character or a leading ``-`` would be misread, not merely rejected.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Sequence

from saltext_win_iscsi.config import DEFAULT_TIMEOUT
from saltext_win_iscsi.errors import IscsiError, IscsiInputError, safe_text
from saltext_win_iscsi.model import DEFAULT_PORT

STARTUP_MODES = ("manual", "automatic", "onboot")
# Where distributions install iscsiadm, for minions whose PATH lacks sbin.
ISCSIADM_PLACES = ("/usr/sbin/iscsiadm", "/sbin/iscsiadm", "/usr/bin/iscsiadm")

# iscsiadm's exit codes (open-iscsi include/iscsi_err.h, also in iscsiadm(8) EXIT STATUS).
EXIT_CODES = {
    1: "generic error",
    2: "session not found",
    3: "out of memory, or a resource (e.g. the iface) could not be read",
    4: "connection problem",
    5: "login failed",
    6: "error accessing the node database",
    7: "invalid argument",
    8: "connection timed out",
    9: "internal iscsid or kernel error",
    10: "logout failed",
    11: "iSCSI PDU timed out",
    12: "iSCSI transport module not loaded",
    13: "permission denied (run as root)",
    14: "operation not supported by the transport",
    15: "session is logged in",
    16: "invalid request to iscsid",
    17: "iSNS not supported",
    18: "read or write to iscsid failed",
    19: "fatal login error",
    20: "could not connect to iscsid",
    21: "no records, targets or sessions found",
    22: "sysfs lookup failed",
    23: "host not found",
    24: "login authentication failed",
    25: "iSNS query failed",
    26: "iSNS registration failed",
    27: "operation not supported",
    28: "device or resource busy",
    29: "temporary failure, retry later",
    30: "unknown discovery type",
    31: "child process terminated",
    32: "session not connected",
    33: "request to iscsid timed out",
}
NO_OBJS_FOUND = 21

# RFC 3720 caps iSCSI names at 223 bytes. Letters, digits and . - : _ cover iqn., eui. and
# naa. names as arrays really name targets (upper case and '_' occur in the wild); the
# first character must be alphanumeric, so no option-like or hidden name gets through.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:_-]{0,222}")
# open-iscsi keeps iface names below 65 bytes; offload ifaces look like bnx2i.00:10:18:aa:bb:cc.
_IFACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:_-]{0,63}")
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_ZONE = re.compile(r"[A-Za-z0-9_.-]{1,15}")


def find_iscsiadm(configured: str | None = None) -> str | None:
    """open-iscsi's iscsiadm: ``configured`` if set, else found on PATH or in sbin."""
    if configured:
        return configured
    found = shutil.which("iscsiadm")
    return found or next((p for p in ISCSIADM_PLACES if os.access(p, os.X_OK)), None)


def check_name(value: object, what: str = "target name") -> str:
    """``value`` if it is an iSCSI name iscsiadm cannot misread, else IscsiInputError."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise IscsiInputError(
            f"iSCSI: {what} {safe_text(value)} is not a valid iSCSI name for iscsiadm "
            "(letters, digits and . - : _ only, starting with a letter or digit, at most "
            "223 characters)"
        )
    return value


def check_iface(value: object) -> str:
    """``value`` if it is an iface name iscsiadm cannot misread, else IscsiInputError."""
    if not isinstance(value, str) or not _IFACE.fullmatch(value):
        raise IscsiInputError(
            f"iSCSI: iface name {safe_text(value)} is not valid for iscsiadm (letters, "
            "digits and . - : _ only, starting with a letter or digit, at most 64 characters)"
        )
    return value


def check_address(value: object) -> str:
    """An IPv4 or IPv6 address (no brackets) or a host name; IscsiInputError otherwise."""
    text = value if isinstance(value, str) else ""
    if text and ":" in text:
        address, _, zone = text.partition("%")
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            pass
        else:
            if not zone or _ZONE.fullmatch(zone):
                return text
    elif text and len(text) <= 253 and all(_LABEL.fullmatch(p) for p in text.split(".")):
        # Covers dotted IPv4 too; a host name may not start with '-' (RFC 1123).
        return text
    raise IscsiInputError(
        f"iSCSI: portal address {safe_text(value)} is not an IPv4 or IPv6 address or a host name"
    )


def check_port(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise IscsiInputError(f"iSCSI: portal port {safe_text(value)} is not a number")
    text = str(value)
    if not text.isascii() or not text.isdigit() or not 0 < int(text) < 65536:
        raise IscsiInputError(f"iSCSI: portal port {safe_text(value)} is not 1 to 65535")
    return int(text)


def portal_arg(address: object, port: object = DEFAULT_PORT) -> str:
    """The ``-p`` value for an address and port: ``a.b.c.d:port`` or ``[v6]:port``."""
    address = check_address(address)
    port = check_port(port)
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def check_startup(value: object) -> str:
    if value not in STARTUP_MODES:
        raise IscsiInputError(
            f"iSCSI: startup mode {safe_text(value)} is not one of {', '.join(STARTUP_MODES)}"
        )
    return str(value)


def record_args(target: object, address: object, port: object, iface: object) -> list[str]:
    """``-T target -p portal -I iface``: exactly one node record (any tpgt), all checked."""
    return ["-T", check_name(target), "-p", portal_arg(address, port), "-I", check_iface(iface)]


class Iscsiadm:
    """Runs ``iscsiadm`` (optionally behind ``prefix``, e.g. ``unshare`` in tests).

    ``run`` takes the arguments after the executable and returns stdout; every failure is
    an ``IscsiError`` naming the command, the exit code and its meaning, and what iscsiadm
    printed.
    """

    def __init__(
        self,
        executable: str = "iscsiadm",
        timeout: float = DEFAULT_TIMEOUT,
        prefix: Sequence[str] = (),
    ) -> None:
        self.executable = executable
        self.timeout = float(timeout)
        self.prefix = list(prefix)

    def argv(self, args: Sequence[str]) -> list[str]:
        return [*self.prefix, self.executable, *args]

    def run(self, args: Sequence[str], empty_ok: bool = False) -> str:
        """stdout of ``iscsiadm args``; with ``empty_ok`` "nothing found" (21) is ``""``."""
        if not all(isinstance(a, str) for a in args):
            raise IscsiInputError("iSCSI: iscsiadm arguments must be strings")
        command = " ".join(["iscsiadm", *args])
        code, stdout, stderr = run_program(
            self.argv(args), self.timeout, command, "install open-iscsi (Debian/Ubuntu), "
            "iscsi-initiator-utils (RHEL/Fedora) or open-iscsi (SUSE)",
        )  # fmt: skip
        if code == 0:
            return stdout
        if code == NO_OBJS_FOUND and empty_ok:
            return ""
        raise IscsiadmError(command, code, stderr)

    # The few operations the backend uses; every value is checked on the way in.

    def session_tree(self) -> str:
        """``iscsiadm -m session -P 3`` (``""`` when there is no session)."""
        return self.run(["-m", "session", "-P", "3"], empty_ok=True)

    def session_list(self) -> str:
        """``iscsiadm -m session``: a line per session (``""`` when there is none)."""
        return self.run(["-m", "session"], empty_ok=True)

    def rescan(self) -> None:
        """``iscsiadm -m session -R``: every session rescans for new LUNs (none: a no-op)."""
        self.run(["-m", "session", "-R"], empty_ok=True)

    def node_records(self) -> str:
        """``iscsiadm -m node -o show``: every node record (``""`` when there is none)."""
        return self.run(["-m", "node", "-o", "show"], empty_ok=True)

    def set_startup(
        self, target: str, address: str, port: int, iface: str, mode: str, conn_mode: str = ""
    ) -> bool:
        """Set ``node.startup`` and ``node.conn[0].startup`` (to ``mode`` both, unless
        ``conn_mode`` is given); False if there is no such record."""
        mode, conn_mode = check_startup(mode), check_startup(conn_mode or mode)
        args = ["-m", "node", *record_args(target, address, port, iface), "-o", "update"]
        # One call, both names: iscsiadm writes the record once (several -n/-v pairs are
        # supported since open-iscsi 2.0-873); callers verify with a fresh read.
        args += ["-n", "node.startup", "-v", mode, "-n", "node.conn[0].startup", "-v", conn_mode]
        try:
            self.run(args)
        except IscsiadmError as exc:
            if exc.code == NO_OBJS_FOUND:
                return False
            raise
        return True

    # -- the lifecycle: discovery records, logins, records ---------------------------------

    def discover(self, address: str, port: int, iface: str = "default") -> None:
        """SendTargets discovery through a portal: its discovery record, and a node record
        for each target found that has none. ``-o new``: existing records keep their
        settings (a plain discovery rewrites them with iscsid.conf's defaults, startup
        included: open-iscsi#58, #286, #439)."""
        self.run(
            ["-m", "discovery", "-t", "sendtargets", "-p", portal_arg(address, port)]
            + ["-I", check_iface(iface), "-o", "new"]
        )

    def new_discovery_record(self, address: str, port: int) -> None:
        """A SendTargets discovery record (its settings, e.g. CHAP, before discovering)."""
        self.run(
            ["-m", "discoverydb", "-t", "sendtargets", "-p", portal_arg(address, port)]
            + ["-o", "new"]
        )

    def discovery_records(self) -> str:
        """``iscsiadm -m discoverydb``: one ``address:port via sendtargets`` line each."""
        return self.run(["-m", "discoverydb"], empty_ok=True)

    def delete_discovery_record(self, address: str, port: int) -> None:
        """Delete a SendTargets discovery record. iscsiadm deletes the node records found
        through it too (seen with 2.1.8): callers keep the ones that matter first."""
        self.run(
            ["-m", "discoverydb", "-t", "sendtargets", "-p", portal_arg(address, port)]
            + ["-o", "delete"]
        )

    def login(self, target: str, address: str, port: int, iface: str) -> None:
        self.run(["-m", "node", *record_args(target, address, port, iface), "--login"])

    def logout(self, session_id: str) -> None:
        """Log out of one session (by its open-iscsi session id, a number)."""
        if not session_id.isascii() or not session_id.isdigit():
            raise IscsiInputError(f"iSCSI: session id {safe_text(session_id)} is not a number")
        self.run(["-m", "session", "-r", session_id, "--logout"])

    def delete_record(self, target: str, address: str, port: int, iface: str) -> None:
        self.run(["-m", "node", *record_args(target, address, port, iface), "-o", "delete"])

    def ifaces(self) -> str:
        """``iscsiadm -m iface``: ``name transport,hwaddress,ipaddress,net_ifacename,...``."""
        return self.run(["-m", "iface"], empty_ok=True)


def run_program(
    argv: list[str], timeout: float, command: str, install: str
) -> tuple[int, str, str]:
    """``(exit code, stdout, stderr)`` of ``argv``: no shell, no stdin, C locale, killed
    (with everything it started) after ``timeout``; ``install`` says how to get it."""
    # C locale: the tools are not translated, but their helpers may be; stable output.
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LC_ALL": "C"}
    try:
        # A session of its own, so that a timeout kills the whole group (a prefix such as
        # unshare, the tool, and anything it started).
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise IscsiError(f"iSCSI: {argv[0]} not found: {install}") from None
    except OSError as exc:
        raise IscsiError(f"iSCSI: cannot run {argv[0]}: {exc}") from None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.communicate()
        raise IscsiError(
            f"iSCSI: '{command}' did not finish within {timeout:g} s and was killed"
        ) from None
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


class IscsiadmError(IscsiError):
    """iscsiadm exited with an error; ``code`` is its exit code."""

    def __init__(self, command: str, code: int, stderr: str) -> None:
        self.command = command
        self.code = code
        self.stderr = stderr
        meaning = EXIT_CODES.get(code, "unknown exit code")
        if code < 0:
            meaning = f"killed by signal {-code}"
        said = [
            line.strip()
            for line in stderr.splitlines()
            if line.strip().startswith("iscsiadm:") or line.strip().startswith("iSCSI ERROR")
        ] or [line.strip() for line in stderr.splitlines() if line.strip()]
        detail = f": {safe_text('; '.join(said[-3:]), 400)}" if said else ""
        super().__init__(f"iSCSI: '{command}' failed (exit {code}, {meaning}){detail}")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
