"""Shared fixtures: the simulated Windows host and the Salt daemons that manage it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from saltfactories.utils import random_string

from tests.support.simhost.model import SimulatedHost
from tests.support.simhost.powershell_standin import install as make_powershell

REPO_ROOT = Path(__file__).resolve().parents[1]
SALT_TREE = REPO_ROOT / "salt"


@pytest.fixture(scope="session")
def salt_factories_config():
    return {
        "code_dir": str(REPO_ROOT),
        "inject_sitecustomize": False,
        "start_timeout": 120 if os.environ.get("CI") else 60,
    }


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


def minion_config(powershell: Path, **extra) -> dict:
    return {
        "file_client": "local",
        "file_roots": {"base": [str(SALT_TREE)]},
        "iscsi.powershell": str(powershell),
        "iscsi.timeout": 10,
        **extra,
    }


@pytest.fixture(scope="package")
def master_id() -> str:
    return random_string("master-")


@pytest.fixture(scope="package")
def minion_id() -> str:
    return random_string("minion-")


# Packages whose tests share package-scoped Salt daemons: each runs whole in one
# pytest-xdist worker (``./dev test`` uses two), other test files a file at a time. The
# daemon packages run first and side by side: they wait on daemons more than they compute,
# so two of them share two cores well; the CPU-bound files fill in after.
# real_initiator comes first: its VM boots make it the longest unit.
DAEMON_PACKAGES = ("real_initiator", "e2e", "integration", "report")
TESTS = Path(__file__).resolve().parent


def _package(path: str) -> str:
    return Path(path).resolve().relative_to(TESTS).parts[0]


def pytest_collection_modifyitems(config, items):
    rank = {name: index for index, name in enumerate(DAEMON_PACKAGES)}
    items.sort(key=lambda item: rank.get(_package(str(item.path)), len(rank)))


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """Our work units for pytest-xdist: a daemon package, or a test file. (``xdist_group``
    markers would say the same, but pytest-xdist 3.8 cannot set them on pytest 9.2's
    node ids.)"""
    from xdist.scheduler import LoadScopeScheduling  # only where xdist runs

    class PackageOrFileScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            package = _package(str(config.rootpath / path))
            return package if package in DAEMON_PACKAGES else path

    return PackageOrFileScheduling(config, log)


def pytest_unconfigure(config):
    """Hand Salt's buffered start-up log records to pytest's handlers while they are open.

    Otherwise Salt flushes them at interpreter exit into a closed stream ("Logging error").
    """
    import salt._logging.impl  # pylint: disable=import-outside-toplevel

    salt._logging.impl.shutdown_temp_handler()
