"""Windows-only tests: the real fixed script against the real iSCSI cmdlets.

Skipped unless on Windows with ISCSI_WINDOWS_TESTS=1 and ISCSI_TEST_TARGET naming the IQN of
a target this initiator is connected to (see README.md here). They change that target's
persistence and restore it.
"""

import importlib.util
import os
import sys

import pytest

from tests.conftest import SALT_TREE

if sys.platform != "win32" or os.environ.get("ISCSI_WINDOWS_TESTS") != "1":
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def mod():
    spec = importlib.util.spec_from_file_location(
        "iscsi_windows", SALT_TREE / "_modules" / "iscsi.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def channel(mod):
    ps = os.path.expandvars(r"%SystemRoot%\System32\WindowsPowerShell\v1.0\powershell.exe")
    chan = mod.ProcessChannel(ps, timeout=120)
    yield chan
    chan.close()


@pytest.fixture(scope="session")
def target() -> str:
    iqn = os.environ.get("ISCSI_TEST_TARGET")
    if not iqn:
        pytest.skip("set ISCSI_TEST_TARGET to the IQN of a connected test target")
    return iqn
