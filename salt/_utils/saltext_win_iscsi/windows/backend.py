"""The Windows backend: every operation runs the fixed PowerShell script in one host
session (a process, the in-process runspace, or powershell.exe over WinRM)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

from saltext_win_iscsi import diagnosis
from saltext_win_iscsi.backend import WINDOWS, Backend
from saltext_win_iscsi.computers import RemoteComputer
from saltext_win_iscsi.config import Settings
from saltext_win_iscsi.errors import ChannelError, IscsiError, LanguageModeError
from saltext_win_iscsi.model import Portal
from saltext_win_iscsi.policy import Policy
from saltext_win_iscsi.selection import Selector
from saltext_win_iscsi.spec import PersistenceSpec, PortalSpec, TargetSpec
from saltext_win_iscsi.windows import desired, lifecycle, persistence, readiness
from saltext_win_iscsi.windows.channels import Channel, PowerShellConfig, open_channel
from saltext_win_iscsi.windows.checker import WindowsChecker
from saltext_win_iscsi.windows.hostcall import HostCall
from saltext_win_iscsi.windows.observations import observe


class WindowsBackend(Backend):
    platform = WINDOWS
    manages = "everything: persistence and the initiator's lifecycle"

    def __init__(
        self,
        opener: Callable[[], Channel],
        checker_opener: Callable[[float], Channel],
        where: str,
    ) -> None:
        self._opener = opener
        self._checker_opener = checker_opener
        self._where = where
        self._open: HostCall | None = None

    @classmethod
    def local(cls, settings: Settings) -> WindowsBackend:
        config = PowerShellConfig.from_settings(
            settings.powershell, settings.timeout, settings.script_path
        )
        return cls(
            functools.partial(open_channel, config),
            # The beacon must be able to stop a hung check: a process, never the runspace.
            lambda timeout: open_channel(config, killable=True, timeout=timeout),
            "windows",
        )

    @classmethod
    def remote(cls, settings: Settings, computer: RemoteComputer) -> WindowsBackend:
        # An installed script is this host's; a remote computer gets the script on stdin.
        config = PowerShellConfig.from_settings(settings.powershell, settings.timeout)
        opener = functools.partial(open_channel, config, computer)
        return cls(opener, lambda timeout: opener(), f"windows over WinRM ({computer.name})")

    @contextlib.contextmanager
    def _host(self) -> Iterator[HostCall]:
        """The host session: the one of an enclosing ``session()``, or a new one."""
        if self._open is not None:
            yield self._open
            return
        with HostCall(self._opener) as host:
            self._open = host
            try:
                yield host
            finally:
                self._open = None

    @contextlib.contextmanager
    def session(self) -> Iterator[Backend]:
        with self._host():
            yield self

    def describe(self) -> str:
        return self._where

    def diagnose(self, observations: bool = False) -> dict:
        try:
            with self._host() as host:
                result = diagnosis.windows(host.request("diagnose")["facts"]).result()
                if observations:
                    result["observations"] = self._observations(host)
        except LanguageModeError as exc:
            return diagnosis.windows_unreachable(str(exc), exc.mode).result()
        except ChannelError as exc:
            return diagnosis.windows_unreachable(f"the script did not answer: {exc}").result()
        return result

    @staticmethod
    def _observations(host: HostCall) -> dict | str:
        try:
            return observe(host)
        except IscsiError as exc:  # the iSCSI module or service is not there
            return f"cannot be observed: {exc}"

    def ensure_ready(self, wanted: dict, test: bool) -> dict:
        with self._host() as host:
            return readiness.ensure_ready(host, wanted, test)

    def get_sessions(
        self, select: Selector, connections: bool = False, disks: bool = False
    ) -> list[dict]:
        with self._host() as host:
            found = host.sessions(connections=connections or select.needs_connections, disks=disks)
        return [s for s in found if select(s)]

    def get_persistent_logins(self, select: Selector) -> list[dict]:
        with self._host() as host:
            return [lg for lg in host.logins() if select.selects_login(lg)]

    def check_policy(self, policy: Policy) -> dict:
        with self._host() as host:
            readiness = self.diagnose()["items"] if policy.readiness else None
            return persistence.check_policy(host, policy, readiness)

    def change_persistence(self, spec: PersistenceSpec, test: bool, passthru: bool) -> Any:
        with self._host() as host:
            lifecycle.check_multipath_claim(host, _mpio_asked(spec))
            return persistence.change_persistence(host, spec, test, passthru)

    def remove_persistent_logins(self, select: Selector, test: bool) -> list[dict]:
        with self._host() as host:
            return persistence.remove_logins(host, select, test)

    def checker(self) -> WindowsChecker:
        return WindowsChecker(self._checker_opener)

    # -- the initiator's lifecycle -------------------------------------------------------

    def get_target_portals(self) -> list[dict]:
        with self._host() as host:
            return lifecycle.target_portals(host)

    def add_target_portal(self, spec: PortalSpec, test: bool) -> dict:
        with self._host() as host:
            return lifecycle.add_target_portal(host, spec, test)

    def remove_target_portal(self, portal: Portal, test: bool) -> dict:
        with self._host() as host:
            return lifecycle.remove_target_portal(host, portal, test)

    def update_target_portal(self, portal: Portal) -> dict:
        with self._host() as host:
            return lifecycle.update_target_portal(host, portal)

    def ensure_portal(self, spec: PortalSpec, present: bool, test: bool) -> dict:
        with self._host() as host:
            return desired.ensure_portal(host, spec, present, test)

    def get_targets(self, select: Selector) -> list[dict]:
        with self._host() as host:
            return lifecycle.get_targets(host, select)

    def connect_target(self, spec: TargetSpec, test: bool) -> dict:
        with self._host() as host:
            lifecycle.check_multipath_claim(host, _mpio_asked(spec))
            return lifecycle.connect_target(host, spec, test)

    def disconnect_target(self, select: Selector, test: bool) -> dict:
        with self._host() as host:
            return lifecycle.disconnect_target(host, select, test)

    def set_initiator_chap_secret(self, secret: str) -> dict:
        with self._host() as host:
            return lifecycle.set_initiator_chap_secret(host, secret)

    def ensure_connected(self, spec: TargetSpec, test: bool, disk_timeout: float) -> dict:
        with self._host() as host:
            lifecycle.check_multipath_claim(host, _mpio_asked(spec))
            return desired.ensure_connected(host, spec, test, disk_timeout)

    def rescan(self) -> dict:
        with self._host() as host:
            return lifecycle.rescan(host)

    def ensure_absent(
        self, targets: list[str], force: bool, keep_portals: list[Portal], test: bool
    ) -> dict:
        with self._host() as host:
            return desired.ensure_absent(host, targets, force, keep_portals, test)


def _mpio_asked(spec: PersistenceSpec | TargetSpec) -> bool:
    """Whether the MPIO flag is asked for without the override (registering or connecting)."""
    registers = not isinstance(spec, PersistenceSpec) or spec.persistent
    return registers and spec.multipath and not spec.allow_unclaimed_multipath
