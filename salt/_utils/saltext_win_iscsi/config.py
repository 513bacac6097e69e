"""The extension's configuration: every ``iscsi.*`` key, its default, read once per call.

Keys live in the minion config or in pillar (Salt's ``config.get`` looks in both); the
loader modules hand in ``config.get`` and ``sdb.get`` as callables, so nothing here touches
Salt's dunders. Secrets may be ``sdb://`` URIs; they are resolved on the minion, never
passed on the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from saltext_win_iscsi.errors import IscsiInputError, safe_text
from saltext_win_iscsi.model import checked_secret

ConfigGet = Callable[..., Any]
SdbGet = Callable[[str], Any]

BACKEND = "iscsi.backend"  # windows | open-iscsi; default: what this host has
POWERSHELL = "iscsi.powershell"  # powershell.exe to run, or 'runspace'
SCRIPT_PATH = "iscsi.script_path"  # an installed (signed) main.ps1, run with -File
TIMEOUT = "iscsi.timeout"  # seconds one request (PowerShell or iscsiadm) may take
ISCSIADM = "iscsi.iscsiadm"  # open-iscsi's iscsiadm; default: found on PATH or in sbin
NODE_DIRS = "iscsi.node_dirs"  # where open-iscsi keeps its node records
ISCSID_CONF = "iscsi.iscsid_conf"  # open-iscsi's defaults for new node records
LSBLK = "iscsi.lsblk"  # util-linux's lsblk: what is mounted from a session's disks
SYSTEMCTL = "iscsi.systemctl"  # systemd's systemctl: iscsid's and multipathd's units
PIDOF = "iscsi.pidof"  # procps' pidof: whether iscsid runs where systemd is not PID 1
WINRM = "iscsi.winrm"  # WinRM connection profiles, by name
WINRM_HOSTS = "iscsi.winrm_hosts"  # computer glob -> profile name

DEFAULT_TIMEOUT = 120.0
# open-iscsi's node database: upstream 2.1 and Debian/Ubuntu, then RHEL/SUSE.
DEFAULT_NODE_DIRS = ("/etc/iscsi/nodes", "/var/lib/iscsi/nodes")
DEFAULT_ISCSID_CONF = "/etc/iscsi/iscsid.conf"
SDB_PREFIX = "sdb://"


def _timeout(value: object) -> float:
    if value is None:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = -1.0
    if isinstance(value, bool) or seconds <= 0:
        raise IscsiInputError(f"{TIMEOUT} must be a positive number, not {safe_text(value)}")
    return seconds


def _node_dirs(value: object) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_NODE_DIRS
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(d, str) and d for d in value):
        raise IscsiInputError(f"{NODE_DIRS} must be a directory or a list of directories")
    return tuple(value)


def _optional_text(key: str, value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise IscsiInputError(f"{key} must be a string, not {safe_text(value)}")
    return value


@dataclass(frozen=True)
class Settings:
    """This minion's ``iscsi.*`` configuration, checked."""

    backend: str | None = None
    powershell: str | None = None
    script_path: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    iscsiadm: str | None = None
    node_dirs: tuple[str, ...] = DEFAULT_NODE_DIRS
    iscsid_conf: str = DEFAULT_ISCSID_CONF
    lsblk: str | None = None
    systemctl: str | None = None
    pidof: str | None = None
    winrm: Any = None
    winrm_hosts: Any = None
    sdb_get: SdbGet | None = field(default=None, repr=False, compare=False)

    @classmethod
    def read(cls, config_get: ConfigGet, sdb_get: SdbGet | None = None) -> Settings:
        """The settings through ``config.get`` (or any ``get(key, default)``)."""
        return cls(
            backend=_optional_text(BACKEND, config_get(BACKEND, None)),
            powershell=_optional_text(POWERSHELL, config_get(POWERSHELL, None)),
            script_path=_optional_text(SCRIPT_PATH, config_get(SCRIPT_PATH, None)),
            timeout=_timeout(config_get(TIMEOUT, None)),
            iscsiadm=_optional_text(ISCSIADM, config_get(ISCSIADM, None)),
            node_dirs=_node_dirs(config_get(NODE_DIRS, None)),
            iscsid_conf=_optional_text(ISCSID_CONF, config_get(ISCSID_CONF, None))
            or DEFAULT_ISCSID_CONF,
            lsblk=_optional_text(LSBLK, config_get(LSBLK, None)),
            systemctl=_optional_text(SYSTEMCTL, config_get(SYSTEMCTL, None)),
            pidof=_optional_text(PIDOF, config_get(PIDOF, None)),
            winrm=config_get(WINRM, None),
            winrm_hosts=config_get(WINRM_HOSTS, None),
            sdb_get=sdb_get,
        )

    @classmethod
    def from_opts(cls, opts: dict, pillar: dict) -> Settings:
        """The settings as ``__virtual__`` sees them (no ``config.get`` yet): minion
        config first, then pillar."""
        return cls.read(lambda key, default=None: opts.get(key, pillar.get(key, default)))

    def resolve(self, value: str, what: str) -> str:
        """``value``, or what its ``sdb://`` URI holds; the URI itself never travels on."""
        if not value.startswith(SDB_PREFIX):
            return value
        resolved = self.sdb_get(value) if self.sdb_get is not None else None
        if not resolved or resolved == value:
            raise IscsiInputError(f"{what}: the sdb:// URI did not resolve")
        return str(resolved)

    def secret(self, value: object, what: str = "chap_secret") -> str | None:
        """A CHAP secret given as a value or an ``sdb://`` URI, length-checked; None if not
        given."""
        if value is None:
            return None
        if isinstance(value, str):
            value = self.resolve(value, what)
        return checked_secret(value, what)
