"""Windows-only tests: the real fixed script against the real iSCSI cmdlets.

Skipped unless on Windows with ISCSI_WINDOWS_TESTS=1 and ISCSI_TEST_TARGET naming the IQN of
a target this initiator is connected to (see README.md here). They change that target's
persistence and restore it.
"""

import os
import sys

import pytest

from saltext_win_iscsi import protocol
from saltext_win_iscsi.channels import ProcessChannel, default_powershell

if sys.platform != "win32" or os.environ.get("ISCSI_WINDOWS_TESTS") != "1":
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def mod():
    """The wire-format facts (field lists, error helpers) the tests check against."""
    return protocol


@pytest.fixture
def channel():
    chan = ProcessChannel(default_powershell(), timeout=120)
    yield chan
    chan.close()


@pytest.fixture(scope="session")
def target() -> str:
    iqn = os.environ.get("ISCSI_TEST_TARGET")
    if not iqn:
        pytest.skip("set ISCSI_TEST_TARGET to the IQN of a connected test target")
    return iqn
