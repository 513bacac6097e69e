"""A local powershell.exe process running the bootstrap: one line in, one line out."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import subprocess
import sys
import threading
import time
import weakref
from typing import IO

from saltext_win_iscsi.errors import ChannelError, safe_text
from saltext_win_iscsi.windows.powershell.installed import check_installed, file_command
from saltext_win_iscsi.windows.powershell.scripts import BOOTSTRAP, MAIN
from saltext_win_iscsi.windows.protocol import (
    encode_powershell_command,
    encode_request,
    encode_script,
    language_error,
    meaningful_stderr,
    response_from_line,
)
from saltext_win_iscsi.windows.wire import LANGUAGE_MARKER, POWERSHELL_ARGS

log = logging.getLogger(__name__)

ON_WINDOWS = sys.platform == "win32"


def console_encoding() -> str:
    """How powershell.exe writes stderr: in the console's OEM code page on Windows."""
    return "oem" if ON_WINDOWS else "utf-8"


def _stop_process(proc: subprocess.Popen, owner: int) -> None:
    # A job process forked from the minion inherits the object: only its owner stops it.
    if os.getpid() == owner and proc.poll() is None:
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def _pipe(stream: IO[bytes] | None) -> IO[bytes]:
    """A pipe of the process (all three are opened with PIPE)."""
    if stream is None:
        raise ChannelError("iSCSI: the PowerShell process has no pipe")
    return stream


class ProcessChannel:
    """powershell.exe with the fixed bootstrap, or with an installed main script
    (``script_path``, run with ``-File``); it can always be killed."""

    def __init__(self, executable: str, timeout: float, script_path: str | None = None) -> None:
        self.executable = executable
        self.timeout = timeout
        if script_path:
            check_installed(script_path)
            command = file_command(executable, script_path)
        else:
            command = [executable, *POWERSHELL_ARGS, encode_powershell_command(BOOTSTRAP)]
        creationflags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        try:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                creationflags=creationflags,
            )
        except FileNotFoundError as exc:
            raise ChannelError(
                f"iSCSI: PowerShell not found at '{executable}' (set iscsi.powershell)"
            ) from exc
        except OSError as exc:
            raise ChannelError(
                f"iSCSI: cannot start PowerShell '{executable}': {exc.strerror or exc}"
            ) from exc
        # A channel dropped without close() (e.g. a kept one lost on a module refresh) must
        # not leave PowerShell running.
        weakref.finalize(self, _stop_process, self._proc, os.getpid())  # alive until called
        self._lines: queue.Queue = queue.Queue()
        self._stderr: list[bytes] = []
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        if script_path:
            return  # the installed script reads its requests itself
        # On Windows a pipe holds about 4 KB: this write blocks until powershell.exe reads
        # the script, so a stalled start (AV/AMSI scanning, a hung provider) must time out.
        self._write(
            encode_script(MAIN), time.monotonic() + timeout, "the extension's script", stalled=True
        )

    def _read_stdout(self) -> None:
        for raw in _pipe(self._proc.stdout):
            self._lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
        self._lines.put(None)

    def _read_stderr(self) -> None:
        for raw in _pipe(self._proc.stderr):
            self._stderr.append(raw)

    def _stderr_text(self) -> str:
        return b"".join(self._stderr).decode(console_encoding(), "replace").strip()

    def _write(self, line: str, deadline: float, what: str, stalled: bool = False) -> None:
        """Write one line; a PowerShell that has not read it by ``deadline`` is stopped."""
        failures: list[Exception] = []
        writer = threading.Thread(
            target=self._write_line, args=(line.encode("ascii") + b"\n", failures), daemon=True
        )
        writer.start()
        writer.join(max(0.0, deadline - time.monotonic()))
        if writer.is_alive():
            self.kill()  # the blocked write then fails with a broken pipe and the thread ends
            writer.join(timeout=5)
            cause = " (a stalled start: antivirus or AMSI scanning, a hung provider?)"
            raise ChannelError(
                f"iSCSI: PowerShell did not read {what} within {self.timeout:g} s"
                f"{cause if stalled else ''}; the process was stopped"
            )
        if failures:
            raise self._died(f"PowerShell stopped before it read {what}") from failures[0]

    def _write_line(self, data: bytes, failures: list[Exception]) -> None:
        try:
            stdin = _pipe(self._proc.stdin)
            stdin.write(data)
            stdin.flush()
        except (OSError, ValueError) as exc:  # ValueError: stdin closed by kill()
            failures.append(exc)

    def _died(self, what: str) -> ChannelError:
        try:
            code = self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self._proc.returncode
        for reader in self._readers:
            reader.join(timeout=5)
        # Why it ended may be on stdout: the bootstrap refuses constrained language mode.
        while not self._lines.empty():
            line = self._lines.get_nowait()
            if line and line.startswith(LANGUAGE_MARKER):
                return language_error(line[len(LANGUAGE_MARKER) :])
        stderr = self._stderr_text()
        detail = f"; stderr: {safe_text(stderr.strip())}" if stderr else ""
        return ChannelError(f"iSCSI: {what} (exit code {code}){detail}")

    def request(self, request: dict, secrets: dict[str, str] | None = None) -> dict:
        """Send one request and wait for its response, both within the timeout."""
        deadline = time.monotonic() + self.timeout
        self._write(
            encode_request(request, secrets), deadline, f"the '{request.get('op')}' request"
        )
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise ChannelError(
                    f"iSCSI: PowerShell did not answer '{request.get('op')}' within "
                    f"{self.timeout:g} s; the process was stopped"
                ) from None
            if line is None:
                raise self._died(f"PowerShell ended without answering '{request.get('op')}'")
            if not line.strip():
                continue
            try:
                return response_from_line(line)
            except ChannelError:
                self.kill()
                raise

    def close(self) -> None:
        """End the process; raise if it failed or wrote to stderr."""
        if self._proc.poll() is None:
            with contextlib.suppress(OSError):
                _pipe(self._proc.stdin).close()
            try:
                self._proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise ChannelError(
                    f"iSCSI: PowerShell did not exit within {self.timeout:g} s; "
                    "the process was stopped"
                ) from None
        for reader in self._readers:
            reader.join(timeout=5)
        stderr = meaningful_stderr(self._stderr_text())
        if self._proc.returncode != 0 or stderr:
            detail = f": {safe_text(stderr.strip())}" if stderr else ""
            raise ChannelError(
                f"iSCSI: PowerShell exited with code {self._proc.returncode}{detail}"
            )

    def kill(self) -> None:
        """Stop the process at once (timeouts, protocol errors, shutdown)."""
        if self._proc.poll() is None:
            self._proc.kill()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover - unkillable process
                log.error("iSCSI: PowerShell process %s did not stop", self._proc.pid)

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None
