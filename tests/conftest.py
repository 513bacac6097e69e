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


def pytest_unconfigure(config):
    """Hand Salt's buffered start-up log records to pytest's handlers while they are open.

    Otherwise Salt flushes them at interpreter exit into a closed stream ("Logging error").
    """
    import salt._logging.impl  # pylint: disable=import-outside-toplevel

    salt._logging.impl.shutdown_temp_handler()
