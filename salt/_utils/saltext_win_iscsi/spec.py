"""What is wanted of a host, as data the backends act on: which sessions must (not)
reconnect at boot, how a target must be connected, how a portal is added; and what on a
host differs from a wanted connection. Pure data and checks, no I/O: used by the backends,
the policy (violations of ``connected`` rules) and the execution module's argument checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from saltext_win_iscsi.errors import IscsiInputError
from saltext_win_iscsi.model import Portal
from saltext_win_iscsi.selection import Selector

# Seconds ``iscsi.connected`` waits for the disks of a session it made (LUN availability).
DISK_TIMEOUT = 30.0


@dataclass(frozen=True)
class PersistenceSpec:
    """Sessions to make persistent (``Register``) or not (``Unregister``), and how a
    registration reconnects. Secrets are kept out of ``repr``."""

    select: Selector
    persistent: bool
    force: bool = False  # register a session that is persistent already, once more
    multipath: bool = False
    chap_username: str | None = None
    chap_secret: str | None = field(default=None, repr=False)
    # Register with MPIO although the host's MPIO does not claim iSCSI disks.
    allow_unclaimed_multipath: bool = False
    # The states only: also the persistent logins this selects that no persistent session
    # stands for (targets down today that would reconnect at the next boot).
    logins: Selector | None = None

    @property
    def op(self) -> str:
        return "register" if self.persistent else "unregister"

    @property
    def done(self) -> str:
        """The status of a session changed as wanted."""
        return f"{self.op}ed"

    @property
    def skip(self) -> str:
        """The status of a session that already was as wanted."""
        return "already_persistent" if self.persistent else "not_persistent"

    @property
    def adjective(self) -> str:
        return "persistent" if self.persistent else "non-persistent"

    @property
    def secrets(self) -> dict[str, str] | None:
        return {"chap_secret": self.chap_secret} if self.chap_secret else None

    @property
    def options(self) -> dict:
        """How a registration reconnects (nothing for an unregister)."""
        if not self.persistent:
            return {}
        return {"is_multipath_enabled": self.multipath, "chap_username": self.chap_username}


@dataclass(frozen=True)
class PortalSpec:
    """A target portal to add, with the CHAP its discovery session uses."""

    portal: Portal
    authentication: str | None = None
    chap_username: str | None = None
    chap_secret: str | None = field(default=None, repr=False)

    @property
    def secrets(self) -> dict[str, str] | None:
        return {"chap_secret": self.chap_secret} if self.chap_secret else None


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
    # Connect with MPIO although the host's MPIO does not claim iSCSI disks.
    allow_unclaimed_multipath: bool = False

    @property
    def secrets(self) -> dict[str, str] | None:
        return {"chap_secret": self.chap_secret} if self.chap_secret else None

    def check_credentials(self) -> None:
        """Refuse CHAP without the user name and secret it needs (nothing attempted)."""
        if self.authentication != "NONE" and not (self.chap_username and self.chap_secret):
            raise IscsiInputError(
                f"authentication {self.authentication} needs chap_username and chap_secret"
            )
        if self.authentication == "MUTUALCHAP" and not self.initiator_chap_secret:
            raise IscsiInputError(
                "mutual CHAP needs initiator_chap_secret (the initiator's own secret)"
            )

    def login_ok(self, login: dict) -> bool:
        """Whether a persistent login reconnects as wanted (MPIO flag, authentication).
        A login without an MPIO flag (None: open-iscsi) cannot differ in it."""
        multipath = login.get("IsMultipathEnabled")
        return (
            (multipath is None or bool(multipath) == self.multipath)
            and (login.get("AuthenticationType") or "NONE") == self.authentication
            and (self.chap_username is None or login.get("ChapUsername") == self.chap_username)
        )


def refuse_unclaimed_multipath(why: str) -> IscsiInputError:
    """The refusal of the MPIO flag on a host whose MPIO does not claim iSCSI disks (``why``
    says what the host shows): each path would then show the LUN as a disk of its own,
    which "can cause data corruption" (os-win)."""
    return IscsiInputError(
        f"iscsi: refusing multipath: {why}, so each path would show the LUN as a separate "
        "disk, which can corrupt data. Claim iSCSI disks for MPIO first "
        "(Enable-MSDSMAutomaticClaim -BusType iSCSI, then restart) or, knowing the risk, "
        "pass allow_unclaimed_multipath=True"
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


def missing_paths(spec: TargetSpec, sessions: list[dict]) -> list[Portal]:
    """The wanted portals with no live session of the target (a session that is
    reconnecting, ``IsConnected`` False, is no live path)."""
    live = [
        s
        for s in sessions
        if same_target(s, spec.node_address) and s.get("IsConnected") is not False
    ]
    return [p for p in spec.portals if not any(on_portal(s, p) for s in live)]


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
