"""Channels: one PowerShell that answers requests of the fixed main script.

Every channel has the same small interface (``Channel``): ``request(dict) -> dict``,
``close()`` (ends it, raising if it failed), ``kill()`` (ends it at once) and ``alive``.

- ``process``: a local powershell.exe process (the default; it can always be killed);
- ``runspace``: Salt's in-process runspace (opt-in with ``iscsi.powershell: runspace``);
- ``winrm``: powershell.exe in a WinRM shell on a remote computer.
"""

from __future__ import annotations

import ntpath
import os
from dataclasses import dataclass
from typing import Protocol

from saltext_win_iscsi.computers import RemoteComputer
from saltext_win_iscsi.config import DEFAULT_TIMEOUT
from saltext_win_iscsi.errors import IscsiInputError
from saltext_win_iscsi.windows.channels.process import ProcessChannel
from saltext_win_iscsi.windows.channels.runspace import RunspaceChannel
from saltext_win_iscsi.windows.channels.winrm import HAS_WINRM, WinRMChannel

__all__ = [
    "HAS_WINRM",
    "Channel",
    "PowerShellConfig",
    "ProcessChannel",
    "RunspaceChannel",
    "WinRMChannel",
    "open_channel",
]

RUNSPACE = "runspace"


class Channel(Protocol):
    @property
    def alive(self) -> bool: ...

    def request(self, request: dict, secrets: dict[str, str] | None = None) -> dict: ...

    def close(self) -> None: ...

    def kill(self) -> None: ...


def default_powershell() -> str:
    """Windows PowerShell 5.1 by full path (a service's PATH may lack it)."""
    root = os.environ.get("SYSTEMROOT")  # Windows folds the case
    if root:
        return ntpath.join(root, "System32", "WindowsPowerShell", "v1.0", "powershell.exe")
    return "powershell.exe"


@dataclass(frozen=True)
class PowerShellConfig:
    """Which local PowerShell to run and how long one request may take."""

    executable: str | None = None  # None: Windows PowerShell 5.1; "runspace": in-process
    timeout: float = DEFAULT_TIMEOUT  # iscsi.timeout
    script_path: str | None = None  # an installed main.ps1, run with -File (powershell.installed)

    @classmethod
    def from_settings(
        cls, executable: str | None, timeout: float, script_path: str | None = None
    ) -> PowerShellConfig:
        """Checked ``iscsi.powershell`` and ``iscsi.script_path``; ``timeout`` is
        ``iscsi.timeout``, checked already."""
        if executable is not None and (not isinstance(executable, str) or not executable.strip()):
            raise IscsiInputError("iscsi.powershell must be a path to powershell.exe or 'runspace'")
        if executable and ntpath.basename(executable).lower() in ("pwsh", "pwsh.exe"):
            # The iSCSI module is untested under pwsh's compatibility layer: it loads through
            # implicit remoting, objects come back deserialized, error ids change.
            raise IscsiInputError(
                "iscsi.powershell: PowerShell 7 (pwsh) is not supported; use Windows "
                "PowerShell 5.1 (leave iscsi.powershell unset)"
            )
        if script_path is not None and (
            not isinstance(script_path, str)
            or not (ntpath.isabs(script_path.strip()) or os.path.isabs(script_path.strip()))
        ):
            raise IscsiInputError(
                "iscsi.script_path must be the absolute path of an installed main.ps1"
            )
        if script_path and executable == RUNSPACE:
            raise IscsiInputError(
                "iscsi.script_path runs main.ps1 in powershell.exe; it cannot be combined "
                "with iscsi.powershell: runspace"
            )
        return cls(executable or None, timeout, script_path.strip() if script_path else None)


def open_channel(
    config: PowerShellConfig,
    remote: RemoteComputer | None = None,
    killable: bool = False,
    timeout: float | None = None,
) -> Channel:
    """The PowerShell this host is configured to use, or one on a remote computer.

    ``killable``: the caller (the beacon) must be able to stop a hung call, so the
    in-process runspace is replaced by a powershell.exe process.
    """
    timeout = timeout or config.timeout
    if remote is not None:
        return WinRMChannel(remote, timeout)
    if config.executable == RUNSPACE and not killable:
        return RunspaceChannel(timeout)
    executable = config.executable
    if executable in (None, RUNSPACE):
        executable = default_powershell()
    return ProcessChannel(executable, timeout, config.script_path)
