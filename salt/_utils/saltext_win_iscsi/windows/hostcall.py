"""One call against a host: one channel, and a journal of what it changed.

Any error raised inside, or while closing the channel, names what had already been
changed, so a failure half-way through is never silent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from saltext_win_iscsi.errors import IscsiError
from saltext_win_iscsi.windows.channels import Channel
from saltext_win_iscsi.windows.protocol import describe_windows_error


class HostCall:
    """``with HostCall(open_channel) as host: host.request(...)``.

    With ``keep_open`` the channel survives a successful call (``.channel``) so that the
    next call can reuse it (the beacon); on error it is always stopped.
    """

    def __init__(
        self,
        opener: Callable[[], Channel],
        channel: Channel | None = None,
        keep_open: bool = False,
    ) -> None:
        self.done: list[str] = []
        self.channel = channel
        self._opener = opener
        self._keep_open = keep_open

    def __enter__(self) -> HostCall:
        if self.channel is None or not self.channel.alive:
            self.channel = self._opener()
        return self

    @property
    def _live(self) -> Channel:
        if self.channel is None:
            raise IscsiError("iSCSI: no PowerShell channel: HostCall is used outside 'with'")
        return self.channel

    def __exit__(self, exc_type, exc, _traceback) -> None:
        try:
            if exc is not None:
                self._live.kill()
            elif not self._keep_open:
                self._live.close()
        except IscsiError as err:
            exc = err
        if isinstance(exc, IscsiError) and self.done:
            raise IscsiError(f"{exc}; already done: {', '.join(self.done)}") from exc
        if exc is not None and exc_type is None:
            raise exc

    def request(self, op: str, secrets: dict[str, str] | None = None, **fields: Any) -> dict:
        """One request; an answer with ``ok: false`` raises with Windows' error."""
        response = self._live.request({"op": op, **fields}, secrets)
        if not response.get("ok"):
            raise IscsiError(
                f"iSCSI: '{op}' failed: {describe_windows_error(response.get('error') or {})}"
            )
        return response

    def sessions(self, connections: bool = False, disks: bool = False) -> list[dict]:
        return self.request("get_sessions", connections=connections, disks=disks)["sessions"]

    def logins(self) -> list[dict]:
        return self.request("get_persistent_logins")["logins"]

    def per_session(
        self, op: str, ids: list[str], secrets: dict[str, str] | None = None, **fields: Any
    ) -> dict[str, dict | None]:
        """Run a per-session op; map each id to its Windows error, or None on success."""
        if not ids:
            return {}
        results = self.request(op, secrets, ids=ids, **fields)["results"]
        outcome = {
            item["id"]: (None if item.get("ok") else item.get("error") or {}) for item in results
        }
        self.done.extend(f"{op} {sid}" for sid, error in outcome.items() if error is None)
        return outcome
