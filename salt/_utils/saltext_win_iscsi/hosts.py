"""The way from a Salt call to each host it acts on: configuration, WinRM profiles, fan-out.

The execution modules (``salt/_modules/iscsi*.py``) hand in Salt's ``config.get`` and
``sdb.get`` as callables; nothing here touches Salt's dunders.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from saltext_win_iscsi import channels, fanout, remote
from saltext_win_iscsi.errors import IscsiInputError
from saltext_win_iscsi.persistence import Opener

ConfigGet = Callable[..., Any]


def virtual(name: str, opts: dict, pillar: dict) -> Any:
    """The loader modules' ``__virtual__``: load where there is something to manage."""
    if sys.platform.startswith("win") or opts.get("iscsi.powershell"):
        return name
    if opts.get("iscsi.winrm") or pillar.get("iscsi.winrm"):
        if channels.HAS_WINRM:
            return name
        return (False, "iscsi: iscsi.winrm is configured but pywinrm is not installed")
    return (
        False,
        "iscsi: the Microsoft iSCSI initiator is only on Windows; to manage Windows hosts "
        "from this minion, configure WinRM profiles (iscsi.winrm)",
    )


def powershell_config(config_get: ConfigGet) -> channels.PowerShellConfig:
    return channels.PowerShellConfig.from_settings(
        config_get("iscsi.powershell", None), config_get("iscsi.timeout", None)
    )


def resolve_sdb(sdb_get: Callable[[str], Any], uri: str, what: str) -> str:
    value = sdb_get(uri)
    if not value or value == uri:
        raise IscsiInputError(f"{what}: the sdb:// URI did not resolve")
    return str(value)


def run(
    work: Callable[[Opener], Any],
    computer_name: Any,
    profile: Any,
    throttle_limit: Any,
    *,
    config_get: ConfigGet,
    sdb_get: Callable[[str], Any],
    failed: Callable[[Any], bool] = lambda result: False,
    killable: bool = False,
    timeout: float | None = None,
) -> tuple[Any, bool]:
    """``(result, failed)``: ``work`` against this host or each remote computer.

    ``work`` gets an opener for the host's PowerShell. Remote computers' profiles (and
    their sdb:// passwords) are resolved before anything connects.
    """
    config = powershell_config(config_get)
    secrets: dict[str, str] = {}

    def resolve(uri: str) -> str:
        if uri not in secrets:
            secrets[uri] = resolve_sdb(sdb_get, uri, "WinRM password")
        return secrets[uri]

    computers = remote.computers(
        computer_name,
        profile,
        config_get("iscsi.winrm", {}),
        config_get("iscsi.winrm_hosts", {}),
        resolve,
    )
    result, host_failed = fanout.on_each(
        computers,
        throttle_limit,
        lambda computer: work(
            functools.partial(channels.open_channel, config, computer, killable, timeout)
        ),
    )
    per_host = (
        [result]
        if computers is None
        else [r for r in result.values() if not (isinstance(r, dict) and "error" in r)]
    )
    return result, host_failed or any(failed(r) for r in per_host)
