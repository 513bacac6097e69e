"""The domain's vocabulary, the same on every backend: field names, portals, checks.

Sessions, connections, persistent logins and portals carry the field names Windows'
cmdlets use (``Get-IscsiSession`` and friends); the Linux backend maps open-iscsi's onto
them. The Windows wire format (``windows/protocol.py``) and the PowerShell script state the
same lists; a unit test holds them together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from saltext_win_iscsi.errors import IscsiInputError, safe_text

DEFAULT_PORT = 3260  # the iSCSI port (RFC 7143)
ANY_PORT = 0xFFFFFFFF  # a persistent login's InitiatorPortNumber meaning "any port"

# Get-IscsiSession's fields, in the cmdlet's order (MSFT_iSCSISession plus the
# IsMultipathEnabled that PowerShell shows).
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
CONNECTION_FIELDS = (
    "ConnectionIdentifier",
    "InitiatorAddress",
    "InitiatorPortNumber",
    "TargetAddress",
    "TargetPortNumber",
)
# One persistent login (WMI MSiSCSIInitiator_PersistentLoginClass, TargetPortal flattened).
# Two entries with equal values are the same registration made twice (MPIO).
LOGIN_FIELDS = (
    "TargetName",
    "InitiatorInstance",
    "InitiatorPortNumber",
    "TargetPortalAddress",
    "TargetPortalPort",
)
# AuthenticationType as Windows spells it, by the names the states accept.
AUTH_TYPES = {"none": "NONE", "one-way": "ONEWAYCHAP", "mutual": "MUTUALCHAP"}

# The initiator accepts CHAP secrets of 12 to 16 bytes (RFC 7143 asks for 12 at least).
CHAP_SECRET_BYTES = (12, 16)
_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f\u0085\u2028\u2029]")


def login_key(login: dict) -> tuple[str, ...]:
    """What identifies a persistent login (case-insensitive, as Windows compares)."""
    return tuple(str(login.get(field)).lower() for field in LOGIN_FIELDS)


def portal_label(address: object, port: object) -> str:
    """``address:port``, an IPv6 address in brackets (``[fe80::1]:3260``, never the
    ambiguous ``fe80::1:3260``); a login without a portal is ``(any portal)``."""
    text = str(address or "").strip("[]")
    if not text:
        return "(any portal)"
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


def session_portals(session: dict) -> str:
    """The labels of the portals a session's connections go to, comma-separated ("" for
    a session listed without its connections)."""
    found: list[str] = []
    for conn in session.get("Connections") or []:
        portal = portal_label(conn.get("TargetAddress"), conn.get("TargetPortNumber"))
        if portal not in found:
            found.append(portal)
    return ", ".join(found)


def login_portal(login: dict) -> str:
    """The label of a persistent login's portal."""
    return portal_label(login.get("TargetPortalAddress"), login.get("TargetPortalPort"))


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
    """A CHAP secret of the length the initiator takes; checked here so that no backend
    ever echoes one in a parameter-validation message."""
    if not isinstance(value, str):
        raise IscsiInputError(f"{what} must be a string")
    low, high = CHAP_SECRET_BYTES
    if not low <= len(value.encode("utf-8")) <= high:
        raise IscsiInputError(f"{what} must be {low} to {high} bytes long")
    return value


def _port_number(value: object) -> int:
    """A port given as a number or as ASCII digits; -1 for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return -1


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
            port = value.get("port")
            address = str(value["address"])
            initiator_portal_address = value.get("initiator_portal_address")
        else:
            text = checked_name(value, "portal")
            port = None
            if text.startswith("["):  # [IPv6] or [IPv6]:port
                match = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", text)
                if not match or ":" not in match.group(1):  # brackets are for IPv6 only
                    raise IscsiInputError(f"portal {safe_text(value)} is not [address]:port")
                address, port = match.group(1), match.group(2)
            elif text.count(":") == 1:  # name:port or IPv4:port
                address, port = text.split(":")
            else:  # a name, IPv4, or IPv6 without a port
                address = text
        return cls.of(address, port, initiator_portal_address, shown=value)

    @classmethod
    def of(
        cls,
        address: object,
        port: object = None,
        initiator_portal_address: object = None,
        shown: object = None,
    ) -> Portal:
        """A portal from its parts; ``port`` None is the default port."""
        number = DEFAULT_PORT if port is None else _port_number(port)
        if not 0 < number < 65536:
            where = safe_text(shown if shown is not None else port)
            raise IscsiInputError(f"portal {where}: the port must be 1 to 65535")
        initiator = (
            checked_name(initiator_portal_address, "initiator_portal_address")
            if initiator_portal_address
            else None
        )
        return cls(checked_name(address, "portal address"), number, initiator)

    @property
    def label(self) -> str:
        return portal_label(self.address, self.port)

    def same_as(self, address: object, port: object) -> bool:
        return str(address).lower() == self.address.lower() and _port_number(port) == self.port

    def request(self) -> dict:
        return {
            "address": self.address,
            "port": self.port,
            "initiator_portal_address": self.initiator_portal_address,
        }
