"""The in-process runspace channel against a fake of the small .NET surface it uses.

The fake answers through the simulated host, so a request takes the same way as through
powershell.exe. What Windows adds (pythonnet's exception types, a pipeline that will not
stop) is modelled by the fake's switches.
"""

from __future__ import annotations

import base64
import json
import time

import pytest

from saltext_win_iscsi.errors import ChannelError
from saltext_win_iscsi.windows import channels, wire
from saltext_win_iscsi.windows.channels import runspace
from tests.support.simhost.model import SimulatedHost
from tests.support.simhost.powershell_standin import parse_request


class FakeWaitHandle:
    def __init__(self, ps: FakePowerShell) -> None:
        self.ps = ps

    def WaitOne(self, milliseconds: int) -> bool:  # noqa: N802 - .NET name
        self.ps.waited_ms = milliseconds
        return not self.ps.hang


class FakeHandle:
    def __init__(self, ps: FakePowerShell) -> None:
        self.AsyncWaitHandle = FakeWaitHandle(ps)


class PipelineStoppedException(Exception):
    """What pythonnet raises for System.Management.Automation.PipelineStoppedException."""


class FakePowerShell:
    """System.Management.Automation.PowerShell, as far as the channel uses it."""

    def __init__(self, host: SimulatedHost) -> None:
        self.host = host
        self.hang = False
        self.end_raises: Exception | None = None
        self.output: str | None = None  # answer with this text instead of the host's
        self.script = self.argument = self.use_local_scope = None
        self.begin_stop_called = self.disposed = False
        self.waited_ms = None
        self.Commands = type("Commands", (), {"Clear": lambda _self: None})()
        self.Streams = type("Streams", (), {"ClearStreams": lambda _self: None, "Error": []})()

    def AddScript(self, script: str, use_local_scope: bool = False) -> FakePowerShell:  # noqa: N802
        self.script = script
        self.use_local_scope = use_local_scope
        return self

    def AddArgument(self, argument: str) -> FakePowerShell:  # noqa: N802
        self.argument = argument
        return self

    def BeginInvoke(self) -> FakeHandle:  # noqa: N802
        return FakeHandle(self)

    def EndInvoke(self, _handle: FakeHandle) -> list[str]:  # noqa: N802
        if self.end_raises is not None:
            raise self.end_raises
        if self.output is not None:
            return [self.output]
        request, secrets = parse_request(self.argument)
        answer = {"v": wire.PROTOCOL_VERSION, **self.host.handle(request, secrets)}
        return [base64.b64encode(json.dumps(answer).encode()).decode()]

    def Stop(self) -> None:  # noqa: N802
        raise AssertionError("Stop() blocks until a stuck pipeline stops: never call it")

    def BeginStop(self, _callback, _state) -> None:  # noqa: N802
        self.begin_stop_called = True

    def Dispose(self) -> None:  # noqa: N802
        self.disposed = True


class FakeSDK:
    """salt.utils.win_pwsh with pythonnet and the PowerShell SDK present."""

    HAS_CLR = True
    HAS_PWSH_SDK = True

    def __init__(self, host: SimulatedHost) -> None:
        self.ps = FakePowerShell(host)
        sdk = self

        class PowerShellSession:
            def __init__(self) -> None:
                self.ps = sdk.ps

        self.PowerShellSession = PowerShellSession


@pytest.fixture
def sdk(tmp_path) -> FakeSDK:
    return FakeSDK(SimulatedHost(tmp_path / "host.json").reset(sessions=3))


def test_requests_run_the_main_script_with_the_payload_as_argument(sdk):
    channel = runspace.RunspaceChannel(timeout=5, sdk=sdk)
    answer = channel.request({"op": "get_sessions"})
    assert answer["ok"] and len(answer["sessions"]) == 3
    assert sdk.ps.script.startswith("# salt iscsi extension: the main script")
    assert sdk.ps.waited_ms == 5000
    channel.close()
    assert sdk.ps.disposed and not channel.alive


def test_a_timeout_abandons_the_runspace_without_blocking(sdk):
    sdk.ps.hang = True
    channel = runspace.RunspaceChannel(timeout=2, sdk=sdk)
    start = time.monotonic()
    with pytest.raises(ChannelError, match="within 2 s; the runspace was abandoned"):
        channel.request({"op": "get_sessions"})
    assert time.monotonic() - start < 1  # BeginStop returns at once; Stop() would block
    assert sdk.ps.begin_stop_called and not channel.alive
    with pytest.raises(ChannelError, match="abandoned"):
        channel.request({"op": "get_sessions"})


def test_dotnet_exceptions_become_channel_errors(sdk):
    sdk.ps.end_raises = PipelineStoppedException("The pipeline has been stopped.")
    channel = runspace.RunspaceChannel(timeout=5, sdk=sdk)
    with pytest.raises(ChannelError, match="PipelineStoppedException: The pipeline has been"):
        channel.request({"op": "digest"})
    assert not channel.alive


def test_constrained_language_in_the_runspace_is_named(sdk):
    sdk.ps.output = "ISCSI1-LANGUAGE ConstrainedLanguage"
    with pytest.raises(ChannelError, match="ConstrainedLanguage language mode"):
        runspace.RunspaceChannel(timeout=5, sdk=sdk).request({"op": "digest"})


def test_missing_sdk_is_a_clear_error():
    # salt.utils.win_pwsh off Windows: no pythonnet, no PowerShell SDK.
    with pytest.raises(ChannelError, match="pythonnet or the PowerShell SDK is not available"):
        runspace.load_sdk()


def test_the_default_is_a_process_and_killable_callers_never_get_the_runspace(sdk, monkeypatch):
    monkeypatch.delenv("SYSTEMROOT", raising=False)
    default = channels.PowerShellConfig.from_settings(None, 5)
    with pytest.raises(ChannelError, match="PowerShell not found at 'powershell.exe'"):
        channels.open_channel(default)
    configured = channels.PowerShellConfig.from_settings("runspace", 5)
    monkeypatch.setattr(runspace, "load_sdk", lambda: sdk)
    assert isinstance(channels.open_channel(configured), runspace.RunspaceChannel)
    with pytest.raises(ChannelError, match="PowerShell not found at 'powershell.exe'"):
        channels.open_channel(configured, killable=True)


@pytest.mark.parametrize("path", ["pwsh", "pwsh.exe", r"C:\Program Files\PowerShell\7\PWSH.EXE"])
def test_powershell_7_is_refused_with_a_reason(path):
    with pytest.raises(Exception, match=r"PowerShell 7 \(pwsh\) is not supported"):
        channels.PowerShellConfig.from_settings(path, 5)
