"""The tests' hands on a real Windows host: host-actions.ps1, one action per process.

Test code. Everything here runs only on Windows; importing it anywhere is harmless.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
HELPER = HERE / "host-actions.ps1"
SETUP = HERE / "setup-target.ps1"
TARGET_FILE = REPO / "artifacts" / "windows-target.json"
MARKER = "HOSTACTION "


class HostActionError(AssertionError):
    """An action failed on the host; the message carries Windows' error."""


def powershell() -> str:
    root = os.environ.get("SYSTEMROOT", r"C:\Windows")
    return os.path.join(root, "System32", "WindowsPowerShell", "v1.0", "powershell.exe")


def act(action: str, **arguments: Any) -> Any:
    """Run one action of host-actions.ps1 and return its result."""
    env = {**os.environ, "ISCSI_TEST_ARGS": json.dumps(arguments)}
    command = [powershell(), "-NoLogo", "-NoProfile", "-NonInteractive"]
    command += ["-ExecutionPolicy", "Bypass", "-File", str(HELPER), "-Action", action]
    proc = subprocess.run(
        command, env=env, capture_output=True, encoding="utf-8", errors="replace", timeout=300
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    if not lines:
        raise HostActionError(
            f"host action {action}: no answer (exit {proc.returncode}); "
            f"stdout {proc.stdout[-2000:]!r}; stderr {proc.stderr[-2000:]!r}"
        )
    answer = json.loads(lines[-1][len(MARKER) :])
    if not answer.get("ok"):
        raise HostActionError(f"host action {action} failed: {answer}")
    return answer.get("result")


def retry(what: str, step, attempts: int = 4, pause: float = 3.0):
    """``step()``, tried again after a pause when a host action fails (logins can lag)."""
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except HostActionError:
            if attempt == attempts:
                raise
            time.sleep(pause * attempt)
    raise AssertionError(what)  # pragma: no cover - the loop returns or raises


def hex_text(text: str) -> str:
    """How host-actions.ps1 takes a secret: hex of its UTF-8 bytes."""
    return text.encode("utf-8").hex()


def find_target() -> dict | None:
    """The target setup-target.ps1 made (its state file), else one named by the environment
    (``ISCSI_TEST_TARGET``, ``ISCSI_TEST_PORTAL``, ``ISCSI_TEST_TARGET_NAME`` for the tests
    that change the target itself, ``ISCSI_TEST_PORT``)."""
    if TARGET_FILE.exists():
        state = json.loads(TARGET_FILE.read_text(encoding="utf-8-sig"))
        if state.get("target_iqn"):
            return state
    if os.environ.get("ISCSI_TEST_TARGET"):
        return {
            "target_iqn": os.environ["ISCSI_TEST_TARGET"],
            "target_name": os.environ.get("ISCSI_TEST_TARGET_NAME", ""),
            "portal": os.environ.get("ISCSI_TEST_PORTAL", ""),
            "port": int(os.environ.get("ISCSI_TEST_PORT", "3260")),
        }
    return None


def connect(target: dict, *, persistent=False, portal=True, chap=None, multipath=False) -> dict:
    """A new session to the test target (Connect-IscsiTarget); ``chap``: (user, secret)."""
    arguments = {"target": target["target_iqn"], "persistent": persistent, "multipath": multipath}
    if portal:
        arguments.update(portal=target["portal"], port=target["port"])
    if chap:
        arguments.update(chap_username=chap[0], chap_secret_hex=hex_text(chap[1]))
    return retry("connect", lambda: act("connect", **arguments))


def cleanup(target: dict) -> dict:
    """No session and no persistent login of the test target left, or HostActionError."""
    result = act("cleanup", target=target["target_iqn"])
    if result["left_sessions"] or result["left_logins"]:
        raise HostActionError(f"the test target could not be cleaned up: {result}")
    return result
