"""The bootstrap run by powershell.exe in a WinRM shell on a remote computer (pywinrm).

The command line holds only the short fixed bootstrap (far below cmd.exe's 8191
characters); the main script and the requests travel on stdin. Each stdin write is one
WS-Management Send, whose envelope the server refuses above ``MaxEnvelopeSizekb`` (500 KB
by default, 150 KB on older Windows): a line is sent in chunks of ``SEND_CHUNK`` bytes, so a
request of any length (thousands of session ids) fits. Each channel has its own pywinrm
Protocol (they are not thread-safe).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import time
from collections.abc import Callable

from saltext_win_iscsi.computers import RemoteComputer
from saltext_win_iscsi.errors import ChannelError, IscsiError, IscsiInputError, safe_text
from saltext_win_iscsi.windows.powershell.scripts import BOOTSTRAP, MAIN
from saltext_win_iscsi.windows.protocol import (
    encode_powershell_command,
    encode_request,
    encode_script,
    meaningful_stderr,
    response_from_line,
)
from saltext_win_iscsi.windows.wire import POWERSHELL_ARGS

# pywinrm is the optional [winrm] extra, imported only when a remote computer is
# managed: with requests it is some 0.2 s of CPU in every job process that imports it.
HAS_WINRM = importlib.util.find_spec("winrm") is not None

log = logging.getLogger(__name__)

# Bytes of stdin per Send: base64 makes 128 KiB of them, which with the envelope stays
# below the smallest default MaxEnvelopeSizekb (150 KB).
SEND_CHUNK = 96 * 1024


def _pywinrm():
    """pywinrm's modules used here, and requests' exceptions (pywinrm depends on requests)."""
    import requests.exceptions
    import winrm.exceptions
    import winrm.protocol

    return winrm, requests


def _pywinrm_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("pywinrm")
    except importlib.metadata.PackageNotFoundError:
        return "of unknown version"


def _receiver(protocol) -> Callable:
    """pywinrm's one-Receive call: public from 0.5.0 on, ``_raw_get_command_output`` (the
    same result) before; ChannelError when this pywinrm has neither."""
    for name in ("get_command_output_raw", "_raw_get_command_output"):
        receive = getattr(protocol, name, None)
        if callable(receive):
            return receive
    raise ChannelError(
        f"iSCSI: pywinrm {_pywinrm_version()} cannot read a command's output piece by "
        "piece (no get_command_output_raw or _raw_get_command_output); install pywinrm "
        "0.5.0 or newer"
    )


def _protocol(remote: RemoteComputer, timeout: float):
    """A pywinrm Protocol for ``remote``, secure unless the profile explicitly says not."""
    cfg = remote.settings
    transport = cfg.get("transport", "ntlm")
    scheme = cfg.get("scheme", "https")
    if transport in ("basic", "plaintext") and scheme == "http":
        log.warning("iSCSI: WinRM profile '%s' uses Basic over plain HTTP", remote.profile_name)
        transport = "plaintext"
    if transport == "basic":
        transport = "ssl"
    validation = cfg.get("server_cert_validation", "validate")
    if validation == "ignore" and scheme == "https":
        log.warning(
            "iSCSI: WinRM profile '%s' does not validate %s's TLS certificate",
            remote.profile_name,
            safe_text(remote.name),
        )
    operation_timeout = int(cfg.get("operation_timeout", 20))
    read_timeout = int(cfg.get("read_timeout", operation_timeout + 10))
    host = f"[{remote.name}]" if ":" in remote.name else remote.name
    port = cfg.get("port", 5986 if scheme == "https" else 5985)
    endpoint = f"{scheme}://{host}:{port}{cfg.get('path', '/wsman')}"
    options = {
        "transport": transport,
        "username": cfg.get("username"),
        "password": cfg.get("password"),
        "server_cert_validation": validation,
        "message_encryption": cfg.get("message_encryption", "auto"),
        "kerberos_delegation": bool(cfg.get("kerberos_delegation", False)),
        "operation_timeout_sec": min(operation_timeout, max(1, int(timeout) - 1)),
        "read_timeout_sec": min(read_timeout, int(timeout) + 10),
    }
    for key in ("ca_trust_path", "cert_pem", "cert_key_pem"):
        if cfg.get(key):
            options[key] = cfg[key]
    if options["read_timeout_sec"] <= options["operation_timeout_sec"]:
        options["read_timeout_sec"] = options["operation_timeout_sec"] + 1
    winrm, _ = _pywinrm()
    return winrm.protocol.Protocol(endpoint, **options)


def _error(remote: RemoteComputer, exc: Exception) -> IscsiError:
    """A clear, secret-free message for what went wrong talking to ``remote``."""
    who = f"{safe_text(remote.name)} (WinRM profile {safe_text(remote.profile_name)})"
    winrm, requests = _pywinrm()
    if isinstance(exc, winrm.exceptions.InvalidCredentialsError):
        what = "refused the credentials"
    elif isinstance(exc, requests.exceptions.SSLError):
        what = "failed TLS certificate validation"
    elif isinstance(exc, requests.exceptions.ConnectionError):
        what = "cannot be reached (connection failed)"
    elif isinstance(exc, requests.exceptions.Timeout):
        what = "did not answer in time"
    elif isinstance(exc, winrm.exceptions.WinRMTransportError) and exc.code == 413:
        what = "refused a message as too large (HTTP 413: above its MaxEnvelopeSizekb)"
    elif isinstance(exc, winrm.exceptions.WinRMTransportError):
        what = f"answered HTTP {exc.code}"
    elif isinstance(exc, winrm.exceptions.WSManFaultError):
        what = f"reported a WS-Management fault: {exc.reason or exc.code}"
    else:
        what = f"failed: {type(exc).__name__}"
    return ChannelError(f"iSCSI: {who} {what}")


class WinRMChannel:
    """powershell.exe with the fixed bootstrap in a WinRM shell; requests on its stdin."""

    def __init__(self, remote: RemoteComputer, timeout: float) -> None:
        if not HAS_WINRM:
            raise ChannelError(
                "iSCSI: remote computers need pywinrm (pip install 'saltext-win-iscsi[winrm]')"
            )
        try:
            winrm, _ = _pywinrm()
        except ImportError as exc:
            raise ChannelError(
                f"iSCSI: pywinrm is installed but cannot be imported ({exc}); reinstall "
                "'saltext-win-iscsi[winrm]'"
            ) from None
        # What pywinrm raises when a Receive or our deadline runs out.
        self._op_timeout = winrm.exceptions.WinRMOperationTimeoutError
        self.remote = remote
        self.timeout = timeout
        self._shell = self._command = None
        self._buffer = b""
        self._stderr = b""
        self._exit_code: int | None = None
        self._where = f"PowerShell on {safe_text(remote.name)}"
        try:
            self._protocol = _protocol(remote, timeout)
            self._receive_once = _receiver(self._protocol)
            self._shell = self._protocol.open_shell(codepage=65001, noprofile=True)
            self._command = self._protocol.run_command(
                self._shell,
                "powershell.exe",
                [*POWERSHELL_ARGS, encode_powershell_command(BOOTSTRAP)],
                console_mode_stdin=False,
            )
            self._send(encode_script(MAIN))
        except (IscsiInputError, ChannelError):
            raise
        except Exception as exc:  # pylint: disable=broad-except
            self.kill()
            raise _error(remote, exc) from None

    def _send(self, line: str, end: bool = False) -> None:
        """One line (or, with ``end``, the end of stdin), in Sends of ``SEND_CHUNK`` bytes."""
        data = (line + "\n").encode("ascii") if line else b""
        chunks = [data[at : at + SEND_CHUNK] for at in range(0, len(data), SEND_CHUNK)]
        for chunk in chunks:
            self._protocol.send_command_input(self._shell, self._command, chunk, False)
        if end:
            self._protocol.send_command_input(self._shell, self._command, b"", True)

    def _receive(self, deadline: float) -> bool:
        """Read what output there is; False once the command has finished."""
        while True:
            try:
                stdout, stderr, code, done = self._receive_once(self._shell, self._command)
            except self._op_timeout:
                if time.monotonic() >= deadline:
                    raise
                continue
            self._buffer += stdout
            self._stderr += stderr
            if done:
                self._exit_code = code
            return not done

    def request(self, request: dict, secrets: dict[str, str] | None = None) -> dict:
        """Send one request and wait for its response line."""
        deadline = time.monotonic() + self.timeout
        try:
            self._send(encode_request(request, secrets))
            while True:
                while b"\n" in self._buffer:
                    raw, self._buffer = self._buffer.split(b"\n", 1)
                    line = raw.decode("utf-8", "replace").rstrip("\r")
                    if line.strip():
                        return response_from_line(line, self._where)
                if self._exit_code is not None or not self._receive(deadline):
                    stderr = meaningful_stderr(self._stderr.decode("utf-8", "replace"))
                    raise ChannelError(
                        f"iSCSI: {self._where} ended without answering "
                        f"'{request.get('op')}' (exit code {self._exit_code})"
                        + (f"; stderr: {safe_text(stderr.strip())}" if stderr else "")
                    )
                if time.monotonic() >= deadline:
                    raise self._op_timeout()
        except ChannelError:
            self.kill()
            raise
        except self._op_timeout:
            self.kill()
            raise ChannelError(
                f"iSCSI: {self._where} did not answer '{request.get('op')}' "
                f"within {self.timeout:g} s; the remote command was stopped"
            ) from None
        except Exception as exc:  # pylint: disable=broad-except
            self.kill()
            raise _error(self.remote, exc) from None

    def close(self) -> None:
        """End stdin, wait for the remote PowerShell to exit; raise if it failed."""
        deadline = time.monotonic() + self.timeout
        try:
            self._send("", end=True)
            while self._exit_code is None and self._receive(deadline):
                if time.monotonic() >= deadline:
                    raise self._op_timeout()
        except self._op_timeout:
            self.kill()
            raise ChannelError(
                f"iSCSI: {self._where} did not exit within {self.timeout:g} s"
            ) from None
        except Exception as exc:  # pylint: disable=broad-except
            self.kill()
            raise _error(self.remote, exc) from None
        self.kill()
        stderr = meaningful_stderr(self._stderr.decode("utf-8", "replace"))
        if self._exit_code != 0 or stderr:
            detail = f": {safe_text(stderr.strip())}" if stderr else ""
            raise ChannelError(f"iSCSI: {self._where} exited with code {self._exit_code}{detail}")

    def kill(self) -> None:
        """Stop the remote command and close the shell, ignoring errors (best effort)."""
        shell, command, self._shell, self._command = self._shell, self._command, None, None
        if shell is None:
            return
        with contextlib.suppress(Exception):
            if command is not None:
                self._protocol.cleanup_command(shell, command)
        with contextlib.suppress(Exception):
            self._protocol.close_shell(shell)

    @property
    def alive(self) -> bool:
        return self._shell is not None and self._exit_code is None
