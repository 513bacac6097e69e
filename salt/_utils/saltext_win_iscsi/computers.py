"""Remote Windows computers: which WinRM connection profile serves which computer.

Profiles come from config or pillar (``iscsi.winrm``, ``iscsi.winrm_hosts``), read by the
execution module and handed in here; credentials never travel as function arguments.
"""

from __future__ import annotations

from collections.abc import Callable

from saltext_win_iscsi.errors import IscsiInputError, safe_text
from saltext_win_iscsi.selection import as_list, glob

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
    computer_name: object,
    profile: object,
    profiles: object,
    hosts: object,
    resolve_secret: Callable[[str], str],
) -> list[RemoteComputer] | None:
    """The remote computers named (profiles resolved up front), or None for this host."""
    names = as_list(computer_name, "computer_name")
    if names is None:
        return None
    if profile is not None and not isinstance(profile, str):
        raise IscsiInputError("profile must be the name of a WinRM profile")
    return [
        resolve_profile(name, profile, profiles, hosts, resolve_secret)
        for name in dict.fromkeys(names)
    ]
