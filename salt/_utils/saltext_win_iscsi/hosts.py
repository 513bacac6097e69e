"""The way from a Salt call to each host it acts on: configuration, WinRM profiles, fan-out.

The execution modules (``salt/_modules/iscsi*.py``) hand in Salt's ``config.get`` and
``sdb.get`` as callables; nothing here touches Salt's dunders.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import sys
from collections.abc import Callable
from typing import Any

from saltext_win_iscsi import computers as remote
from saltext_win_iscsi import fanout
from saltext_win_iscsi.errors import IscsiInputError
from saltext_win_iscsi.openiscsi import persistence as openiscsi_persistence
from saltext_win_iscsi.openiscsi.iscsiadm import Iscsiadm
from saltext_win_iscsi.openiscsi.nodedb import DEFAULT_NODE_DIRS
from saltext_win_iscsi.windows import channels, persistence

log = logging.getLogger(__name__)

ConfigGet = Callable[..., Any]
WINDOWS, OPEN_ISCSI = "windows", "open-iscsi"
ISCSIADM_PLACES = ("/usr/sbin/iscsiadm", "/sbin/iscsiadm", "/usr/bin/iscsiadm")


def iscsiadm_path(configured: object) -> str | None:
    """open-iscsi's iscsiadm: ``iscsi.iscsiadm`` if set, else found on PATH or in sbin."""
    if configured:
        return str(configured)
    found = shutil.which("iscsiadm")
    return found or next((p for p in ISCSIADM_PLACES if os.access(p, os.X_OK)), None)


def local_backend(powershell: object, iscsiadm: object) -> str | None:
    """What manages this host's initiator: Windows (or a configured PowerShell, as the
    tests' simulated host), open-iscsi on Linux, or nothing (None)."""
    if sys.platform.startswith("win") or powershell:
        return WINDOWS
    if iscsiadm_path(iscsiadm):
        return OPEN_ISCSI
    return None


def virtual(name: str, opts: dict, pillar: dict) -> Any:
    """The loader modules' ``__virtual__``: load where there is something to manage."""
    backend = local_backend(opts.get("iscsi.powershell"), opts.get("iscsi.iscsiadm"))
    if backend == OPEN_ISCSI:
        log.debug("iscsi: open-iscsi at %s", iscsiadm_path(opts.get("iscsi.iscsiadm")))
    if backend is not None:
        return name
    if opts.get("iscsi.winrm") or pillar.get("iscsi.winrm"):
        if channels.HAS_WINRM:
            return name
        return (False, "iscsi: iscsi.winrm is configured but pywinrm is not installed")
    return (
        False,
        "iscsi: found neither Windows' iSCSI initiator nor open-iscsi's iscsiadm (install "
        "open-iscsi, or set iscsi.iscsiadm); to manage Windows hosts from this minion, "
        "configure WinRM profiles (iscsi.winrm)",
    )


def describe_backend(config_get: ConfigGet) -> str:
    backend = local_backend(
        config_get("iscsi.powershell", None), config_get("iscsi.iscsiadm", None)
    )
    if backend == OPEN_ISCSI:
        return f"open-iscsi ({iscsiadm_path(config_get('iscsi.iscsiadm', None))})"
    return backend or "none"


def powershell_config(config_get: ConfigGet) -> channels.PowerShellConfig:
    return channels.PowerShellConfig.from_settings(
        config_get("iscsi.powershell", None), config_get("iscsi.timeout", None)
    )


def iscsiadm(config_get: ConfigGet) -> Iscsiadm:
    timeout = config_get("iscsi.timeout", None)
    return Iscsiadm(
        executable=iscsiadm_path(config_get("iscsi.iscsiadm", None)) or "iscsiadm",
        timeout=float(timeout) if timeout else 60.0,
    )


def node_dirs(config_get: ConfigGet) -> list[str]:
    """Where open-iscsi keeps its node records (``iscsi.node_dirs``; the usual places by
    default): what the beacon's digest reads."""
    configured = config_get("iscsi.node_dirs", None)
    if configured is None:
        return list(DEFAULT_NODE_DIRS)
    if isinstance(configured, str):
        configured = [configured]
    if not isinstance(configured, list) or not all(isinstance(d, str) for d in configured):
        raise IscsiInputError("iscsi.node_dirs must be a directory or a list of directories")
    return configured


def resolve_sdb(sdb_get: Callable[[str], Any], uri: str, what: str) -> str:
    value = sdb_get(uri)
    if not value or value == uri:
        raise IscsiInputError(f"{what}: the sdb:// URI did not resolve")
    return str(value)


def run(
    work: Callable[[Any, Any], Any],
    computer_name: Any,
    profile: Any,
    throttle_limit: Any,
    *,
    config_get: ConfigGet,
    sdb_get: Callable[[str], Any],
    failed: Callable[[Any], bool] = lambda result: False,
    killable: bool = False,
    timeout: float | None = None,
    windows_only: bool = False,
) -> tuple[Any, bool]:
    """``(result, failed)``: ``work(target, backend)`` against this host or each remote
    computer.

    On Windows hosts (here or over WinRM) ``target`` is an opener of the host's PowerShell
    and ``backend`` the module ``persistence``; on a Linux minion without
    ``computer_name`` it is an ``Iscsiadm`` and ``openiscsi.persistence``, which has the
    same functions. ``windows_only``: a function Linux minions do not have. Remote
    computers' profiles (and their sdb:// passwords) are resolved before anything
    connects.
    """
    if (
        computer_name is None
        and local_backend(config_get("iscsi.powershell", None), config_get("iscsi.iscsiadm", None))
        == OPEN_ISCSI
    ):
        if windows_only:
            raise IscsiInputError(
                "iscsi: portals, targets and connections are managed on Windows hosts only; "
                "on Linux minions (open-iscsi) this extension manages persistence "
                "(see docs/linux.md)"
            )
        result = work(iscsiadm(config_get), openiscsi_persistence)
        return result, failed(result)
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
            functools.partial(channels.open_channel, config, computer, killable, timeout),
            persistence,
        ),
    )
    per_host = (
        [result]
        if computers is None
        else [r for r in result.values() if not (isinstance(r, dict) and "error" in r)]
    )
    return result, host_failed or any(failed(r) for r in per_host)
