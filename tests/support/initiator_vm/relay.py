"""The forwarders' way into the guest: a Unix socket served by the test process.

Each forwarder process (the minion's ``iscsiadm``, ``lsblk``, ``systemctl`` or ``pidof``,
see forwarder.py) connects,
sends one ``{"program": ..., "args": [...], "timeout": s}`` line and reads one answer line:
what the program printed and returned in the guest, or ``{"error": ...}``. Only the
programs the Linux backend runs (``PROGRAMS``) can be run this way. Connections are served side by side and share the VM's one channel, which
multiplexes them; while the VM is off every request is answered with an error at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support.initiator_vm.channel import Channel, ChannelError

SLACK = 2  # seconds the relay waits beyond the guest's own timeout
# What the Linux backend runs: iscsiadm and lsblk; systemctl and pidof for iscsi.diagnose
# (read-only verbs: the backend never starts or enables a unit).
PROGRAMS = ("iscsiadm", "lsblk", "systemctl", "pidof")


def answer(channel: Channel | None, request: object) -> dict:
    """What the relay says to one forwarder request."""
    if not (
        isinstance(request, dict)
        and isinstance(request.get("args"), list)
        and all(isinstance(a, str) for a in request["args"])
        and isinstance(request.get("timeout"), (int, float))
    ):
        return {"error": "malformed request"}
    if channel is None or channel.closed:
        return {"error": "the VM is not running"}
    program = request.get("program", "iscsiadm")
    if program not in PROGRAMS:
        return {"error": f"only {', '.join(PROGRAMS)} can be run in the guest"}
    timeout = float(request["timeout"])
    message = {"op": "run", "argv": [program, *request["args"]], "timeout": timeout}
    try:
        reply = channel.request(message, timeout + SLACK)
    except ChannelError as exc:
        return {"error": str(exc)}
    if reply.get("timed_out"):
        return {"error": f"{program} did not finish in the guest within {timeout:g} s"}
    return reply


@dataclass(frozen=True)
class Call:
    """One forwarded iscsiadm run, as the journal keeps it (for diagnosis and counts)."""

    started: float  # time.time()
    seconds: float
    args: tuple[str, ...]
    rc: int | None  # None: no answer from the guest


class Relay:
    """Serves ``path`` (mode 0600) until ``close``; ``channel()`` is the VM's current one.
    ``journal`` lists every forwarded call."""

    def __init__(self, path: Path, channel: Callable[[], Channel | None]) -> None:
        self.journal: list[Call] = []
        self._channel = channel
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        os.chmod(path, 0o600)
        self._server.listen(64)
        self._thread = threading.Thread(target=self._accept, name="vm-relay", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)  # for the request line only; a forwarder sends it at once
            data = b""
            try:
                while not data.endswith(b"\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                conn.settimeout(None)
                try:
                    request = json.loads(data)
                except ValueError:
                    request = None
                started, clock = time.time(), time.monotonic()
                reply = answer(self._channel(), request)
                args = request.get("args") if isinstance(request, dict) else None
                args = tuple(args) if isinstance(args, list) else ()
                self.journal.append(Call(started, time.monotonic() - clock, args, reply.get("rc")))
                conn.sendall(json.dumps(reply).encode() + b"\n")
            except OSError:
                return  # the forwarder went away (killed by its caller's timeout)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)  # wakes accept() (Linux)
        self._server.close()
        self._thread.join(timeout=10)
