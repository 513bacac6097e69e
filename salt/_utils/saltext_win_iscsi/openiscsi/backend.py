"""The Linux backend: open-iscsi's real ``iscsiadm`` (argv lists, never a shell) and its
node database, where persistence is a record's ``node.startup``."""

from __future__ import annotations

from typing import Any

from saltext_win_iscsi.backend import OPEN_ISCSI, Backend
from saltext_win_iscsi.config import Settings
from saltext_win_iscsi.openiscsi import persistence
from saltext_win_iscsi.openiscsi.iscsiadm import Iscsiadm, find_iscsiadm
from saltext_win_iscsi.openiscsi.nodedb import OpenIscsiChecker
from saltext_win_iscsi.policy import Policy
from saltext_win_iscsi.selection import Selector
from saltext_win_iscsi.spec import PersistenceSpec


class OpenIscsiBackend(Backend):
    platform = OPEN_ISCSI
    manages = "persistence (node.startup of the node records); see docs/linux.md"

    def __init__(self, adm: Iscsiadm, node_dirs: tuple[str, ...]) -> None:
        self._adm = adm
        self._node_dirs = node_dirs

    @classmethod
    def local(cls, settings: Settings) -> OpenIscsiBackend:
        executable = find_iscsiadm(settings.iscsiadm) or "iscsiadm"
        return cls(Iscsiadm(executable, settings.timeout), settings.node_dirs)

    def describe(self) -> str:
        return f"{OPEN_ISCSI} ({self._adm.executable})"

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
        return persistence.check_policy(self._adm, policy)

    def change_persistence(self, spec: PersistenceSpec, test: bool, passthru: bool) -> Any:
        return persistence.change_persistence(self._adm, spec, test, passthru)

    def remove_persistent_logins(self, select: Selector, test: bool) -> list[dict]:
        return persistence.remove_logins(self._adm, select, test)

    def checker(self) -> OpenIscsiChecker:
        return OpenIscsiChecker(self._adm, self._node_dirs)
