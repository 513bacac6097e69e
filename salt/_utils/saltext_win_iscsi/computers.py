"""Remote Windows computers: which WinRM profile serves which computer, and running one
piece of work on many of them at once (``-CimSession``, ``-ThrottleLimit``).

Profiles come from config or pillar (``iscsi.winrm``, ``iscsi.winrm_hosts``); credentials
never travel as function arguments, and ``sdb://`` passwords are resolved before anything
connects.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable
from typing import Any

from saltext_win_iscsi.config import Settings
from saltext_win_iscsi.errors import IscsiError, IscsiInputError, safe_text
from saltext_win_iscsi.selection import as_list, glob

log = logging.getLogger(__name__)

DEFAULT_THROTTLE_LIMIT = 32  # as the cmdlets' -ThrottleLimit 0

PROFILE_KEYS = {
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


class RemoteComputer:
    """A Windows computer reached over WinRM, with its resolved connection profile."""

    def __init__(self, name: str, profile_name: str, settings: dict) -> None:
        self.name = name
        self.profile_name = profile_name
        self.settings = settings

    def __repr__(self) -> str:  # never shows the settings: they hold the password
        return f"RemoteComputer({self.name!r}, profile={self.profile_name!r})"


def check_profile(name: str, cfg: dict) -> None:
    """Refuse unknown or insecure-without-consent settings before connecting anywhere."""
    unknown = set(cfg) - PROFILE_KEYS
    if unknown:
        raise IscsiInputError(
            f"WinRM profile '{name}' has unknown settings: {', '.join(sorted(unknown))}"
        )
    scheme = cfg.get("scheme", "https")
    if scheme not in ("https", "http"):
        raise IscsiInputError(f"WinRM profile '{name}': scheme must be https or http")
    basic = cfg.get("transport") in ("basic", "plaintext")
    if basic and scheme == "http" and not cfg.get("insecure"):
        raise IscsiInputError(
            f"WinRM profile '{name}': Basic authentication over plain HTTP sends the password "
            "readable; use https (transport: ssl) or ntlm/kerberos, or set insecure: True "
            "for a test lab"
        )
    if cfg.get("server_cert_validation", "validate") not in ("validate", "ignore"):
        raise IscsiInputError(
            f"WinRM profile '{name}': server_cert_validation must be validate or ignore"
        )


def resolve_profile(
    computer: str,
    profile: str | None,
    profiles: object,
    hosts: object,
    resolve_secret: Callable[[str], str],
) -> RemoteComputer:
    """The connection profile for ``computer``: the named one, else the first
    ``iscsi.winrm_hosts`` glob that matches, else ``default``."""
    profiles = profiles or {}
    if not isinstance(profiles, dict):
        raise IscsiInputError("iscsi.winrm must be a mapping of profile names to settings")
    if profile is None:
        hosts = hosts or {}
        if not isinstance(hosts, dict):
            raise IscsiInputError("iscsi.winrm_hosts must map computer globs to profile names")
        profile = next(
            (name for pattern, name in hosts.items() if glob(str(pattern)).fullmatch(computer)),
            "default",
        )
    settings = profiles.get(profile)
    if not isinstance(settings, dict):
        raise IscsiInputError(
            f"no WinRM profile {safe_text(profile)} for {safe_text(computer)} "
            f"(configure iscsi.winrm:<profile>)"
        )
    check_profile(str(profile), settings)
    password = settings.get("password")
    if isinstance(password, str) and password.startswith("sdb://"):
        settings = {**settings, "password": resolve_secret(password)}
    return RemoteComputer(computer, str(profile), settings)


def computers(
    computer_name: object, profile: object, settings: Settings
) -> list[RemoteComputer] | None:
    """The remote computers named (profiles resolved up front), or None for this host."""
    names = as_list(computer_name, "computer_name")
    if names is None:
        return None
    if profile is not None and not isinstance(profile, str):
        raise IscsiInputError("profile must be the name of a WinRM profile")
    secrets: dict[str, str] = {}

    def resolve(uri: str) -> str:  # each sdb:// URI once, however many computers use it
        if uri not in secrets:
            secrets[uri] = settings.resolve(uri, "WinRM password")
        return secrets[uri]

    return [
        resolve_profile(name, profile, settings.winrm, settings.winrm_hosts, resolve)
        for name in dict.fromkeys(names)
    ]


def throttle(throttle_limit: Any, count: int) -> int:
    """Workers for ``count`` computers; 0 means the default, as for the cmdlet."""
    if (
        isinstance(throttle_limit, bool)
        or not isinstance(throttle_limit, int)
        or throttle_limit < 0
    ):
        raise IscsiInputError(f"throttle_limit must be a whole number >= 0, not {throttle_limit!r}")
    return max(1, min(throttle_limit or DEFAULT_THROTTLE_LIMIT, count))


def on_each(
    computers: list[RemoteComputer] | None,
    throttle_limit: Any,
    work: Callable[[RemoteComputer | None], Any],
) -> tuple[Any, bool]:
    """``(result, failed)``: ``work(None)`` here, or ``{computer: result}`` for each computer.

    One computer's failure (down, credentials refused, timeout) is reported under its name
    as ``{"error": ...}`` with ``failed`` set; the others go on.
    """
    if computers is None:
        return work(None), False
    workers = throttle(throttle_limit, len(computers))
    results: dict[str, Any] = {}
    failed = False
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(work, computer): computer for computer in computers}
        for future in concurrent.futures.as_completed(futures):
            name = futures[future].name
            try:
                results[name] = future.result()
            except (IscsiError, IscsiInputError) as exc:
                log.error("iSCSI: %s", exc)
                results[name] = {"error": str(exc)}
                failed = True
    return {computer.name: results[computer.name] for computer in computers}, failed
