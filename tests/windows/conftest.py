"""Windows-only tests: the fixed script against the real iSCSI initiator (see README.md here).

They run on Windows once ``setup-target.ps1`` has made a loopback target (or with
``ISCSI_TEST_TARGET`` and ``ISCSI_TEST_PORTAL`` naming one); anywhere else every test is
skipped with the reason. Each test connects the sessions it needs and leaves no session and
no persistent login of the test target behind; tests that stop a service start it again.
Tests that use ``channel`` run through both local channels: powershell.exe and the
in-process runspace (``ISCSI_REQUIRE_RUNSPACE=1``: fail, not skip, when it cannot load).
``ISCSI_WINDOWS_REQUIRED=1`` (CI): refuse to run rather than skip everything.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from saltext_win_iscsi.errors import ChannelError
from saltext_win_iscsi.windows import protocol
from saltext_win_iscsi.windows.channels import ProcessChannel, RunspaceChannel, default_powershell
from tests.windows import hostactions
from tests.windows.recorder import Recorder
from tests.windows.twin import Twin

HERE = Path(__file__).resolve().parent
TIMEOUT = 120.0
KINDS = ("process", "runspace")


def _skip_reason() -> str | None:
    if sys.platform != "win32":
        return "Windows only: the real iSCSI initiator (elsewhere tests/support/simhost stands in)"
    if hostactions.find_target() is None:
        return (
            "no test target: run tests\\windows\\setup-target.ps1 (elevated) first, or set "
            "ISCSI_TEST_TARGET and ISCSI_TEST_PORTAL"
        )
    return None


def pytest_collection_modifyitems(config, items):
    mine = [item for item in items if HERE in Path(str(item.path)).parents]
    reason = _skip_reason()
    if mine and reason and os.environ.get("ISCSI_WINDOWS_REQUIRED") == "1":
        # CI: a suite that skips itself must not pass as green.
        raise pytest.UsageError(
            f"ISCSI_WINDOWS_REQUIRED=1, but the Windows tests cannot run: {reason}"
        )
    for item in mine:
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))
    # Tests that stop MSiSCSI or WinTarget go last: a failed restart spoils less.
    disruptive = [item for item in mine if item.get_closest_marker("disruptive")]
    for item in disruptive:
        items.remove(item)
    items.extend(disruptive)


@pytest.fixture(scope="session")
def mod():
    """The wire-format facts (field lists, error helpers) the tests check against."""
    return protocol


@pytest.fixture(scope="session")
def target() -> dict:
    return hostactions.find_target()


@pytest.fixture(scope="session")
def recorder() -> Recorder:
    return Recorder(hostactions.act("windows_info"))


def open_channel(kind: str, timeout: float = TIMEOUT):
    if kind == "process":
        return ProcessChannel(default_powershell(), timeout)
    try:
        return RunspaceChannel(timeout)
    except ChannelError as exc:
        if os.environ.get("ISCSI_REQUIRE_RUNSPACE") == "1":
            raise
        pytest.skip(f"runspace channel unavailable: {exc}")


@pytest.fixture(params=KINDS)
def kind(request) -> str:
    return request.param


@pytest.fixture
def make_channel(kind):
    """Opens channels of this test's kind; closes (or kills) them afterwards."""
    opened = []

    def _open(timeout: float = TIMEOUT):
        channel = open_channel(kind, timeout)
        opened.append(channel)
        return channel

    yield _open
    for channel in opened:
        if channel.alive:
            channel.kill()


@pytest.fixture
def channel(make_channel):
    return make_channel()


@pytest.fixture
def twin(channel, kind, recorder, tmp_path, request) -> Twin:
    return Twin(channel, kind, recorder, tmp_path, request.node.name)


@pytest.fixture(autouse=True)
def restore_host(request):
    """After each test: both services running, no session or login of the target left."""
    yield
    if _skip_reason():
        return
    target = hostactions.find_target()
    for service in ("MSiSCSI", "WinTarget"):
        hostactions.act("service", name=service, state="start")
    hostactions.retry("clean-up", lambda: hostactions.cleanup(target))


@pytest.fixture
def session(target) -> str:
    """A fresh, non-persistent session to the test target, made with its portal."""
    return hostactions.connect(target)["SessionIdentifier"]
