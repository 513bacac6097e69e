"""TCP ports for the test masters, out of the reach of every other socket on the machine.

salt-factories gives each master ports the kernel said were free a moment before (a bind
to port 0, closed at once). Those come from the ephemeral range, from which any process's
outgoing connection takes its local port too; with a few daemons and hundreds of client
connections alive, a master once found its ``ret_port`` taken and failed to start. The
kernel hands out no port outside that range, so the tests take theirs there: each one from
a register that every test process on the machine shares (under a lock, each entry with
the process that took it, free again once that process is gone), and checked free by
binding it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import tempfile
from pathlib import Path

FIRST = 20_000
REGISTER = Path(tempfile.gettempdir()) / "saltext-win-iscsi-test-ports.json"
# The master's TCP ports (the last four serve only ``ipc_mode: tcp``; set them all).
MASTER_PORTS = (
    "publish_port",
    "ret_port",
    "tcp_master_pub_port",
    "tcp_master_pull_port",
    "tcp_master_publish_pull",
    "tcp_master_workers",
)


def _ephemeral_range() -> tuple[int, int]:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
        first, last = ranges.read().split()[:2]
    return int(first), int(last)


def candidates() -> range:
    """The ports the kernel never hands out: below its ephemeral range (from FIRST), or
    above it where a machine's range starts lower than that."""
    first, last = _ephemeral_range()
    return range(FIRST, first) if first > FIRST else range(last + 1, 65_536)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """``count`` of the ``candidates()`` that no test process holds and no socket uses now,
    registered to this process."""
    with open(REGISTER.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            taken = json.loads(REGISTER.read_text())
        except (OSError, ValueError):
            taken = {}
        taken = {port: pid for port, pid in taken.items() if _alive(pid)}
        ports = []
        for port in candidates():
            if len(ports) == count:
                break
            if str(port) not in taken and _is_free(port):
                ports.append(port)
        if len(ports) < count:
            raise RuntimeError(f"no {count} free test ports in {candidates()}")
        taken.update({str(port): os.getpid() for port in ports})
        REGISTER.write_text(json.dumps(taken))
    return ports


def master_ports() -> dict[str, int]:
    return dict(zip(MASTER_PORTS, free_ports(len(MASTER_PORTS)), strict=True))
