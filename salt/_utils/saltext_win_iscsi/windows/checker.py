"""The beacon's check on Windows: a PowerShell kept open between checks, a digest
request per check, the sessions and logins only when the digest changed."""

from __future__ import annotations

from collections.abc import Callable

from saltext_win_iscsi import diagnosis
from saltext_win_iscsi.beacon.monitor import Scope, Snapshot
from saltext_win_iscsi.windows.channels import Channel
from saltext_win_iscsi.windows.hostcall import HostCall


class WindowsChecker:
    """``monitor.Checker`` for a Windows host."""

    def __init__(self, opener: Callable[[float], Channel]) -> None:
        self._opener = opener  # opener(timeout) -> a killable channel
        self._channel: Channel | None = None

    def look(
        self, previous_digest: str | None, scope: Scope, timeout: float
    ) -> tuple[str, Snapshot | None]:
        try:
            with HostCall(lambda: self._opener(timeout), self._channel, keep_open=True) as host:
                digest = host.request("digest", sessions=scope.sessions)["digest"]
                snapshot = None
                if digest != previous_digest:
                    snapshot = Snapshot(host.sessions(connections=scope.connections), host.logins())
        except BaseException:
            self._channel = None  # HostCall stopped it
            raise
        self._channel = host.channel
        return digest, snapshot

    def readiness(self, timeout: float) -> dict[str, dict]:
        try:
            with HostCall(lambda: self._opener(timeout), self._channel, keep_open=True) as host:
                facts = host.request("diagnose")["facts"]
        except BaseException:
            self._channel = None
            raise
        self._channel = host.channel
        return diagnosis.windows(facts).items

    def close(self) -> None:
        if self._channel is not None:
            self._channel.kill()
            self._channel = None
