"""What a wanted connection is: portals (paths), how a target must be connected, and
what on a host differs from it. Pure data and checks, no I/O: used by the desired states,
the policy (violations of ``connected`` rules) and the execution module's argument checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from saltext_win_iscsi.errors import IscsiInputError, safe_text
from saltext_win_iscsi.windows.protocol import AUTH_TYPES

DEFAULT_PORT = 3260
_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f\u0085\u2028\u2029]")


def authentication(value: object) -> str | None:
    """Windows' AuthenticationType for ``none``, ``one-way`` or ``mutual`` (or Windows'
    own spelling); None when not given."""
    if value is None:
        return None
    text = str(value).strip()
    for name, windows in AUTH_TYPES.items():
        if text.lower() in (name, windows.lower(), name.replace("-", "")):
            return windows
    raise IscsiInputError(
        f"authentication must be one of {', '.join(AUTH_TYPES)}, not {safe_text(value)}"
    )


def checked_name(value: object, what: str) -> str:
    """An address, IQN or user name: a non-empty string without whitespace or controls."""
    if not isinstance(value, str) or not value.strip() or _UNSAFE.search(value.strip()):
        raise IscsiInputError(f"{what} must be a name without spaces, not {safe_text(value)}")
    return value.strip()


def checked_secret(value: object, what: str = "chap_secret") -> str:
    """CHAP secrets are 12 to 16 bytes; checked here so Windows never echoes one."""
    if not isinstance(value, str):
        raise IscsiInputError(f"{what} must be a string")
    if not 12 <= len(value.encode("utf-8")) <= 16:
        raise IscsiInputError(f"{what} must be 12 to 16 bytes long")
    return value


@dataclass(frozen=True)
class Portal:
    """A target portal: ``address``, ``address:port`` or ``[IPv6]:port``."""

    address: str
    port: int = DEFAULT_PORT
    initiator_portal_address: str | None = None

    @classmethod
    def parse(cls, value: object, initiator_portal_address: object = None) -> Portal:
        if isinstance(value, dict):
            unknown = set(value) - {"address", "port", "initiator_portal_address"}
            if unknown or "address" not in value:
                raise IscsiInputError(
                    "a portal is 'address[:port]' or a mapping with address, port, "
                    f"initiator_portal_address; got {safe_text(value)}"
                )
            port = value.get("port", DEFAULT_PORT)
            address = str(value["address"])
            initiator_portal_address = value.get("initiator_portal_address")
        else:
            text = checked_name(value, "portal")
            port = DEFAULT_PORT
            if text.startswith("["):  # [IPv6] or [IPv6]:port
                match = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", text)
                if not match:
                    raise IscsiInputError(f"portal {safe_text(value)} is not [address]:port")
                address, port = match.group(1), match.group(2) or DEFAULT_PORT
            elif text.count(":") == 1:  # name:port or IPv4:port
                address, port = text.split(":")
            else:  # a name, IPv4, or IPv6 without a port
                address = text
        try:
            port = int(port)
        except (TypeError, ValueError):
            port = -1
        if not 0 < port < 65536:
            raise IscsiInputError(f"portal {safe_text(value)}: the port must be 1 to 65535")
        initiator = (
            checked_name(initiator_portal_address, "initiator_portal_address")
            if initiator_portal_address
            else None
        )
        return cls(checked_name(address, "portal address"), port, initiator)

    @property
    def label(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    def same_as(self, address: object, port: object) -> bool:
        return str(address).lower() == self.address.lower() and int(port or 0) == self.port

    def request(self) -> dict:
        return {
            "address": self.address,
            "port": self.port,
            "initiator_portal_address": self.initiator_portal_address,
        }


@dataclass(frozen=True)
class TargetSpec:
    """How a target must be connected. Secrets are kept out of ``repr``."""

    node_address: str
    portals: tuple[Portal, ...] = ()  # one session per portal; none: one session, any path
    persistent: bool = True
    multipath: bool = False
    authentication: str = "NONE"
    chap_username: str | None = None
    chap_secret: str | None = field(default=None, repr=False)
    initiator_chap_secret: str | None = field(default=None, repr=False)

    @property
    def secrets(self) -> dict[str, str] | None:
        return {"chap_secret": self.chap_secret} if self.chap_secret else None

    def login_ok(self, login: dict) -> bool:
        """Whether a persistent login reconnects as wanted (MPIO flag, authentication)."""
        return (
            bool(login.get("IsMultipathEnabled")) == self.multipath
            and (login.get("AuthenticationType") or "NONE") == self.authentication
            and (self.chap_username is None or login.get("ChapUsername") == self.chap_username)
        )


def same_target(session_or_login: dict, node_address: str) -> bool:
    name = session_or_login.get("TargetNodeAddress") or session_or_login.get("TargetName")
    return str(name).lower() == node_address.lower()


def on_portal(session: dict, portal: Portal | None) -> bool:
    if portal is None:
        return True
    connections = session.get("Connections") or []
    return any(
        portal.same_as(c.get("TargetAddress"), c.get("TargetPortNumber"))
        and (
            portal.initiator_portal_address is None
            or _initiator_address(session, c) == portal.initiator_portal_address.lower()
        )
        for c in connections
    )


# What Windows shows for "no initiator portal": a session made without one reports
# InitiatorPortalAddress 0.0.0.0, its connection the local address really used.
_UNSET_ADDRESSES = ("", "0.0.0.0", "::")


def _initiator_address(session: dict, connection: dict) -> str:
    """The local address a session goes out from (lower case; "" if none is shown)."""
    for value in (session.get("InitiatorPortalAddress"), connection.get("InitiatorAddress")):
        address = str(value or "").strip().lower()
        if address not in _UNSET_ADDRESSES:
            return address
    return ""


def logins_on(logins: list[dict], spec: TargetSpec, portal: Portal | None) -> list[dict]:
    return [
        lg
        for lg in logins
        if same_target(lg, spec.node_address)
        and (
            portal is None
            or portal.same_as(lg.get("TargetPortalAddress"), lg.get("TargetPortalPort"))
        )
    ]


def path_problems(spec: TargetSpec, sessions: list[dict], logins: list[dict]) -> list[str]:
    """What still differs from ``spec`` (used to verify, and by the policy's violations)."""
    problems = []
    mine = [s for s in sessions if same_target(s, spec.node_address)]
    for portal in spec.portals or (None,):
        where = f" via {portal.label}" if portal else ""
        if not any(on_portal(s, portal) for s in mine):
            problems.append(f"{spec.node_address} is not connected{where}")
            continue
        path_logins = logins_on(logins, spec, portal)
        if spec.persistent and not any(spec.login_ok(lg) for lg in path_logins):
            problems.append(f"{spec.node_address}{where} does not reconnect at boot as wanted")
        if spec.persistent and any(not spec.login_ok(lg) for lg in path_logins):
            problems.append(f"{spec.node_address}{where} has a persistent login with other options")
        if not spec.persistent and path_logins:
            problems.append(f"{spec.node_address}{where} reconnects at boot")
    return problems
