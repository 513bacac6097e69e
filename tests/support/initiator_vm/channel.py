"""The host's end of the guest agent's port: one connection, any number of callers.

qemu exposes the virtio-serial port as a Unix socket it listens on, and accepts one
connection at a time; ``Channel`` holds that connection for a boot. Callers in any thread
send a request and wait for the answer with the same ``id``: the beacon's background check
and a state run can ask at the same time, and a caller that gives up leaves nothing behind
(a late answer finds no waiter and is dropped).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import time
from pathlib import Path


class ChannelError(RuntimeError):
    """The guest did not answer: it is off, stopped, or too slow."""


class Channel:
    def __init__(self, path: Path, deadline: float) -> None:
        """Connect to qemu's socket at ``path``, which appears once qemu runs."""
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        while True:
            try:
                self._sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise ChannelError(f"qemu's agent socket {path} did not appear") from None
                time.sleep(0.05)
        self._ids = itertools.count(1)
        self._send_lock = threading.Lock()
        self._waiting: dict[int, list] = {}  # id -> [event, answer]
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="vm-channel", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        pending = b""
        while True:
            try:
                chunk = self._sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in filter(None, lines):
                try:
                    answer = json.loads(line)
                except ValueError:
                    continue  # not for anyone
                slot = self._waiting.get(answer.get("id"))
                if slot is not None:
                    slot[1] = answer
                    slot[0].set()
        self._closed = True
        for event, _ in list(self._waiting.values()):
            event.set()

    def request(self, message: dict, timeout: float) -> dict:
        """The agent's answer to ``message``; ChannelError if none within ``timeout`` s."""
        if self._closed:
            raise ChannelError("the VM is not running")
        ident = next(self._ids)
        slot = self._waiting[ident] = [threading.Event(), None]
        try:
            data = json.dumps({**message, "id": ident}).encode("utf-8") + b"\n"
            with self._send_lock:
                self._sock.sendall(data)
            if not slot[0].wait(timeout):
                raise ChannelError(f"the guest did not answer within {timeout:g} s")
            if slot[1] is None:
                raise ChannelError("the VM stopped before it answered")
            return slot[1]
        except OSError as exc:
            raise ChannelError(f"the VM's port is closed: {exc}") from None
        finally:
            del self._waiting[ident]

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._reader.join(timeout=10)
