"""One interface to a host's iSCSI initiator, one class per platform, one factory.

``Backend`` is what the execution module calls: reads, persistence, the desired states and
the beacon's checker, each an operation on one host. The platforms implement it in
``windows/backend.py`` (the fixed PowerShell script over a process, runspace or WinRM) and
``openiscsi/backend.py`` (the real ``iscsiadm``). A capability a platform lacks raises
``IscsiInputError`` naming the platform and what it does support. ``backend_for`` is the
only place that asks which platform this is.
"""

from __future__ import annotations

import abc
import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from saltext_win_iscsi import computers, outcome
from saltext_win_iscsi.beacon.monitor import Checker
from saltext_win_iscsi.config import Settings
from saltext_win_iscsi.errors import IscsiError, IscsiInputError, safe_text
from saltext_win_iscsi.model import Portal
from saltext_win_iscsi.openiscsi.iscsiadm import find_iscsiadm
from saltext_win_iscsi.policy import Policy
from saltext_win_iscsi.selection import Selector
from saltext_win_iscsi.spec import PersistenceSpec, PortalSpec, TargetSpec
from saltext_win_iscsi.windows.channels import HAS_WINRM

WINDOWS, OPEN_ISCSI = "windows", "open-iscsi"
PLATFORMS = (WINDOWS, OPEN_ISCSI)


class Backend(abc.ABC):
    """A host's initiator. Each public method is one operation: on Windows one
    PowerShell process, and within ``session()`` several operations share one."""

    platform: ClassVar[str]
    # What the platform manages, for the message a missing capability gives.
    manages: ClassVar[str]

    @contextlib.contextmanager
    def session(self) -> Iterator[Backend]:
        """Group operations into one host session (one PowerShell process on Windows)."""
        yield self

    @abc.abstractmethod
    def describe(self) -> str:
        """What manages the initiator, for ``iscsi.version``."""

    # -- reads -------------------------------------------------------------------------

    @abc.abstractmethod
    def get_sessions(
        self, select: Selector, connections: bool = False, disks: bool = False
    ) -> list[dict]:
        """The sessions ``select`` matches, as ``Get-IscsiSession`` shows them."""

    @abc.abstractmethod
    def get_persistent_logins(self, select: Selector) -> list[dict]:
        """The persistent logins (what reconnects at boot) ``select`` matches."""

    @abc.abstractmethod
    def check_policy(self, policy: Policy) -> dict:
        """``{"compliant", "rules", "violations"}`` of ``policy`` on the host now."""

    @abc.abstractmethod
    def diagnose(self, observations: bool = False) -> dict:
        """``{"platform", "verdicts", "items"}``: the host's readiness facts, each with a
        verdict (``diagnosis.py``); an unreadable fact is an ``unknown`` item, never an
        error of the whole call. ``observations``: also the read-only observations the
        simulated host loads (Windows; ``windows/observations.py``)."""

    # -- persistence ---------------------------------------------------------------------

    @abc.abstractmethod
    def change_persistence(self, spec: PersistenceSpec, test: bool, passthru: bool) -> Any:
        """Register or unregister the selected sessions: a report per session id, or with
        ``passthru`` the changed sessions as they are afterwards."""

    @abc.abstractmethod
    def remove_persistent_logins(self, select: Selector, test: bool) -> list[dict]:
        """Remove the persistent logins ``select`` matches: a report per distinct login."""

    def ensure_persistence(self, spec: PersistenceSpec, test: bool) -> dict:
        """The ``persistent``/``not_persistent`` states in one host session: change the
        sessions, remove the persistent logins no persistent session stands for, and say
        which disks will be missing after the next restart."""
        with self.session():
            report = self.change_persistence(spec, test, passthru=False)
            logins = self._leftover_logins(spec, report, test)
            disks = self._lost_disks(spec, report)
        return outcome.persistence(spec, report, logins, disks, test)

    def _leftover_logins(self, spec: PersistenceSpec, report: dict, test: bool) -> list[dict]:
        if spec.logins is None:
            return []
        removed = self.remove_persistent_logins(spec.logins, test)
        if not test:
            return removed
        # Testing, the sessions were not unregistered: their logins would go with them.
        covered = {
            str(e.get("TargetNodeAddress")).lower()
            for e in report.values()
            if e["status"] == f"would_{spec.op}"
        }
        return [e for e in removed if e["TargetName"].lower() not in covered]

    def _lost_disks(self, spec: PersistenceSpec, report: dict) -> list[str]:
        changed = [sid for sid, e in report.items() if e["status"] == spec.done]
        if spec.persistent or not changed:
            return []
        try:
            sessions = self.get_sessions(Selector(session_identifier=changed), disks=True)
        except IscsiError as exc:
            return [f"(could not list the disks behind them: {exc})"]
        return outcome.disk_names(sessions)

    def ensure_defaults(self, wanted: dict[str, str], test: bool) -> dict:
        """The initiator's defaults for new records (``iscsi:policy:defaults``). Only
        open-iscsi has such defaults; elsewhere there is nothing to manage."""
        return {
            "changes": {},
            "comments": [f"{self.platform} hosts have no defaults for new targets: nothing to do."],
            "errors": [],
        }

    @abc.abstractmethod
    def ensure_ready(self, wanted: dict, test: bool) -> dict:
        """The host as the readiness rules want it (``Policy.readiness_items``): what
        breaks them fixed where this platform can, ``{"changes", "comments", "errors"}``."""

    # -- the beacon ----------------------------------------------------------------------

    @abc.abstractmethod
    def checker(self) -> Checker:
        """The beacon's cheap check of this host (kept between ticks)."""

    # -- the initiator's lifecycle: optional ---------------------------------------------

    def unsupported(self, what: str) -> IscsiInputError:
        return IscsiInputError(
            f"iscsi: {what} cannot be managed on {self.platform} hosts by this extension; "
            f"here it manages {self.manages}"
        )

    def get_target_portals(self) -> list[dict]:
        raise self.unsupported("target portals")

    def add_target_portal(self, spec: PortalSpec, test: bool) -> dict:
        raise self.unsupported("target portals")

    def remove_target_portal(self, portal: Portal, test: bool) -> dict:
        raise self.unsupported("target portals")

    def ensure_portal(self, spec: PortalSpec, present: bool, test: bool) -> dict:
        raise self.unsupported("target portals")

    def update_target_portal(self, portal: Portal) -> dict:
        raise self.unsupported("target portals")

    def get_targets(self, select: Selector) -> list[dict]:
        raise self.unsupported("targets")

    def connect_target(self, spec: TargetSpec, test: bool) -> dict:
        raise self.unsupported("connections")

    def disconnect_target(self, select: Selector, test: bool) -> dict:
        raise self.unsupported("connections")

    def set_initiator_chap_secret(self, secret: str) -> dict:
        raise self.unsupported("the initiator's CHAP secret")

    def ensure_connected(self, spec: TargetSpec, test: bool, disk_timeout: float) -> dict:
        """Connect as ``spec`` wants; then wait up to ``disk_timeout`` seconds for the disks
        of a session it made ("session up, no disk" is an error). With ``multipath``,
        refused where MPIO does not claim iSCSI disks unless the spec allows it."""
        raise self.unsupported("connections")

    def rescan(self) -> dict:
        """Ask the host to look for new LUNs and disks: ``{"status": "rescanned"}``."""
        raise self.unsupported("rescans")

    def ensure_absent(
        self, targets: list[str], force: bool, keep_portals: list[Portal], test: bool
    ) -> dict:
        raise self.unsupported("connections")


def local_platform(settings: Settings) -> str | None:
    """Which initiator this host has: ``iscsi.backend`` if set, Windows' on Windows,
    open-iscsi where its iscsiadm is found; None when there is none."""
    if settings.backend is not None:
        if settings.backend not in PLATFORMS:
            raise IscsiInputError(
                f"iscsi.backend must be one of {', '.join(PLATFORMS)}, "
                f"not {safe_text(settings.backend)}"
            )
        return settings.backend
    if sys.platform.startswith("win"):
        return WINDOWS
    if find_iscsiadm(settings.iscsiadm):
        return OPEN_ISCSI
    return None


def backend_for(settings: Settings, computer: computers.RemoteComputer | None = None) -> Backend:
    """The backend for ``computer`` (a Windows computer over WinRM) or for this host."""
    # The platform packages subclass Backend, so they are imported here, not at the top.
    from saltext_win_iscsi.openiscsi.backend import OpenIscsiBackend
    from saltext_win_iscsi.windows.backend import WindowsBackend

    if computer is not None:
        return WindowsBackend.remote(settings, computer)
    platform = local_platform(settings)
    if platform == WINDOWS:
        return WindowsBackend.local(settings)
    if platform == OPEN_ISCSI:
        return OpenIscsiBackend.local(settings)
    raise IscsiInputError(NO_INITIATOR)


NO_INITIATOR = (
    "iscsi: found neither Windows' iSCSI initiator nor open-iscsi's iscsiadm (install "
    "open-iscsi, or set iscsi.iscsiadm); to manage Windows hosts from this minion, configure "
    "WinRM profiles (iscsi.winrm)"
)


def describe(settings: Settings) -> str:
    """What manages this host's initiator (``windows``, ``open-iscsi (<iscsiadm>)``), or
    ``none`` on a minion that only manages remote computers."""
    try:
        return backend_for(settings).describe()
    except IscsiInputError:
        return "none"


def available(settings: Settings) -> tuple[bool, str]:
    """Whether this minion has something to manage, and if not, why (``__virtual__``)."""
    try:
        if local_platform(settings) is not None:
            return True, ""
    except IscsiInputError as exc:
        return False, str(exc)
    if settings.winrm:
        if HAS_WINRM:
            return True, ""
        return False, "iscsi: iscsi.winrm is configured but pywinrm is not installed"
    return False, NO_INITIATOR


def run(
    work: Callable[[Backend], Any],
    settings: Settings,
    computer_name: Any = None,
    profile: Any = None,
    throttle_limit: Any = 0,
    failed: Callable[[Any], bool] = lambda result: False,
) -> tuple[Any, bool]:
    """``(result, failed)``: ``work(backend)`` on this host, or on each remote computer
    (a dict by computer name). Profiles (and their sdb:// passwords) are resolved before
    anything connects; one computer's failure does not stop the others."""
    targets = computers.computers(computer_name, profile, settings)
    result, host_failed = computers.on_each(
        targets, throttle_limit, lambda computer: work(backend_for(settings, computer))
    )
    per_host = (
        [result]
        if targets is None
        else [r for r in result.values() if not (isinstance(r, dict) and "error" in r)]
    )
    return result, host_failed or any(failed(r) for r in per_host)
