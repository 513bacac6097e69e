"""The VM's agent: runs what the host asks, over the virtio-serial port named ``agent``.

Runs inside the VM as the child of its init (standard library only; the guest runs the
host's own Python). One JSON document a line each way; every request carries an ``id``
that its answer repeats, and each request runs in a thread of its own, so slow commands
do not hold up others (the host multiplexes several callers on the one port):

- ``{"op": "ping"}`` -> ``{"boot_id": ...}`` (the kernel's boot id: a new one per boot)
- ``{"op": "run", "argv": [...], "stdin": b64 or null, "timeout": s}`` -> ``{"rc",
  "stdout", "stderr"}`` (base64: bytes as they came) or ``{"timed_out": true}``. argv is
  executed as given, never through a shell.
- ``{"op": "lio", "spec": {...}}`` -> ``{"targets": [...]}`` (see lio.py)
- ``{"op": "disks"}`` -> ``{"disks": {sid: [sdX, ...]}}``: each iSCSI session's block
  devices, from sysfs (not from iscsiadm, whose output the library parses)
- ``{"op": "poweroff"}`` -> ``{}``; then the agent syncs and exits, and init powers off.

Failures answer ``{"error": text}``. Nothing is logged: a request may hold a CHAP secret.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import lio

PORT_NAME = "agent"
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


def find_port() -> str:
    """The device of the virtio-serial port named ``agent`` (no udev here: by sysfs)."""
    for entry in Path("/sys/class/virtio-ports").iterdir():
        if (entry / "name").read_text().strip() == PORT_NAME:
            return f"/dev/{entry.name}"
    raise SystemExit("initiator-vm agent: no virtio-serial port named 'agent'")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def run(request: dict) -> dict:
    stdin = request.get("stdin")
    proc = subprocess.Popen(
        request["argv"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
        start_new_session=True,  # a timeout kills everything the command started
    )
    try:
        out, err = proc.communicate(
            base64.b64decode(stdin) if stdin else b"", timeout=float(request["timeout"])
        )
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"timed_out": True}
    return {"rc": proc.returncode, "stdout": b64(out), "stderr": b64(err)}


def disks() -> dict[str, list[str]]:
    found = {}
    for link in Path("/sys/class/iscsi_session").glob("session*"):
        # .../hostN/sessionM/iscsi_session/sessionM -> .../sessionM/targetN:0:0/N:0:0:L/block/sdX
        session = link.resolve().parents[1]
        found[link.name[len("session") :]] = sorted(
            p.name for p in session.glob("target*/*/block/*")
        )
    return found


def boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


class Agent:
    def __init__(self, device: str) -> None:
        self.fd = os.open(device, os.O_RDWR)
        self.write_lock = threading.Lock()

    def send(self, message: dict) -> None:
        data = json.dumps(message).encode("utf-8") + b"\n"
        with self.write_lock:
            while data:
                data = data[os.write(self.fd, data) :]

    def handle(self, request: dict) -> None:
        answer: dict
        try:
            op = request["op"]
            if op == "ping":
                answer = {"boot_id": boot_id()}
            elif op == "run":
                answer = run(request)
            elif op == "lio":
                answer = {"targets": lio.configure(request["spec"])}
            elif op == "disks":
                answer = {"disks": disks()}
            elif op == "poweroff":
                answer = {}
            else:
                answer = {"error": f"unknown op {op!r}"}
        except Exception as exc:  # the host gets every failure as an answer
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        self.send({"id": request.get("id"), **answer})
        if request.get("op") == "poweroff" and "error" not in answer:
            os.sync()
            os._exit(0)

    def serve(self) -> None:
        pending = b""
        while True:
            chunk = os.read(self.fd, 65536)
            if not chunk:  # the host side is not connected (yet): wait for it
                time.sleep(0.1)
                continue
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in filter(None, lines):
                try:
                    request = json.loads(line)
                except ValueError:
                    self.send({"id": None, "error": "not JSON"})
                    continue
                threading.Thread(target=self.handle, args=(request,), daemon=True).start()


if __name__ == "__main__":
    uptime = Path("/proc/uptime").read_text().split()[0]
    print(f"initiator-vm agent: serving at {uptime} s", file=sys.stderr, flush=True)
    Agent(find_port()).serve()
