"""pywinrm is imported only when a remote computer is managed: a local job does not pay
for it (with requests, some 0.2 s of CPU in each job process), and its absence is a clear
error only where it is needed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from saltext_win_iscsi.computers import RemoteComputer
from saltext_win_iscsi.errors import ChannelError
from saltext_win_iscsi.windows.channels import winrm as winrm_channel
from tests.conftest import REPO_ROOT


def test_the_library_and_its_loader_imports_leave_pywinrm_and_requests_out():
    probe = (
        "import sys\n"
        "import saltext_win_iscsi.backend, saltext_win_iscsi.beacon.monitor\n"
        "print(sorted(m for m in ('winrm', 'requests') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO_ROOT,
        env={"PYTHONPATH": str(REPO_ROOT / "salt" / "_utils")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "[]", out


def test_without_pywinrm_a_remote_computer_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(winrm_channel, "HAS_WINRM", False)
    remote = RemoteComputer("win1", "default", {})
    with pytest.raises(ChannelError, match=r"remote computers need pywinrm"):
        winrm_channel.WinRMChannel(remote, 5)


def test_a_pywinrm_that_cannot_be_imported_is_a_clear_error(monkeypatch):
    def broken():
        raise ImportError("No module named 'requests_ntlm'")

    monkeypatch.setattr(winrm_channel, "HAS_WINRM", True)
    monkeypatch.setattr(winrm_channel, "_pywinrm", broken)
    remote = RemoteComputer("win1", "default", {})
    with pytest.raises(ChannelError, match=r"pywinrm is installed but cannot be imported"):
        winrm_channel.WinRMChannel(remote, 5)
