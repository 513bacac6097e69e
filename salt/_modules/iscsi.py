"""
Manage the persistence of Microsoft iSCSI initiator sessions.

Wraps ``Get-IscsiSession``, ``Unregister-IscsiSession`` and ``Register-IscsiSession``
(PowerShell module ``iSCSI``) so that sessions which must not reconnect at boot can be
found and made non-persistent from the CLI, from states and from the reactor.

:depends: Windows Server 2016 or newer (PowerShell 5.1, ``iSCSI`` module)
:platform: Windows

How it talks to Windows
-----------------------
Every call runs one fixed, versioned PowerShell script (``MAIN_SCRIPT`` below). Requests
travel to it as data: a base64-encoded JSON document read by the script, never text
pasted into PowerShell source. One PowerShell process (or one in-process runspace)
serves a whole call, whatever the number of sessions.

Minion configuration (minion config or pillar, read with ``config.get``):

.. code-block:: yaml

    # PowerShell to run; default: in-process runspace when Salt's pythonnet
    # support is available, else powershell.exe
    iscsi.powershell: C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe
    # seconds one request may take before PowerShell is stopped (default 120)
    iscsi.timeout: 120

Mapping of the cmdlet's parameters
----------------------------------
=====================  ===========================================================
Unregister-IscsiSession  this module
=====================  ===========================================================
-SessionIdentifier     ``session_identifier`` (one id, a list, or ``id1,id2``)
-InputObject           ``sessions`` (session dicts as ``iscsi.get_sessions`` returns)
-PassThru              ``passthru=True``
-AsJob                 Salt's own ``salt --async``
=====================  ===========================================================
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import contextvars
import functools
import json
import logging
import queue
import re
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import salt.utils.platform
from salt.exceptions import CommandExecutionError, SaltInvocationError

try:
    import requests.exceptions
    import winrm.exceptions
    import winrm.protocol

    HAS_WINRM = True
except ImportError:  # pragma: no cover - pywinrm is a dependency, but optional on Windows
    HAS_WINRM = False

try:
    import salt.utils.win_pwsh as _win_pwsh

    HAS_INPROCESS_PWSH = bool(_win_pwsh.HAS_CLR and _win_pwsh.HAS_PWSH_SDK)
except ImportError:  # pragma: no cover - salt without win_pwsh
    _win_pwsh = None
    HAS_INPROCESS_PWSH = False

log = logging.getLogger(__name__)

__virtualname__ = "iscsi"

PROTOCOL_VERSION = 2
DEFAULT_TIMEOUT = 120
DEFAULT_POWERSHELL = "powershell.exe"
RESPONSE_MARKER = "ISCSI1 "
WATCH_CHANNEL_KEY = "iscsi.watch_channel"
MAX_UNREGISTER_PASSES = 16

SESSION_FIELDS = (
    "SessionIdentifier",
    "InitiatorSideIdentifier",
    "TargetSideIdentifier",
    "NumberOfConnections",
    "TargetNodeAddress",
    "InitiatorPortalAddress",
    "InitiatorNodeAddress",
    "InitiatorInstanceName",
    "AuthenticationType",
    "IsConnected",
    "IsPersistent",
    "IsDiscovered",
    "IsDataDigest",
    "IsHeaderDigest",
    "IsMultipathEnabled",
)

# The process entry point, passed with -EncodedCommand. It reads the main script (base64,
# first line of stdin), then answers each further line (one base64 JSON request) with one
# line: RESPONSE_MARKER + base64 JSON response. A single call sends one or a few requests;
# the beacon keeps the process and sends one request per tick.
BOOTSTRAP_SCRIPT = """\
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$mainText = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String([Console]::In.ReadLine()))
$main = [scriptblock]::Create($mainText)
while ($null -ne ($line = [Console]::In.ReadLine())) {
    if ($line.Length -gt 0) {
        $answer = & $main $line
        [Console]::Out.WriteLine('ISCSI1 ' + $answer)
        [Console]::Out.Flush()
    }
}
"""

# Protocol version 2. Changing this text changes the protocol: bump PROTOCOL_VERSION and
# update the simulated host under tests/ (its pin test fails until then).
MAIN_SCRIPT = """\
# salt iscsi extension, main script, protocol 2.
# In: $Payload, base64 of a UTF-8 JSON request. Out: base64 of a UTF-8 JSON response.
# Request values are only ever used as parameter values, never as script text.
param([string]$Payload)

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

$SessionFields = @(
    'SessionIdentifier', 'InitiatorSideIdentifier', 'TargetSideIdentifier',
    'NumberOfConnections', 'TargetNodeAddress', 'InitiatorPortalAddress',
    'InitiatorNodeAddress', 'InitiatorInstanceName', 'AuthenticationType',
    'IsConnected', 'IsPersistent', 'IsDiscovered', 'IsDataDigest',
    'IsHeaderDigest', 'IsMultipathEnabled'
)
$ConnectionFields = @(
    'ConnectionIdentifier', 'InitiatorAddress', 'InitiatorPortNumber',
    'TargetAddress', 'TargetPortNumber'
)

function ConvertTo-ErrorData($Record) {
    [ordered]@{
        message  = $Record.Exception.Message
        category = $Record.CategoryInfo.Category.ToString()
        error_id = $Record.FullyQualifiedErrorId
        hresult  = '0x{0:X8}' -f $Record.Exception.HResult
    }
}

function Select-Fields($Object, [string[]]$Fields) {
    $data = [ordered]@{}
    foreach ($field in $Fields) {
        $data[$field] = $Object.$field
    }
    $data
}

function Get-SessionData([bool]$WithConnections) {
    foreach ($session in @(Get-IscsiSession)) {
        $data = Select-Fields $session $SessionFields
        if ($WithConnections) {
            $data['Connections'] = @(
                foreach ($connection in @(Get-IscsiConnection -IscsiSession $session)) {
                    Select-Fields $connection $ConnectionFields
                }
            )
        }
        $data
    }
}

function Invoke-PerSession([object[]]$Ids, [scriptblock]$Action) {
    foreach ($id in $Ids) {
        $item = [ordered]@{ id = [string]$id; ok = $true }
        try {
            $null = & $Action ([string]$id)
        } catch {
            $item['ok'] = $false
            $item['error'] = ConvertTo-ErrorData $_
        }
        $item
    }
}

function Get-PersistentLoginData {
    $class = 'MSiSCSIInitiator_PersistentLoginClass'
    foreach ($login in @(Get-CimInstance -Namespace 'root/wmi' -ClassName $class)) {
        [ordered]@{
            TargetName          = [string]$login.TargetName
            InitiatorInstance   = [string]$login.InitiatorInstance
            InitiatorPortNumber = [uint32]$login.InitiatorPortNumber
            TargetPortalAddress = [string]$login.TargetPortal.Address
            TargetPortalPort    = [uint16]$login.TargetPortal.Port
        }
    }
}

function Remove-PersistentLogin($Login) {
    # iscsicli is the initiator's documented interface for this; its arguments are
    # checked to be plain names and numbers before they reach its command line.
    $plain = '^[A-Za-z0-9._:\\\\[\\]-]+$'
    $values = @($Login.InitiatorInstance, $Login.TargetName, $Login.TargetPortalAddress)
    foreach ($value in $values) {
        if ([string]$value -notmatch $plain) {
            throw (New-Object System.ArgumentException 'not a plain iSCSI name or address')
        }
    }
    $port = [uint32]$Login.InitiatorPortNumber
    $portArgument = if ($port -eq [uint32]::MaxValue) { '*' } else { [string]$port }
    $output = & iscsicli.exe RemovePersistentTarget ([string]$Login.InitiatorInstance) `
        ([string]$Login.TargetName) $portArgument ([string]$Login.TargetPortalAddress) `
        ([string][uint16]$Login.TargetPortalPort) 2>&1
    if ($LASTEXITCODE -ne 0) {
        $text = (@($output) | Where-Object { "$_".Trim() } | Select-Object -Last 1)
        throw (New-Object System.InvalidOperationException "$text (iscsicli exit code $LASTEXITCODE)")
    }
}

$response = [ordered]@{ v = 2; ok = $true }
try {
    $requestJson = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($Payload))
    $request = ConvertFrom-Json -InputObject $requestJson
    switch ([string]$request.op) {
        'get_sessions' {
            $response['sessions'] = @(Get-SessionData ([bool]$request.connections))
        }
        'digest' {
            $ids = @(
                Get-IscsiSession | Where-Object { $_.IsPersistent } |
                    ForEach-Object { [string]$_.SessionIdentifier } | Sort-Object
            )
            $logins = @(
                Get-PersistentLoginData | ForEach-Object { $_.Values -join '|' } | Sort-Object
            )
            $text = ($ids -join "`n") + "`n--`n" + ($logins -join "`n")
            $sha = [Security.Cryptography.SHA256]::Create()
            $hash = $sha.ComputeHash([Text.Encoding]::UTF8.GetBytes($text))
            $response['count'] = $ids.Count
            $response['logins'] = $logins.Count
            $response['digest'] = -join ($hash | ForEach-Object { $_.ToString('x2') })
        }
        'get_persistent_logins' {
            $response['logins'] = @(Get-PersistentLoginData)
        }
        'remove_persistent_logins' {
            $response['results'] = @(
                foreach ($login in @($request.logins)) {
                    $item = [ordered]@{ ok = $true }
                    try {
                        Remove-PersistentLogin $login
                    } catch {
                        $item['ok'] = $false
                        $item['error'] = ConvertTo-ErrorData $_
                    }
                    $item
                }
            )
        }
        'unregister' {
            $response['results'] = @(
                Invoke-PerSession @($request.ids) {
                    param($Id)
                    Unregister-IscsiSession -SessionIdentifier $Id
                }
            )
        }
        'register' {
            $options = @{ IsMultipathEnabled = [bool]$request.is_multipath_enabled }
            if ($request.chap_username) { $options['ChapUsername'] = [string]$request.chap_username }
            if ($request.chap_secret) { $options['ChapSecret'] = [string]$request.chap_secret }
            $response['results'] = @(
                Invoke-PerSession @($request.ids) {
                    param($Id)
                    Register-IscsiSession -SessionIdentifier $Id @options
                }
            )
        }
        default {
            throw (New-Object System.ArgumentException 'unknown operation')
        }
    }
} catch {
    $response = [ordered]@{ v = 2; ok = $false; error = (ConvertTo-ErrorData $_) }
}
$responseJson = ConvertTo-Json -InputObject $response -Depth 6 -Compress
[Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($responseJson))
"""

POWERSHELL_ARGS = ("-NoLogo", "-NoProfile", "-NonInteractive", "-EncodedCommand")


def __virtual__():
    if salt.utils.platform.is_windows() or __opts__.get("iscsi.powershell"):
        return __virtualname__
    if __opts__.get("iscsi.winrm") or __pillar__.get("iscsi.winrm"):
        if HAS_WINRM:
            return __virtualname__
        return (False, "iscsi: iscsi.winrm is configured but pywinrm is not installed")
    return (
        False,
        "iscsi: the Microsoft iSCSI initiator is only on Windows; to manage Windows hosts "
        "from this minion, configure WinRM profiles (iscsi.winrm)",
    )


# --------------------------------------------------------------------------------------
# Wire format
# --------------------------------------------------------------------------------------


def _encode_powershell_command(script: str) -> str:
    """Encode ``script`` for powershell.exe ``-EncodedCommand`` (base64 of UTF-16LE)."""
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


def _encode_request(request: dict) -> str:
    """Encode one request as the single stdin line the main script reads."""
    body = json.dumps({"v": PROTOCOL_VERSION, **request}, ensure_ascii=True)
    return base64.b64encode(body.encode("utf-8")).decode("ascii")


def _decode_response(text: str) -> dict:
    """Decode the main script's answer, raising CommandExecutionError if it is not one."""
    try:
        response = json.loads(base64.b64decode(text.strip(), validate=True).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CommandExecutionError(
            f"iSCSI: PowerShell answered with something that is not a response ({exc}): "
            f"{_preview(text)}"
        ) from exc
    if not isinstance(response, dict) or response.get("v") != PROTOCOL_VERSION:
        raise CommandExecutionError(
            f"iSCSI: PowerShell answered in an unknown protocol version: {_preview(text)}"
        )
    return response


def _preview(text: str, limit: int = 200) -> str:
    text = text.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _describe_windows_error(error: dict) -> str:
    """One line for a Windows error record as the main script reports it."""
    message = str(error.get("message") or "unknown error").strip()
    details = [d for d in (error.get("category"), error.get("error_id")) if d]
    return f"{message} ({', '.join(details)})" if details else message


def _is_not_found(error: dict) -> bool:
    """True for the CDXML 'No MSFT_iSCSISession objects found' error."""
    return str(error.get("error_id", "")).startswith("CmdletizationQuery_NotFound")


# --------------------------------------------------------------------------------------
# Channels: one PowerShell that answers requests
# --------------------------------------------------------------------------------------


def _stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


class ProcessChannel:
    """A powershell.exe process running the bootstrap; one line in, one line out."""

    def __init__(self, executable: str, timeout: float) -> None:
        self.executable = executable
        self.timeout = timeout
        command = [executable, *POWERSHELL_ARGS, _encode_powershell_command(BOOTSTRAP_SCRIPT)]
        creationflags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        try:
            self._proc = subprocess.Popen(  # pylint: disable=consider-using-with
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                creationflags=creationflags,
            )
        except FileNotFoundError as exc:
            raise CommandExecutionError(
                f"iSCSI: PowerShell not found at '{executable}' (set iscsi.powershell)"
            ) from exc
        except OSError as exc:
            raise CommandExecutionError(
                f"iSCSI: cannot start PowerShell '{executable}': {exc.strerror or exc}"
            ) from exc
        # A channel dropped without close() (e.g. a kept one lost on a module refresh) must
        # not leave PowerShell running.
        self._finalizer = weakref.finalize(self, _stop_process, self._proc)
        self._lines: queue.Queue = queue.Queue()
        self._stderr: list[bytes] = []
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self._write(base64.b64encode(MAIN_SCRIPT.encode("utf-8")).decode("ascii"))

    def _read_stdout(self) -> None:
        for raw in self._proc.stdout:
            self._lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
        self._lines.put(None)

    def _read_stderr(self) -> None:
        for raw in self._proc.stderr:
            self._stderr.append(raw)

    def _stderr_text(self) -> str:
        return b"".join(self._stderr).decode("utf-8", "replace").strip()

    def _write(self, line: str) -> None:
        try:
            self._proc.stdin.write(line.encode("ascii") + b"\n")
            self._proc.stdin.flush()
        except OSError as exc:
            raise self._died("PowerShell stopped before it read the request") from exc

    def _died(self, what: str) -> CommandExecutionError:
        try:
            code = self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self._proc.returncode
        for reader in self._readers:
            reader.join(timeout=5)
        stderr = self._stderr_text()
        detail = f"; stderr: {_preview(stderr)}" if stderr else ""
        return CommandExecutionError(f"iSCSI: {what} (exit code {code}){detail}")

    def request(self, request: dict) -> dict:
        """Send one request and wait for its response."""
        self._write(_encode_request(request))
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise CommandExecutionError(
                    f"iSCSI: PowerShell did not answer '{request.get('op')}' within "
                    f"{self.timeout:g} s; the process was stopped"
                ) from None
            if line is None:
                raise self._died(f"PowerShell ended without answering '{request.get('op')}'")
            if not line.strip():
                continue
            if not line.startswith(RESPONSE_MARKER):
                self.kill()
                raise CommandExecutionError(
                    f"iSCSI: PowerShell printed unexpected output: {_preview(line)}"
                )
            return _decode_response(line[len(RESPONSE_MARKER) :])

    def close(self) -> None:
        """End the process; raise if it failed or wrote to stderr."""
        if self._proc.poll() is None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise CommandExecutionError(
                    f"iSCSI: PowerShell did not exit within {self.timeout:g} s; "
                    "the process was stopped"
                ) from None
        for reader in self._readers:
            reader.join(timeout=5)
        stderr = _meaningful_stderr(self._stderr_text())
        if self._proc.returncode != 0 or stderr:
            detail = f": {_preview(stderr)}" if stderr else ""
            raise CommandExecutionError(
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


class InProcessChannel:
    """Salt's in-process PowerShell runspace (pythonnet): no process start at all."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._ps = _win_pwsh.PowerShell.Create()

    def request(self, request: dict) -> dict:
        """Run the main script on one request and return its response."""
        self._ps.Commands.Clear()
        self._ps.Streams.ClearStreams()
        self._ps.AddScript(MAIN_SCRIPT).AddArgument(_encode_request(request))
        handle = self._ps.BeginInvoke()
        if not handle.AsyncWaitHandle.WaitOne(int(self.timeout * 1000)):
            self._ps.Stop()
            raise CommandExecutionError(
                f"iSCSI: PowerShell did not answer '{request.get('op')}' within "
                f"{self.timeout:g} s; the runspace was stopped"
            )
        results = list(self._ps.EndInvoke(handle))
        if not results:
            errors = [str(e) for e in self._ps.Streams.Error]
            raise CommandExecutionError(
                "iSCSI: PowerShell returned no response"
                + (f": {_preview(errors[0])}" if errors else "")
            )
        return _decode_response(str(results[-1]))

    def close(self) -> None:
        self._ps.Dispose()

    def kill(self) -> None:
        self._ps.Stop()
        self._ps.Dispose()

    alive = True


def _meaningful_stderr(text: str) -> str:
    """stderr without PowerShell's CLIXML progress records (not errors); errors kept."""
    text = text.strip()
    if not text.startswith("#< CLIXML"):
        return text
    errors = re.findall(r'<S S="Error">(.*?)</S>', text, re.DOTALL)
    return "".join(errors).replace("_x000D__x000A_", "\n").strip()


# --------------------------------------------------------------------------------------
# Remote computers: the same protocol through a WinRM shell (pywinrm)
# --------------------------------------------------------------------------------------

WINRM_PROFILE_KEYS = {
    "transport",  # ntlm (default), kerberos, credssp, certificate, ssl (Basic over HTTPS), basic
    "username",
    "password",  # or sdb://...
    "scheme",  # https (default) or http
    "port",  # 5986 for https, 5985 for http
    "path",  # /wsman
    "server_cert_validation",  # validate (default) or ignore
    "ca_trust_path",
    "cert_pem",
    "cert_key_pem",
    "message_encryption",  # auto (default), always, never
    "kerberos_delegation",
    "operation_timeout",  # seconds one WS-Management operation may take (default 20)
    "read_timeout",  # seconds the HTTP client waits (default operation_timeout + 10)
    "insecure",  # True allows Basic over plain HTTP (tests only); logs a warning
}
DEFAULT_THROTTLE_LIMIT = 32


class RemoteComputer:
    """A Windows computer reached over WinRM, with its resolved connection profile."""

    def __init__(self, name: str, profile_name: str, settings: dict) -> None:
        self.name = name
        self.profile_name = profile_name
        self.settings = settings

    def __repr__(self) -> str:  # never shows the settings: they hold the password
        return f"RemoteComputer({self.name!r}, profile={self.profile_name!r})"


def _winrm_profile(computer: str, profile: str | None) -> RemoteComputer:
    """Resolve the connection profile for ``computer`` from config/pillar."""
    profiles = _config("winrm", {}) or {}
    if not isinstance(profiles, dict):
        raise SaltInvocationError("iscsi.winrm must be a mapping of profile names to settings")
    if profile is None:
        hosts = _config("winrm_hosts", {}) or {}
        if not isinstance(hosts, dict):
            raise SaltInvocationError("iscsi.winrm_hosts must map computer globs to profile names")
        profile = next(
            (name for glob, name in hosts.items() if _glob(str(glob)).fullmatch(computer)),
            "default",
        )
    settings = profiles.get(profile)
    if not isinstance(settings, dict):
        raise SaltInvocationError(
            f"no WinRM profile '{profile}' for {computer} (configure iscsi.winrm:{profile})"
        )
    _check_profile(profile, settings)
    return RemoteComputer(computer, profile, settings)


def _check_profile(name: str, cfg: dict) -> None:
    """Refuse unknown or insecure-without-consent settings before connecting anywhere."""
    unknown = set(cfg) - WINRM_PROFILE_KEYS
    if unknown:
        raise SaltInvocationError(
            f"WinRM profile '{name}' has unknown settings: {', '.join(sorted(unknown))}"
        )
    scheme = cfg.get("scheme", "https")
    if scheme not in ("https", "http"):
        raise SaltInvocationError(f"WinRM profile '{name}': scheme must be https or http")
    basic = cfg.get("transport") in ("basic", "plaintext")
    if basic and scheme == "http" and not cfg.get("insecure"):
        raise SaltInvocationError(
            f"WinRM profile '{name}': Basic authentication over plain HTTP sends the password "
            "readable; use https (transport: ssl) or ntlm/kerberos, or set insecure: True "
            "for a test lab"
        )
    if cfg.get("server_cert_validation", "validate") not in ("validate", "ignore"):
        raise SaltInvocationError(
            f"WinRM profile '{name}': server_cert_validation must be validate or ignore"
        )


def _winrm_protocol(remote: RemoteComputer, timeout: float):
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
            remote.name,
        )
    password = cfg.get("password")
    if isinstance(password, str) and password.startswith("sdb://"):
        password = __salt__["sdb.get"](password)
    operation_timeout = int(cfg.get("operation_timeout", 20))
    read_timeout = int(cfg.get("read_timeout", operation_timeout + 10))
    host = f"[{remote.name}]" if ":" in remote.name else remote.name
    port = cfg.get("port", 5986 if scheme == "https" else 5985)
    endpoint = f"{scheme}://{host}:{port}{cfg.get('path', '/wsman')}"
    options = {
        "transport": transport,
        "username": cfg.get("username"),
        "password": password,
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
    return winrm.protocol.Protocol(endpoint, **options)


def _winrm_error(remote: RemoteComputer, exc: Exception) -> CommandExecutionError:
    """A clear, secret-free message for what went wrong talking to ``remote``."""
    who = f"{remote.name} (WinRM profile '{remote.profile_name}')"
    if isinstance(exc, winrm.exceptions.InvalidCredentialsError):
        what = "refused the credentials"
    elif isinstance(exc, requests.exceptions.SSLError):
        what = "failed TLS certificate validation"
    elif isinstance(exc, requests.exceptions.ConnectionError):
        what = "cannot be reached (connection failed)"
    elif isinstance(exc, requests.exceptions.Timeout):
        what = "did not answer in time"
    elif isinstance(exc, winrm.exceptions.WinRMTransportError):
        what = f"answered HTTP {exc.code}"
    elif isinstance(exc, winrm.exceptions.WSManFaultError):
        what = f"reported a WS-Management fault: {exc.reason or exc.code}"
    else:
        what = f"failed: {type(exc).__name__}"
    return CommandExecutionError(f"iSCSI: {who} {what}")


class WinRMChannel:
    """The bootstrap run by powershell.exe in a WinRM shell; requests on its stdin.

    The command line holds only the short fixed bootstrap (far below cmd.exe's 8191
    characters); the main script and the requests travel on stdin, so their length does
    not matter.
    """

    def __init__(self, remote: RemoteComputer, timeout: float) -> None:
        self.remote = remote
        self.timeout = timeout
        self._shell = self._command = None
        self._buffer = b""
        self._stderr = b""
        self._exit_code: int | None = None
        try:
            self._protocol = _winrm_protocol(remote, timeout)
            self._shell = self._protocol.open_shell(codepage=65001, noprofile=True)
            self._command = self._protocol.run_command(
                self._shell,
                "powershell.exe",
                [*POWERSHELL_ARGS, _encode_powershell_command(BOOTSTRAP_SCRIPT)],
                console_mode_stdin=False,
            )
            self._send(base64.b64encode(MAIN_SCRIPT.encode("utf-8")).decode("ascii"))
        except SaltInvocationError:
            raise
        except Exception as exc:  # pylint: disable=broad-except
            self.kill()
            raise _winrm_error(remote, exc) from None

    def _send(self, line: str, end: bool = False) -> None:
        self._protocol.send_command_input(
            self._shell, self._command, (line + "\n").encode("ascii") if line else b"", end
        )

    def _receive(self, deadline: float) -> bool:
        """Read what output there is; False once the command has finished."""
        while True:
            try:
                stdout, stderr, code, done = self._protocol.get_command_output_raw(
                    self._shell, self._command
                )
            except winrm.exceptions.WinRMOperationTimeoutError:
                if time.monotonic() >= deadline:
                    raise
                continue
            self._buffer += stdout
            self._stderr += stderr
            if done:
                self._exit_code = code
            return not done

    def request(self, request: dict) -> dict:
        """Send one request and wait for its response line."""
        deadline = time.monotonic() + self.timeout
        try:
            self._send(_encode_request(request))
            while True:
                while b"\n" in self._buffer:
                    raw, self._buffer = self._buffer.split(b"\n", 1)
                    line = raw.decode("utf-8", "replace").rstrip("\r")
                    if not line.strip():
                        continue
                    if not line.startswith(RESPONSE_MARKER):
                        raise CommandExecutionError(
                            f"iSCSI: PowerShell on {self.remote.name} printed unexpected "
                            f"output: {_preview(line)}"
                        )
                    return _decode_response(line[len(RESPONSE_MARKER) :])
                if self._exit_code is not None or not self._receive(deadline):
                    stderr = _meaningful_stderr(self._stderr.decode("utf-8", "replace"))
                    raise CommandExecutionError(
                        f"iSCSI: PowerShell on {self.remote.name} ended without answering "
                        f"'{request.get('op')}' (exit code {self._exit_code})"
                        + (f"; stderr: {_preview(stderr)}" if stderr else "")
                    )
                if time.monotonic() >= deadline:
                    raise winrm.exceptions.WinRMOperationTimeoutError()
        except CommandExecutionError:
            self.kill()
            raise
        except winrm.exceptions.WinRMOperationTimeoutError:
            self.kill()
            raise CommandExecutionError(
                f"iSCSI: PowerShell on {self.remote.name} did not answer '{request.get('op')}' "
                f"within {self.timeout:g} s; the remote command was stopped"
            ) from None
        except Exception as exc:  # pylint: disable=broad-except
            self.kill()
            raise _winrm_error(self.remote, exc) from None

    def close(self) -> None:
        """End stdin, wait for the remote PowerShell to exit; raise if it failed."""
        deadline = time.monotonic() + self.timeout
        try:
            self._send("", end=True)
            while self._exit_code is None and self._receive(deadline):
                if time.monotonic() >= deadline:
                    raise winrm.exceptions.WinRMOperationTimeoutError()
        except winrm.exceptions.WinRMOperationTimeoutError:
            self.kill()
            raise CommandExecutionError(
                f"iSCSI: PowerShell on {self.remote.name} did not exit within {self.timeout:g} s"
            ) from None
        except Exception as exc:  # pylint: disable=broad-except
            self.kill()
            raise _winrm_error(self.remote, exc) from None
        self.kill()
        stderr = _meaningful_stderr(self._stderr.decode("utf-8", "replace"))
        if self._exit_code != 0 or stderr:
            detail = f": {_preview(stderr)}" if stderr else ""
            raise CommandExecutionError(
                f"iSCSI: PowerShell on {self.remote.name} exited with code {self._exit_code}{detail}"
            )

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


def _config(key: str, default: Any = None) -> Any:
    return __salt__["config.get"](f"iscsi.{key}", default)


def _timeout() -> float:
    value = _config("timeout", DEFAULT_TIMEOUT)
    try:
        timeout = float(value)
    except (TypeError, ValueError):
        timeout = -1
    if timeout <= 0:
        raise SaltInvocationError(f"iscsi.timeout must be a positive number, not {value!r}")
    return timeout


def _open_channel(
    timeout: float | None = None, remote: RemoteComputer | None = None
) -> ProcessChannel | InProcessChannel | WinRMChannel:
    """The PowerShell this minion is configured to use, or one on a remote computer."""
    timeout = timeout or _timeout()
    if remote is not None:
        if not HAS_WINRM:
            raise CommandExecutionError(
                "iSCSI: remote computers need pywinrm (pip install pywinrm)"
            )
        return WinRMChannel(remote, timeout)
    executable = _config("powershell")
    if not executable and HAS_INPROCESS_PWSH:
        return InProcessChannel(timeout)
    return ProcessChannel(executable or DEFAULT_POWERSHELL, timeout)


class HostCall:
    """One call against the host: one channel, a journal of what was done.

    Any error raised inside or while closing names what had already been changed, so a
    failure half-way through is never silent. With ``keep_open`` the channel survives a
    successful call (``.channel``) so that the next call can reuse it; on error it is
    always stopped.
    """

    def __init__(
        self,
        channel: ProcessChannel | InProcessChannel | None = None,
        keep_open: bool = False,
        timeout: float | None = None,
        remote: RemoteComputer | None = None,
    ) -> None:
        self.done: list[str] = []
        self.channel = channel
        self._keep_open = keep_open
        self._timeout = timeout
        self._remote = remote

    def __enter__(self) -> HostCall:
        if self.channel is None or not self.channel.alive:
            self.channel = _open_channel(self._timeout, self._remote)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc is not None:
                self.channel.kill()
            elif not self._keep_open:
                self.channel.close()
        except CommandExecutionError as err:
            exc = err
        if isinstance(exc, CommandExecutionError) and self.done:
            raise CommandExecutionError(f"{exc}; already done: {', '.join(self.done)}") from exc
        if exc is not None and exc_type is None:
            raise exc

    def request(self, op: str, **fields: Any) -> dict:
        response = self.channel.request({"op": op, **fields})
        if not response.get("ok"):
            raise CommandExecutionError(
                f"iSCSI: '{op}' failed: {_describe_windows_error(response.get('error') or {})}"
            )
        return response

    def sessions(self, connections: bool = False) -> list[dict]:
        return self.request("get_sessions", connections=connections)["sessions"]

    def per_session(self, op: str, ids: list[str], **fields: Any) -> dict[str, dict | None]:
        """Run a per-session op; map each id to its Windows error, or None on success."""
        if not ids:
            return {}
        results = self.request(op, ids=ids, **fields)["results"]
        outcome = {
            item["id"]: (None if item.get("ok") else item.get("error") or {}) for item in results
        }
        self.done.extend(f"{op} {sid}" for sid, error in outcome.items() if error is None)
        return outcome


# --------------------------------------------------------------------------------------
# Selecting sessions
# --------------------------------------------------------------------------------------


def _as_list(value: Any, name: str) -> list[str] | None:
    """A CLI/state value as a list of non-empty strings ('a,b' splits), or None."""
    if value is None:
        return None
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise SaltInvocationError(
            f"{name} must be a string or a list of strings, not {type(value).__name__}"
        )
    result = []
    for item in items:
        if not isinstance(item, str):
            raise SaltInvocationError(f"{name} must hold strings, not {type(item).__name__}")
        if not item.strip():
            raise SaltInvocationError(f"{name} holds an empty value")
        result.append(item.strip())
    if not result:
        raise SaltInvocationError(f"{name} is empty")
    return result


def _ids_from_sessions(sessions: Any) -> list[str]:
    if isinstance(sessions, dict):
        sessions = [sessions]
    if not isinstance(sessions, (list, tuple)) or not sessions:
        raise SaltInvocationError("sessions must be a non-empty list of session dicts")
    ids = []
    for session in sessions:
        sid = session.get("SessionIdentifier") if isinstance(session, dict) else None
        if not isinstance(sid, str) or not sid.strip():
            raise SaltInvocationError(
                "each item of sessions needs a SessionIdentifier (as iscsi.get_sessions returns)"
            )
        ids.append(sid.strip())
    return ids


def _portals(session: dict) -> list[str]:
    """'address' and 'address:port' forms of each connection's target portal."""
    forms = []
    for connection in session.get("Connections") or []:
        address = str(connection.get("TargetAddress") or "")
        if ":" in address:
            address = f"[{address}]"
        forms += [address, f"{address}:{connection.get('TargetPortNumber')}"]
    return forms


@functools.lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern:
    """Compile a glob where only ``*`` and ``?`` are special (``[`` is literal, for IPv6).

    Case-insensitive: IQNs are (RFC 3722 folds them to lower case).
    """
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _matches_any(values: Iterable[str], patterns: list[str]) -> bool:
    return any(_glob(pattern).fullmatch(value) for value in values for pattern in patterns)


class Selector:
    """What a call selects: ids (exact) and/or globs on target, initiator and portal."""

    def __init__(
        self,
        session_identifier: Any = None,
        sessions: Any = None,
        target_node_address: Any = None,
        initiator_node_address: Any = None,
        target_portal: Any = None,
        is_persistent: Any = None,
        exclude_target_node_address: Any = None,
    ) -> None:
        ids = _as_list(session_identifier, "session_identifier")
        if sessions is not None:
            ids = (ids or []) + _ids_from_sessions(sessions)
        self.ids = ids
        self.targets = _as_list(target_node_address, "target_node_address")
        self.initiators = _as_list(initiator_node_address, "initiator_node_address")
        self.portals = _as_list(target_portal, "target_portal")
        self.excluded_targets = _as_list(exclude_target_node_address, "exclude_target_node_address")
        if is_persistent is not None and not isinstance(is_persistent, bool):
            raise SaltInvocationError(f"is_persistent must be True or False, not {is_persistent!r}")
        self.is_persistent = is_persistent

    @property
    def empty(self) -> bool:
        return not (self.ids or self.targets or self.initiators or self.portals)

    @property
    def needs_connections(self) -> bool:
        return bool(self.portals)

    def __call__(self, session: dict) -> bool:
        sid = str(session.get("SessionIdentifier", "")).lower()
        return (
            (self.ids is None or sid in {i.lower() for i in self.ids})
            and (
                not self.targets
                or _matches_any([session.get("TargetNodeAddress") or ""], self.targets)
            )
            and (
                not self.initiators
                or _matches_any([session.get("InitiatorNodeAddress") or ""], self.initiators)
            )
            and (not self.portals or _matches_any(_portals(session), self.portals))
            and not (
                self.excluded_targets
                and _matches_any([session.get("TargetNodeAddress") or ""], self.excluded_targets)
            )
            and (
                self.is_persistent is None
                or bool(session.get("IsPersistent")) == self.is_persistent
            )
        )

    def missing_ids(self, sessions: list[dict]) -> list[str]:
        """Requested ids that no session on the host has."""
        present = {str(s.get("SessionIdentifier", "")).lower() for s in sessions}
        return [i for i in self.ids or [] if i.lower() not in present]


def _require_selection(select: Selector) -> None:
    if select.empty:
        raise SaltInvocationError(
            "no session selected: give session_identifier, sessions, target_node_address, "
            "initiator_node_address or target_portal"
        )


def _test_mode(test: Any) -> bool:
    return bool(__opts__.get("test", False) if test is None else test)


def _resolve_secret(value: str | None) -> str | None:
    """A CHAP secret given as an sdb:// URI is looked up, so it need not be on the CLI."""
    if isinstance(value, str) and value.startswith("sdb://"):
        resolved = __salt__["sdb.get"](value)
        if not resolved or resolved == value:
            raise SaltInvocationError("chap_secret: the sdb:// URI did not resolve")
        return str(resolved)
    return value


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "********") if secret else text


def _computers(computer_name: Any, profile: Any) -> list[RemoteComputer] | None:
    """The remote computers named (profiles resolved up front), or None for this host."""
    names = _as_list(computer_name, "computer_name")
    if names is None:
        return None
    if profile is not None and not isinstance(profile, str):
        raise SaltInvocationError("profile must be the name of a WinRM profile")
    return [_winrm_profile(name, profile) for name in dict.fromkeys(names)]


def _throttle(throttle_limit: Any, count: int) -> int:
    if (
        isinstance(throttle_limit, bool)
        or not isinstance(throttle_limit, int)
        or throttle_limit < 0
    ):
        raise SaltInvocationError(
            f"throttle_limit must be a whole number >= 0, not {throttle_limit!r}"
        )
    return max(1, min(throttle_limit or DEFAULT_THROTTLE_LIMIT, count))


def _on_each(
    computers: list[RemoteComputer] | None,
    throttle_limit: Any,
    work: Callable[[RemoteComputer | None], Any],
) -> Any:
    """Run ``work`` here, or on each computer with at most ``throttle_limit`` at once.

    One computer's failure (down, credentials refused, timeout) is reported under its name
    as ``{"error": ...}`` and sets the exit code; the others go on.
    """
    if computers is None:
        return work(None)
    workers = _throttle(throttle_limit, len(computers))
    results: dict[str, Any] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        # Salt's loader dunders (__salt__, __context__) live in a contextvar: give each
        # worker a copy of this thread's context.
        futures = {
            pool.submit(contextvars.copy_context().run, work, computer): computer
            for computer in computers
        }
        for future in concurrent.futures.as_completed(futures):
            name = futures[future].name
            try:
                results[name] = future.result()
            except (CommandExecutionError, SaltInvocationError) as exc:
                log.error("iSCSI: %s", exc)
                results[name] = {"error": str(exc)}
                __context__["retcode"] = 1
    return {computer.name: results[computer.name] for computer in computers}


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------


def get_sessions(
    session_identifier=None,
    target_node_address=None,
    initiator_node_address=None,
    target_portal=None,
    exclude_target_node_address=None,
    is_persistent=None,
    connections=False,
    computer_name=None,
    profile=None,
    throttle_limit=0,
):
    """
    List iSCSI sessions as ``Get-IscsiSession`` reports them.

    Each session is a dict with the cmdlet's own field names (SessionIdentifier,
    TargetNodeAddress, InitiatorNodeAddress, IsPersistent, IsConnected, ...).

    session_identifier
        Only these sessions: one id, a list, or a comma-separated string.

    target_node_address
        Only sessions whose target IQN matches this glob (or any glob of a list): ``*``
        matches any run of characters, ``?`` one character, everything else itself.
        Matching is case-insensitive, as IQNs are. Regular expressions are not supported.

    initiator_node_address
        Likewise for the initiator IQN.

    target_portal
        Only sessions with a connection to a matching portal, written ``address`` or
        ``address:port`` (IPv6 as ``[address]:port``); globs allowed.

    exclude_target_node_address
        Leave out sessions whose target IQN matches this glob (or any of a list): the
        exceptions of a policy.

    is_persistent
        ``True`` or ``False`` to keep only persistent or non-persistent sessions.

    connections
        Add each session's connections (``Connections``: target and initiator address and
        port). Costs one more query per session; implied by ``target_portal``.

    computer_name
        Act on these remote Windows computers over WinRM instead of this minion
        (``-CimSession``): one name, a list, or ``a,b``. Returns a dict keyed by computer;
        a computer that fails is reported as ``{"error": ...}`` and the others go on.

    profile
        The WinRM connection profile (``iscsi.winrm:<profile>`` in config or pillar);
        default: the first ``iscsi.winrm_hosts`` glob matching the computer, else
        ``default``. Credentials never go on the command line.

    throttle_limit
        At most this many computers at once (``-ThrottleLimit``); 0 means 32.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.get_sessions
        salt '*' iscsi.get_sessions target_node_address='iqn.1991-05.com.contoso:*' is_persistent=True
        salt '*' iscsi.get_sessions session_identifier=fffffa800d008430-4000013700000001
        salt linux-mgmt iscsi.get_sessions computer_name=win01,win02 is_persistent=True
    """
    select = Selector(
        session_identifier=session_identifier,
        target_node_address=target_node_address,
        initiator_node_address=initiator_node_address,
        target_portal=target_portal,
        is_persistent=is_persistent,
        exclude_target_node_address=exclude_target_node_address,
    )

    def work(remote: RemoteComputer | None) -> list[dict]:
        with HostCall(remote=remote) as host:
            sessions = host.sessions(connections=bool(connections) or select.needs_connections)
        return [s for s in sessions if select(s)]

    return _on_each(_computers(computer_name, profile), throttle_limit, work)


def _change_persistence(
    *,
    op: str,
    select: Selector,
    want_persistent: bool,
    force: bool,
    done_status: str,
    skip_status: str,
    test: bool,
    passthru: bool,
    fields: dict | None = None,
    secret: str | None = None,
    remote: RemoteComputer | None = None,
) -> dict | list:
    """Shared flow of unregister and register: select, act, verify, report per session."""
    report: dict[str, dict] = {}
    with HostCall(remote=remote) as host:
        before = host.sessions(connections=select.needs_connections)
        for sid in select.missing_ids(before):
            report[sid] = {"status": "not_found"}
        chosen = [s for s in before if select(s)]
        todo = []
        for session in chosen:
            sid = session["SessionIdentifier"]
            entry = report[sid] = {"TargetNodeAddress": session.get("TargetNodeAddress")}
            if bool(session.get("IsPersistent")) == want_persistent and not force:
                entry["status"] = skip_status
            elif test:
                entry["status"] = f"would_{op}"
            else:
                todo.append(sid)
        errors = host.per_session(op, todo, **(fields or {}))
        after = {s["SessionIdentifier"]: s for s in host.sessions()} if todo else {}
        # Windows may remove one persistent login of several (MPIO) per Unregister: repeat
        # for sessions still persistent, up to MAX_UNREGISTER_PASSES logins per session.
        if op == "unregister":
            for _ in range(MAX_UNREGISTER_PASSES - 1):
                again = [
                    sid
                    for sid in todo
                    if errors.get(sid) is None and after.get(sid, {}).get("IsPersistent")
                ]
                if not again:
                    break
                errors.update(host.per_session(op, again))
                after = {s["SessionIdentifier"]: s for s in host.sessions()}
    for sid in todo:
        entry = report[sid]
        error = errors.get(sid)
        now = after.get(sid)
        if error is not None:
            entry["status"] = "not_found" if _is_not_found(error) else "failed"
            if entry["status"] == "failed":
                entry["error"] = _scrub(_describe_windows_error(error), secret)
        elif now is None:
            entry.update(status="failed", error="the session disappeared during the change")
        elif bool(now.get("IsPersistent")) == want_persistent:
            entry["status"] = done_status
        else:
            entry.update(status="failed", error=f"IsPersistent is still {now.get('IsPersistent')}")
    failed = {sid: e for sid, e in report.items() if e["status"] == "failed"}
    if failed:
        __context__["retcode"] = 1
    if not passthru:
        return report
    if failed:
        raise CommandExecutionError(
            "iSCSI: "
            + "; ".join(f"{sid}: {e['error']}" for sid, e in failed.items())
            + f"; {done_status}: "
            + (", ".join(s for s, e in report.items() if e["status"] == done_status) or "none")
        )
    return [after[sid] for sid in todo if sid in after]


def unregister_session(
    session_identifier=None,
    sessions=None,
    target_node_address=None,
    initiator_node_address=None,
    target_portal=None,
    exclude_target_node_address=None,
    passthru=False,
    test=None,
    computer_name=None,
    profile=None,
    throttle_limit=0,
):
    """
    Remove iSCSI sessions from being persistent, so they do not reconnect at restart
    (``Unregister-IscsiSession``). The sessions stay connected.

    Select sessions with ``session_identifier`` (``-SessionIdentifier``: one id, a list, or a
    comma-separated string), ``sessions`` (``-InputObject``: session dicts as
    ``iscsi.get_sessions`` returns them), and/or the globs ``target_node_address``,
    ``initiator_node_address``, ``target_portal`` and ``exclude_target_node_address`` (see
    ``iscsi.get_sessions``). Given together, they narrow each other. At least one of the
    first five is required.

    passthru
        Return the changed sessions as they are afterwards (``-PassThru``) instead of the
        per-session report; raises if any session failed.

    test
        Report what would change and change nothing (defaults to the minion's ``test``).

    computer_name, profile, throttle_limit
        Remote Windows computers over WinRM (``-CimSession``, ``-ThrottleLimit``), as for
        ``iscsi.get_sessions``.

    Returns a dict keyed by session id, each with ``status``: ``unregistered``,
    ``not_persistent`` (nothing to do), ``not_found``, ``would_unregister`` (test) or
    ``failed`` with ``error``, the Windows error. Any failure sets the exit code to 1.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.unregister_session session_identifier=fffffa800d008430-4000013700000001
        salt '*' iscsi.unregister_session target_node_address='iqn.1991-05.com.contoso:*'
        salt '*' iscsi.unregister_session target_node_address='*:backup-*' test=True
        salt linux-mgmt iscsi.unregister_session computer_name=win01,win02 target_node_address='*:backup-*' throttle_limit=10
    """
    select = Selector(
        session_identifier=session_identifier,
        sessions=sessions,
        target_node_address=target_node_address,
        initiator_node_address=initiator_node_address,
        target_portal=target_portal,
        exclude_target_node_address=exclude_target_node_address,
    )
    _require_selection(select)
    test = _test_mode(test)
    return _on_each(
        _computers(computer_name, profile),
        throttle_limit,
        lambda remote: _change_persistence(
            op="unregister",
            select=select,
            want_persistent=False,
            force=False,
            done_status="unregistered",
            skip_status="not_persistent",
            test=test,
            passthru=passthru,
            remote=remote,
        ),
    )


def register_session(
    session_identifier=None,
    sessions=None,
    target_node_address=None,
    initiator_node_address=None,
    target_portal=None,
    exclude_target_node_address=None,
    is_multipath_enabled=False,
    chap_username=None,
    chap_secret=None,
    force=False,
    passthru=False,
    test=None,
    computer_name=None,
    profile=None,
    throttle_limit=0,
):
    """
    Make iSCSI sessions persistent, so they reconnect at restart
    (``Register-IscsiSession``), the inverse of ``iscsi.unregister_session``.

    Sessions are selected as for ``iscsi.unregister_session``.

    is_multipath_enabled
        ``-IsMultipathEnabled``: reconnect with MPIO.

    chap_username, chap_secret
        ``-ChapUsername`` / ``-ChapSecret``. Arguments given on the command line are kept
        in the job cache: pass the secret as an ``sdb://`` URI, or from a state with
        pillar data. The secret never appears in a log, a return or an error.

    force
        Register a session that is already persistent again. Each registration adds a
        persistent login that reconnects at restart (what MPIO set-ups do on purpose).

    passthru, test, computer_name, profile, throttle_limit
        As for ``iscsi.unregister_session``.

    Returns a dict keyed by session id, each with ``status``: ``registered``,
    ``already_persistent``, ``not_found``, ``would_register`` (test) or ``failed`` with
    ``error``.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.register_session session_identifier=fffffa800d008430-4000013700000001
        salt '*' iscsi.register_session target_node_address='iqn.*:db-*' is_multipath_enabled=True
        salt '*' iscsi.register_session session_identifier=... chap_username=host1 chap_secret=sdb://vault/iscsi/chap
    """
    select = Selector(
        session_identifier=session_identifier,
        sessions=sessions,
        target_node_address=target_node_address,
        initiator_node_address=initiator_node_address,
        target_portal=target_portal,
        exclude_target_node_address=exclude_target_node_address,
    )
    _require_selection(select)
    secret = _resolve_secret(chap_secret)
    if chap_username is not None and not isinstance(chap_username, str):
        raise SaltInvocationError("chap_username must be a string")
    if secret is not None and not isinstance(secret, str):
        raise SaltInvocationError("chap_secret must be a string")
    # The initiator accepts CHAP secrets of 12 to 16 bytes; checking here keeps the value
    # out of PowerShell's parameter-validation message.
    if secret is not None and not 12 <= len(secret.encode("utf-8")) <= 16:
        raise SaltInvocationError("chap_secret must be 12 to 16 bytes long")
    fields = {
        "is_multipath_enabled": bool(is_multipath_enabled),
        "chap_username": chap_username,
        "chap_secret": secret,
    }
    test = _test_mode(test)
    return _on_each(
        _computers(computer_name, profile),
        throttle_limit,
        lambda remote: _change_persistence(
            op="register",
            select=select,
            want_persistent=True,
            force=bool(force),
            done_status="registered",
            skip_status="already_persistent",
            test=test,
            passthru=passthru,
            fields=fields,
            secret=secret,
            remote=remote,
        ),
    )


def watch(
    previous_digest=None,
    target_node_address=None,
    exclude_target_node_address=None,
    keep_open=False,
    timeout=None,
):
    """
    Tell cheaply whether persistence changed since ``previous_digest``.

    Asks Windows for a digest of the persistent sessions' ids and of the persistent-login
    list (one small answer); only when
    it differs from ``previous_digest`` are the persistent sessions read and returned. The
    ``iscsi`` beacon calls this every tick with ``keep_open=True``, so that one PowerShell
    (process or runspace) serves all ticks instead of one process per tick.

    previous_digest
        The ``digest`` of the previous call; ``None`` on a first call.

    target_node_address, exclude_target_node_address
        Globs (as for ``iscsi.get_sessions``) choosing which persistent sessions are listed
        in ``selected`` (all of them when not given).

    keep_open
        Keep the PowerShell running for the next call from this process.

    timeout
        Seconds to wait for PowerShell (default: ``iscsi.timeout``).

    Returns ``{"digest", "count", "changed"}``, plus, when ``changed``, ``"sessions"``
    (every session, as ``iscsi.get_sessions``), ``"selected"`` (ids of the persistent
    sessions the globs match) and ``"logins"`` (every persistent login, as
    ``iscsi.get_persistent_logins``, each with ``selected``).

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.watch
        salt '*' iscsi.watch previous_digest=5e0c...9a1f
    """
    select = Selector(
        target_node_address=target_node_address,
        exclude_target_node_address=exclude_target_node_address,
    )
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise SaltInvocationError(f"timeout must be a positive number, not {timeout!r}")
    kept = __context__.pop(WATCH_CHANNEL_KEY, None) if keep_open else None
    with HostCall(channel=kept, keep_open=keep_open, timeout=timeout) as host:
        state = host.request("digest")
        result = {
            "digest": state["digest"],
            "count": state["count"],
            "changed": state["digest"] != previous_digest,
        }
        if result["changed"]:
            sessions = host.sessions()
            logins = host.request("get_persistent_logins")["logins"]
            result["sessions"] = sessions
            result["selected"] = [
                s["SessionIdentifier"] for s in sessions if s.get("IsPersistent") and select(s)
            ]
            result["logins"] = [
                {**login, "selected": select(_login_as_session(login))} for login in logins
            ]
    if keep_open:
        __context__[WATCH_CHANNEL_KEY] = host.channel
    return result


# --------------------------------------------------------------------------------------
# The persistent-login list itself (targets with no live session included)
# --------------------------------------------------------------------------------------

LOGIN_KEY = (
    "TargetName",
    "InitiatorInstance",
    "InitiatorPortNumber",
    "TargetPortalAddress",
    "TargetPortalPort",
)


def _login_as_session(login: dict) -> dict:
    """A persistent login seen through the session selector's eyes (target and portal)."""
    return {
        "TargetNodeAddress": login.get("TargetName"),
        "Connections": [
            {
                "TargetAddress": login.get("TargetPortalAddress"),
                "TargetPortNumber": login.get("TargetPortalPort"),
            }
        ],
    }


def _login_key(login: dict) -> tuple:
    return tuple(str(login.get(field)).lower() for field in LOGIN_KEY)


def _login_selector(target_node_address, target_portal, exclude_target_node_address) -> Selector:
    return Selector(
        target_node_address=target_node_address,
        target_portal=target_portal,
        exclude_target_node_address=exclude_target_node_address,
    )


def get_persistent_logins(
    target_node_address=None,
    target_portal=None,
    exclude_target_node_address=None,
    computer_name=None,
    profile=None,
    throttle_limit=0,
):
    """
    List the initiator's persistent logins: what reconnects at boot, one entry per
    registration, whether or not the target has a live session today
    (WMI ``MSiSCSIInitiator_PersistentLoginClass``).

    Each entry: ``TargetName``, ``InitiatorInstance``, ``InitiatorPortNumber``
    (4294967295 = any port), ``TargetPortalAddress``, ``TargetPortalPort``.

    target_node_address, target_portal, exclude_target_node_address
        Globs as for ``iscsi.get_sessions``.

    computer_name, profile, throttle_limit
        As for ``iscsi.get_sessions``.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.get_persistent_logins
        salt '*' iscsi.get_persistent_logins target_node_address='*:backup-*'
    """
    select = _login_selector(target_node_address, target_portal, exclude_target_node_address)

    def work(remote: RemoteComputer | None) -> list[dict]:
        with HostCall(remote=remote) as host:
            logins = host.request("get_persistent_logins")["logins"]
        return [login for login in logins if select(_login_as_session(login))]

    return _on_each(_computers(computer_name, profile), throttle_limit, work)


def _remove_logins(host: HostCall, select: Selector, test: bool) -> list[dict]:
    """Remove every persistent login ``select`` matches; report one entry per login key."""
    current = host.request("get_persistent_logins")["logins"]
    chosen: dict[tuple, dict] = {}
    for login in current:
        if select(_login_as_session(login)):
            entry = chosen.setdefault(_login_key(login), {**login, "entries": 0})
            entry["entries"] += 1
    if test:
        return [{**entry, "status": "would_remove"} for entry in chosen.values()]
    errors: dict[tuple, dict] = {}
    # iscsicli may remove one matching entry or all of them (MPIO registers several):
    # repeat for keys still listed, at most once per entry found.
    for _ in range(max((e["entries"] for e in chosen.values()), default=0)):
        todo = [
            login
            for key, login in {_login_key(lg): lg for lg in current}.items()
            if key in chosen and key not in errors
        ]
        if not todo:
            break
        results = host.request("remove_persistent_logins", logins=todo)["results"]
        if len(results) != len(todo):
            raise CommandExecutionError(
                f"iSCSI: PowerShell answered {len(results)} results for {len(todo)} logins"
            )
        for login, item in zip(todo, results, strict=True):
            if item.get("ok"):
                host.done.append(f"remove persistent login {login['TargetName']}")
            else:
                errors[_login_key(login)] = item.get("error") or {}
        current = host.request("get_persistent_logins")["logins"]
    left = {_login_key(lg) for lg in current}
    report = []
    for key, entry in chosen.items():
        if key in errors:
            entry.update(status="failed", error=_describe_windows_error(errors[key]))
        elif key in left:
            entry.update(status="failed", error="the persistent login is still listed")
        else:
            entry["status"] = "removed"
        report.append(entry)
    return report


def remove_persistent_login(
    target_node_address=None,
    target_portal=None,
    exclude_target_node_address=None,
    test=None,
    computer_name=None,
    profile=None,
    throttle_limit=0,
):
    """
    Remove persistent logins from the initiator's list, so the targets do not reconnect at
    boot, including targets that have no live session today and that session-based cmdlets
    therefore cannot see (``iscsicli RemovePersistentTarget``). Live sessions stay connected.

    target_node_address
        Globs on the target IQN (required).

    target_portal, exclude_target_node_address
        Narrow the selection, as for ``iscsi.get_sessions``.

    test
        Report what would be removed and remove nothing.

    computer_name, profile, throttle_limit
        As for ``iscsi.unregister_session``.

    Returns one entry per distinct login (``entries`` counts duplicates, e.g. MPIO
    registrations), each with ``status``: ``removed``, ``would_remove`` or ``failed`` with
    ``error``. Any failure sets the exit code to 1.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.remove_persistent_login target_node_address='iqn.1991-05.com.contoso:backup-*'
        salt '*' iscsi.remove_persistent_login target_node_address='*' target_portal='10.0.9.*' test=True
    """
    if target_node_address is None:
        raise SaltInvocationError("target_node_address is required (a glob on the target IQN)")
    select = _login_selector(target_node_address, target_portal, exclude_target_node_address)
    test = _test_mode(test)

    def work(remote: RemoteComputer | None) -> list[dict]:
        with HostCall(remote=remote) as host:
            report = _remove_logins(host, select, test)
        if any(entry["status"] == "failed" for entry in report):
            __context__["retcode"] = 1
        return report

    return _on_each(_computers(computer_name, profile), throttle_limit, work)
