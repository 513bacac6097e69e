"""Shared fixtures: the simulated Windows host and the Salt daemons that manage it."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from saltfactories.utils import random_string

from tests.support import ports, report_tools
from tests.support.simhost.model import SimulatedHost
from tests.support.simhost.powershell_standin import install as make_powershell

REPO_ROOT = Path(__file__).resolve().parents[1]
SALT_TREE = REPO_ROOT / "salt"


@pytest.fixture(scope="session")
def salt_factories_config(request):
    """The test daemons' folders in one folder of this session's (salt-factories' default
    leaves them in /tmp), removed at the end unless a test failed (their logs tell why).
    Under /tmp, not pytest's deeper tmp_path: Salt's AF_UNIX socket paths must stay within
    108 bytes."""
    root = Path(tempfile.mkdtemp(prefix="saltext-iscsi-"))
    yield {
        "code_dir": str(REPO_ROOT),
        "inject_sitecustomize": False,
        "start_timeout": 120 if os.environ.get("CI") else 60,
        "root_dir": root,
    }
    if request.session.testsfailed:
        print(f"\nthe test daemons' folders are kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="package")
def host_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("simhost")


@pytest.fixture(scope="package")
def host(host_dir) -> SimulatedHost:
    """The simulated Windows host the package's minion manages (reset per test)."""
    return SimulatedHost(host_dir / "state.json").reset(sessions=3)


@pytest.fixture(scope="package")
def powershell(host_dir, host) -> Path:
    return make_powershell(host_dir / "bin", host.path)


@pytest.fixture
def seeded(host) -> SimulatedHost:
    """The host as in the seed's example: three persistent sessions to one target."""
    return host.reset(sessions=3)


def master_config() -> dict:
    """Every test master's: loopback only, on ports no other socket can take
    (tests/support/ports.py); minion keys accepted as they come (salt-factories would
    otherwise run a salt-key process for each new minion); three request workers, Salt's
    least, instead of its five: each loads the master's modules and grains as it starts
    (some 2.5 CPU-seconds), and a test master serves a handful of minions."""
    return {
        "interface": "127.0.0.1",
        **ports.master_ports(),
        "auto_accept": True,
        "worker_threads": 3,
    }


def minion_config(powershell: Path, **extra) -> dict:
    """A minion managing the simulated Windows host (this machine may have open-iscsi)."""
    return {
        "file_client": "local",
        "file_roots": {"base": [str(SALT_TREE)]},
        "iscsi.backend": "windows",
        "iscsi.powershell": str(powershell),
        "iscsi.timeout": 10,
        **extra,
    }


@pytest.fixture(scope="session")
def junit_validate(tmp_path_factory):
    """Validate JUnit XML against pytest's junit-10.xsd (the fleet report's output)."""
    return report_tools.validator(report_tools.junit_schema(tmp_path_factory.mktemp("xsd")))


@pytest.fixture(scope="session")
def browser(tmp_path_factory) -> report_tools.Browser:
    """Headless Chromium reading back the fleet report's HTML page."""
    return report_tools.Browser(report_tools.chromium(), tmp_path_factory.mktemp("chromium"))


@pytest.fixture(scope="package")
def master_id() -> str:
    return random_string("master-")


@pytest.fixture(scope="package")
def minion_id() -> str:
    return random_string("minion-")


# Work units for pytest-xdist (``./dev test`` runs two workers): the daemon packages under
# tests/integration each run whole in one worker (their tests share package-scoped Salt
# daemons), first and side by side, since they wait on daemons more than they compute; the
# CPU-bound files fill in after, a file at a time.
TESTS = Path(__file__).resolve().parent
INTEGRATION = TESTS / "integration"


# The VM tests are the longest path: they make two units, each worker boots its own VM
# and starts its own daemons for its half (these modules; about half the time each).
REAL_INITIATOR = "real_initiator"
SECOND_VM = {
    "test_fleet_report.py",
    "test_formula.py",
    "test_mixed_fleet.py",
    "test_persistence_reboot.py",
    "test_records.py",
    "test_sessions.py",
}


def work_unit(path: str) -> str:
    """``integration/<package>`` (or ``integration`` for its own files; the VM package's
    modules ``integration/real_initiator/1`` or ``/2``), else the file."""
    resolved = Path(path).resolve()
    if INTEGRATION not in resolved.parents:
        return str(resolved.relative_to(TESTS))
    parts = resolved.relative_to(INTEGRATION).parts
    if parts[0] == REAL_INITIATOR:
        return f"integration/{REAL_INITIATOR}/{2 if parts[-1] in SECOND_VM else 1}"
    return "integration" + (f"/{parts[0]}" if len(parts) > 1 else "")


def _rank(item) -> int:
    """The VM units first (their boots), then the other daemon packages, then the rest."""
    unit = work_unit(str(item.path))
    if unit.startswith(f"integration/{REAL_INITIATOR}/"):
        return 0
    return 1 if unit.startswith("integration") else 2


def pytest_collection_modifyitems(config, items):
    items.sort(key=_rank)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """Our work units for pytest-xdist. (``xdist_group`` markers would say the same, but
    pytest-xdist 3.8 cannot set them on pytest 9.2's node ids.)"""
    from xdist.scheduler import LoadScopeScheduling  # only where xdist runs

    class WorkUnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(str(config.rootpath / nodeid.split("::", 1)[0]))

    return WorkUnitScheduling(config, log)


def pytest_unconfigure(config):
    """Hand Salt's buffered start-up log records to pytest's handlers while they are open.

    Otherwise Salt flushes them at interpreter exit into a closed stream ("Logging error").
    """
    import salt._logging.impl

    salt._logging.impl.shutdown_temp_handler()
