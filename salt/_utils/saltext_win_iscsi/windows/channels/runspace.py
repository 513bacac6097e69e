"""Salt's in-process PowerShell runspace (pythonnet): no process start, opt-in only.

``iscsi.powershell: runspace`` selects it. It is not the default and the beacon never uses
it: a runspace cannot be killed. ``PowerShell.Stop()`` blocks until the pipeline stops, so a
CIM call stuck in the iSCSI service would freeze the caller; on a timeout this channel calls
the non-blocking ``BeginStop`` and abandons the runspace instead. Every .NET failure
(pythonnet raises .NET exceptions as their own Python types) becomes a ChannelError.

The .NET surface used is small: ``salt.utils.win_pwsh.PowerShellSession().ps`` (a
``System.Management.Automation.PowerShell``) with ``Commands.Clear``,
``Streams.ClearStreams``, ``AddScript`` (with ``useLocalScope``), ``AddArgument``, ``BeginInvoke``,
``AsyncWaitHandle.WaitOne``, ``EndInvoke``, ``Streams.Error``, ``BeginStop`` and
``Dispose``; unit tests use a fake of exactly that.
"""

from __future__ import annotations

import contextlib
import threading
from types import ModuleType

from saltext_win_iscsi.errors import ChannelError, safe_text
from saltext_win_iscsi.windows.powershell.scripts import MAIN
from saltext_win_iscsi.windows.protocol import decode_response, encode_request


def load_sdk() -> ModuleType:
    """Salt's PowerShell SDK support, or ChannelError naming what is missing."""
    try:
        import salt.utils.win_pwsh as win_pwsh  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise ChannelError("iSCSI: this Salt has no salt.utils.win_pwsh (runspace)") from exc
    if not (getattr(win_pwsh, "HAS_CLR", False) and getattr(win_pwsh, "HAS_PWSH_SDK", False)):
        raise ChannelError(
            "iSCSI: iscsi.powershell is 'runspace' but pythonnet or the PowerShell SDK is not "
            "available to Salt; unset iscsi.powershell to use powershell.exe"
        )
    return win_pwsh


def _net_error(what: str, exc: BaseException) -> ChannelError:
    return ChannelError(
        f"iSCSI: the in-process runspace failed to {what}: {type(exc).__name__}: {exc}"
    )


def _dispose_quietly(ps) -> None:
    with contextlib.suppress(Exception):
        ps.Dispose()


class RunspaceChannel:
    """One in-process runspace running the main script once per request."""

    def __init__(self, timeout: float, sdk: ModuleType | None = None) -> None:
        self.timeout = timeout
        sdk = sdk or load_sdk()
        try:
            self._session = sdk.PowerShellSession()
            self._ps = self._session.ps
        except Exception as exc:  # pylint: disable=broad-except
            raise _net_error("start", exc) from None

    def request(self, request: dict, secrets: dict[str, str] | None = None) -> dict:
        """Run the main script on one request and return its response."""
        ps = self._ps
        if ps is None:
            raise ChannelError("iSCSI: the in-process runspace was abandoned after a timeout")
        try:
            ps.Commands.Clear()
            ps.Streams.ClearStreams()
            # Local scope: AddScript(text) alone runs in the global scope, where the
            # request's variables (its decoded CHAP secret) would outlive the call.
            ps.AddScript(MAIN, True).AddArgument(encode_request(request, secrets))
            handle = ps.BeginInvoke()
            finished = handle.AsyncWaitHandle.WaitOne(int(self.timeout * 1000))
        except Exception as exc:  # pylint: disable=broad-except
            self.kill()
            raise _net_error(f"run '{request.get('op')}'", exc) from None
        if not finished:
            self.kill()
            raise ChannelError(
                f"iSCSI: PowerShell did not answer '{request.get('op')}' within "
                f"{self.timeout:g} s; the runspace was abandoned (an in-process call cannot "
                "be interrupted)"
            )
        try:
            results = [str(r) for r in ps.EndInvoke(handle)]
            errors = [str(e) for e in ps.Streams.Error]
        except Exception as exc:  # pylint: disable=broad-except
            self.kill()
            raise _net_error(f"finish '{request.get('op')}'", exc) from None
        if not results:
            raise ChannelError(
                "iSCSI: PowerShell returned no response"
                + (f": {safe_text(str(errors[0]).strip())}" if errors else "")
            )
        return decode_response(results[-1])

    def close(self) -> None:
        ps, self._ps = self._ps, None
        if ps is not None:
            try:
                ps.Dispose()
            except Exception as exc:  # pylint: disable=broad-except
                raise _net_error("close", exc) from None

    def kill(self) -> None:
        """Abandon the runspace without waiting: BeginStop, then Dispose off-thread."""
        ps, self._ps = self._ps, None
        if ps is None:
            return
        with contextlib.suppress(Exception):
            ps.BeginStop(None, None)
        threading.Thread(target=_dispose_quietly, args=(ps,), daemon=True).start()

    @property
    def alive(self) -> bool:
        return self._ps is not None
