"""The Linux backend: open-iscsi's real ``iscsiadm`` (argv lists, never a shell) and its
node database, where persistence is a record's ``node.startup``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from saltext_win_iscsi import diagnosis
from saltext_win_iscsi.backend import OPEN_ISCSI, Backend
from saltext_win_iscsi.config import DEFAULT_ISCSID_CONF, Settings
from saltext_win_iscsi.errors import IscsiInputError
from saltext_win_iscsi.model import Portal
from saltext_win_iscsi.openiscsi import defaults, desired, lifecycle, persistence, readiness
from saltext_win_iscsi.openiscsi.defaults import initiator_defaults, rediscovery_warning
from saltext_win_iscsi.openiscsi.iscsiadm import Iscsiadm, find_iscsiadm
from saltext_win_iscsi.openiscsi.lifecycle import Host
from saltext_win_iscsi.openiscsi.nodedb import OpenIscsiChecker
from saltext_win_iscsi.openiscsi.readiness import Programs
from saltext_win_iscsi.policy import Policy
from saltext_win_iscsi.selection import Selector
from saltext_win_iscsi.spec import PersistenceSpec, PortalSpec, TargetSpec


class OpenIscsiBackend(Backend):
    platform = OPEN_ISCSI
    manages = "persistence, discovery records, node records and logins; see docs/linux.md"

    def __init__(
        self,
        adm: Iscsiadm,
        node_dirs: tuple[str, ...],
        iscsid_conf: str = DEFAULT_ISCSID_CONF,
        lsblk: str | None = None,
        programs: Programs | None = None,
    ) -> None:
        self._adm = adm
        self._programs = programs or Programs(None, None, adm.timeout)
        self._node_dirs = node_dirs
        self._iscsid_conf = iscsid_conf
        self._lsblk = lsblk
        self._host = Host(adm, node_dirs)

    @classmethod
    def local(cls, settings: Settings) -> OpenIscsiBackend:
        executable = find_iscsiadm(settings.iscsiadm) or "iscsiadm"
        adm = Iscsiadm(executable, settings.timeout)
        programs = Programs(settings.systemctl, settings.pidof, settings.timeout)
        return cls(adm, settings.node_dirs, settings.iscsid_conf, settings.lsblk, programs)

    def describe(self) -> str:
        return f"{OPEN_ISCSI} ({self._adm.executable})"

    def diagnose(self, observations: bool = False) -> dict:
        result = diagnosis.linux(readiness.facts(self._iscsid_conf, self._programs)).result()
        if observations:
            result["observations"] = "only Windows hosts have observations for the simulator"
        return result

    def ensure_ready(self, wanted: dict, test: bool) -> dict:
        return readiness.ensure_ready(self._iscsid_conf, self._programs, wanted, test)

    def get_sessions(
        self, select: Selector, connections: bool = False, disks: bool = False
    ) -> list[dict]:
        # Connections are always there (iscsiadm -m session -P 3 prints them); so are the
        # disks behind a session (AttachedDisks).
        return [s for s in persistence.read_sessions(self._adm) if select(s)]

    def get_persistent_logins(self, select: Selector) -> list[dict]:
        logins = persistence.logins_of(persistence.read_records(self._adm))
        return [lg for lg in logins if select.selects_login(lg)]

    def check_policy(self, policy: Policy) -> dict:
        records = persistence.read_records(self._adm)
        sessions = persistence.read_sessions(self._adm, records)
        defaults = initiator_defaults(self._iscsid_conf)
        readiness = self.diagnose()["items"] if policy.readiness else None
        return policy.check(sessions, persistence.logins_of(records), defaults, readiness)

    def change_persistence(self, spec: PersistenceSpec, test: bool, passthru: bool) -> Any:
        report = persistence.change_persistence(self._adm, spec, test, passthru)
        if not spec.persistent and isinstance(report, dict):
            self._warn(report.values(), ("unregistered", "not_persistent", "would_unregister"))
        return report

    def remove_persistent_logins(self, select: Selector, test: bool) -> list[dict]:
        report = persistence.remove_logins(self._adm, select, test)
        self._warn(report, ("removed", "would_remove"))
        return report

    def _warn(self, entries: Iterable[dict], statuses: tuple[str, ...]) -> None:
        """Say where iscsid.conf's default would undo what was (or is) not persistent."""
        warning = rediscovery_warning(self._iscsid_conf)
        for entry in entries:
            if warning and entry.get("status") in statuses:
                entry["warning"] = warning

    def ensure_defaults(self, wanted: dict[str, str], test: bool) -> dict:
        return defaults.ensure_defaults(self._iscsid_conf, wanted, test)

    def checker(self) -> OpenIscsiChecker:
        return OpenIscsiChecker(self._adm, self._node_dirs, self._iscsid_conf, self._programs)

    # -- the initiator's lifecycle -------------------------------------------------------

    def get_target_portals(self) -> list[dict]:
        return lifecycle.portals(self._host)

    def add_target_portal(self, spec: PortalSpec, test: bool) -> dict:
        return lifecycle.add_target_portal(self._host, spec, test)

    def remove_target_portal(self, portal: Portal, test: bool) -> dict:
        return lifecycle.remove_target_portal(self._host, portal, test)

    def update_target_portal(self, portal: Portal) -> dict:
        return lifecycle.update_target_portal(self._host, portal)

    def ensure_portal(self, spec: PortalSpec, present: bool, test: bool) -> dict:
        return desired.ensure_portal(self._host, spec, present, test)

    def get_targets(self, select: Selector) -> list[dict]:
        return lifecycle.targets(self._host, select)

    def connect_target(self, spec: TargetSpec, test: bool) -> dict:
        return lifecycle.connect_target(self._host, spec, test)

    def disconnect_target(self, select: Selector, test: bool) -> dict:
        return lifecycle.disconnect_target(self._host, select, test)

    def set_initiator_chap_secret(self, secret: str) -> dict:
        raise IscsiInputError(
            "iscsi: open-iscsi has no initiator-wide CHAP secret: the secret a target "
            "answers with in mutual CHAP is a setting of each node record; give "
            "initiator_chap_secret to iscsi.connected (or iscsi.ensure_connected)"
        )

    def ensure_connected(self, spec: TargetSpec, test: bool, disk_timeout: float) -> dict:
        # No MPIO claim to check: open-iscsi logs in the same with or without multipath;
        # dm-multipath claims disks by its own configuration, which this extension leaves
        # alone (docs/linux.md).
        return desired.ensure_connected(self._host, spec, test, disk_timeout)

    def rescan(self) -> dict:
        self._adm.rescan()
        return {"status": "rescanned"}

    def ensure_absent(
        self, targets: list[str], force: bool, keep_portals: list[Portal], test: bool
    ) -> dict:
        return desired.ensure_absent(self._host, targets, force, keep_portals, self._lsblk, test)
