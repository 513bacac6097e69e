"""Stand-in for powershell.exe on a simulated Windows host (test code).

Run exactly as the execution module runs powershell.exe:
``powershell -NoLogo -NoProfile -NonInteractive -EncodedCommand <bootstrap>``, with the
main script on the first stdin line and one request per further line, or
``powershell -NoLogo -NoProfile -NonInteractive -File <main.ps1> -Serve`` (an installed
script, ``iscsi.script_path``) with requests only. It accepts only the pinned bootstrap
and main script (``pins.json``), so the module's script cannot change without this
simulator being reviewed, and answers every request from the host model named by
``ISCSI_SIM_STATE``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import time
from pathlib import Path

STANDIN = Path(__file__).resolve()
REPO = STANDIN.parents[3]
# Run as a program (by a wrapper or a WinRM endpoint): make the repository's packages
# importable, the library as file_roots users get it.
for _path in (str(REPO / "salt" / "_utils"), str(REPO)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

# The wire's facts only: its module imports no Salt, which would double this process's start.
from saltext_win_iscsi.windows.wire import (  # noqa: E402
    FILE_ARGS,
    LANGUAGE_MARKER,
    POWERSHELL_ARGS,
    PROTOCOL_VERSION,
    RESPONSE_MARKER,
    SERVE,
    script_text,
)
from tests.support.simhost.model import SimulatedHost  # noqa: E402

PINS = json.loads((STANDIN.with_name("pins.json")).read_text())
# How a WinRM endpoint or a test runs the stand-in in place of powershell.exe.
COMMAND = [sys.executable, str(STANDIN)]


def install(directory: Path, state_path: Path) -> Path:
    """Write an executable ``powershell`` in ``directory`` for the host at ``state_path``."""
    directory.mkdir(parents=True, exist_ok=True)
    exe = directory / "powershell"
    exe.write_text(
        f"#!/bin/sh\nISCSI_SIM_STATE='{state_path}' exec '{sys.executable}' '{STANDIN}' \"$@\"\n"
    )
    exe.chmod(0o755)
    return exe


def fail(message: str, code: int = 1) -> None:
    sys.stderr.write(f"powershell stand-in: {message}\n")
    sys.stderr.flush()
    sys.exit(code)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_request(line: str) -> tuple[dict, dict]:
    """What the main script reads from one request line: the JSON, then the secrets."""
    parts = line.split(" ")
    request = json.loads(base64.b64decode(parts[0], validate=True).decode("utf-8"))
    names = request.get("secrets") or []
    if len(parts) != 1 + len(names):
        fail(f"request line has {len(parts) - 1} secrets for {len(names)} names")
    secrets = {
        str(name): base64.b64decode(part, validate=True).decode("utf-8")
        for name, part in zip(names, parts[1:], strict=True)
    }
    return request, secrets


def stop_reading_at(faults: dict, point: str) -> None:
    """The ``stops_reading`` fault: from ``point`` on, never read stdin again."""
    if faults.get("stops_reading") == point:
        while True:
            time.sleep(3600)


def refuse_language(mode: str) -> None:
    """The scripts' first check: plain text, exit 3, before reading stdin."""
    sys.stdout.write(f"{LANGUAGE_MARKER}{mode}\n")
    sys.stdout.flush()
    sys.exit(3)


def serve_encoded(argv: list[str], faults: dict) -> None:
    """-EncodedCommand <bootstrap>, then the main script as the first stdin line."""
    if argv[:-1] != list(POWERSHELL_ARGS):
        fail(f"unexpected command line {argv[:-1]!r}")
    bootstrap = base64.b64decode(argv[-1]).decode("utf-16-le")
    if sha256(bootstrap) != PINS["bootstrap_sha256"]:
        fail("the -EncodedCommand is not the pinned bootstrap script")
    if faults["language_mode"] != "FullLanguage":
        refuse_language(faults["language_mode"])
    stop_reading_at(faults, "start")
    first = sys.stdin.readline()
    if not first:
        sys.exit(0)
    main_script = base64.b64decode(first.strip()).decode("utf-8")
    if sha256(main_script) != PINS["main_sha256"]:
        fail("the main script on stdin is not the pinned main script")


def serve_installed(path: str, faults: dict) -> None:
    """-File <installed main.ps1> -Serve: the file must hold the pinned main script. Under a
    lockdown (``language_mode``) a signed file keeps FullLanguage, as WDAC does for a file
    whose signer the policy trusts; an unsigned one does not."""
    try:
        raw = Path(path).read_bytes()
    except OSError:
        fail(f"The argument '{path}' to the -File parameter does not exist.", code=-196608)
    if sha256(script_text(raw)) != PINS["main_sha256"]:
        fail("the -File script is not the pinned main script")
    signed = b"# SIG # Begin signature block" in raw
    if faults["language_mode"] != "FullLanguage" and not (signed and faults["signer_trusted"]):
        refuse_language(faults["language_mode"])
    stop_reading_at(faults, "start")


def main(argv: list[str]) -> None:
    host = SimulatedHost(os.environ["ISCSI_SIM_STATE"])
    host.count_process()
    faults = host.faults()
    time.sleep(float(faults.get("startup_delay") or 0))

    if argv[:4] == list(FILE_ARGS) and argv[5:] == [SERVE] and len(argv) == 6:
        serve_installed(argv[4], faults)
    else:
        serve_encoded(argv, faults)
    stop_reading_at(host.faults(), "after_script")

    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        faults = host.faults()
        if faults["crash"]:
            fail("simulated crash", code=255)
        if faults["hang"]:
            while True:
                time.sleep(3600)
        if faults["garbage"]:
            sys.stdout.write("Get-IscsiSession : \x00\x7f garbage that is no response\n")
            sys.stdout.flush()
            continue
        request, secrets = parse_request(line)
        response = {"v": PROTOCOL_VERSION, **host.handle(request, secrets)}
        payload = base64.b64encode(json.dumps(response).encode("utf-8")).decode("ascii")
        sys.stdout.write(RESPONSE_MARKER + payload + "\n")
        sys.stdout.flush()
        if faults["stderr"]:
            sys.stderr.buffer.write((faults["stderr"] + "\n").encode(faults["stderr_encoding"]))
            sys.stderr.flush()
    sys.exit(int(faults.get("exit_code") or 0))


if __name__ == "__main__":
    main(sys.argv[1:])
