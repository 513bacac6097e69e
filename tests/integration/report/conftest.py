"""Fleet report: one master (with the reactor) and four minions, each with its own
simulated Windows host, started once for the whole package.

| minion | host |
| --- | --- |
| compliant | sessions to the watched target, none persistent; a persistent session that is allowed |
| violating | the seed's three persistent sessions, a session to a target that must be absent, a persistent login with no session |
| faulty | the iSCSI service is stopped: every PowerShell call fails |
| stopped | started, accepted, then stopped: expected, but it never answers |
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest
from saltfactories.utils import random_string

from tests.conftest import master_config, minion_config
from tests.support import daemons, waiting
from tests.support.local_client import sync_master
from tests.support.simhost.model import SEED_TARGET, SimulatedHost
from tests.support.simhost.powershell_standin import install
from tests.support.trees import Trees

REACTOR = "salt://reactor/iscsi_enforce.sls"
ABSENT_TARGET = "iqn.1991-05.com.contoso:old-archive"
ALLOWED = "iqn.1991-05.com.contoso:db-01"
OFFLINE = "iqn.1991-05.com.contoso:testiscsi-offline"
POLICY = {
    "iscsi": {
        "policy": {
            "not_persistent": [{"target": "iqn.1991-05.com.contoso:testiscsi-*"}],
            "absent": [{"target": "iqn.1991-05.com.contoso:old-*"}],
        }
    }
}
RULES = ["iscsi-policy-not-persistent-1", "iscsi-policy-absent-1"]
ROLES = ("compliant", "violating", "faulty", "stopped")
TIMEOUT = 5  # seconds the report waits before asking late minions (a down one costs this + 5)
LIMIT = 90


def wait_for(predicate, timeout: float = LIMIT, step: float = 0.2) -> float:
    """Seconds until predicate() held; fails the test after ``timeout``."""
    return waiting.wait_for(predicate, timeout, step)


@pytest.fixture(scope="package")
def fleet_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fleet")


@pytest.fixture(scope="package")
def fleet_trees(fleet_dir) -> Trees:
    return Trees(fleet_dir / "trees", POLICY)


@pytest.fixture(scope="package")
def fleet_hosts(fleet_dir) -> dict[str, SimulatedHost]:
    return {role: SimulatedHost(fleet_dir / f"{role}.json") for role in ROLES}


def shape(hosts: dict[str, SimulatedHost]) -> None:
    """Every host as in the module docstring."""
    compliant = hosts["compliant"].reset()
    for _ in range(2):
        compliant.add_session(SEED_TARGET)
    compliant.add_session(ALLOWED, persistent=True)
    violating = hosts["violating"].reset(sessions=3)
    violating.add_session(ABSENT_TARGET, portal="10.0.7.1")
    violating.add_persistent_login(OFFLINE, portal="10.0.9.9")
    hosts["faulty"].reset(sessions=1).set_fault("service_stopped", True)
    hosts["stopped"].reset()


@pytest.fixture(scope="package")
def fleet_master(salt_factories, fleet_trees):
    factory = salt_factories.salt_master_daemon(
        random_string("fleet-master-"),
        overrides={
            **master_config(),
            **fleet_trees.master_config(),
            "reactor": [{"salt/beacon/*/iscsi/violation": [REACTOR]}],
            "timeout": TIMEOUT,
            "gather_job_timeout": 5,
        },
    )
    with daemons.running(factory):
        assert "runners.iscsi" in sync_master(factory.config_file)
        yield factory


@pytest.fixture(scope="package")
def fleet(fleet_master, fleet_dir, fleet_hosts):
    """role -> minion factory; the stopped one is no longer running."""
    shape(fleet_hosts)
    factories = {}
    for role in ROLES:
        overrides = minion_config(install(fleet_dir / f"bin-{role}", fleet_hosts[role].path))
        overrides.pop("file_client")
        overrides.pop("file_roots")
        factories[role] = fleet_master.salt_minion_daemon(
            random_string(f"win-{role}-"), overrides=overrides
        )
    try:
        # Started side by side: each start mostly waits for the minion to authenticate.
        with concurrent.futures.ThreadPoolExecutor(len(factories)) as pool:
            for started in pool.map(lambda f: f.start(), factories.values()):
                assert started
        ret = fleet_master.salt_cli(timeout=120).run("saltutil.sync_all", minion_tgt="*")
        assert ret.returncode == 0, ret
        assert set(ret.data) == {f.id for f in factories.values()}, ret
        factories["stopped"].terminate()
        yield factories
    finally:
        with concurrent.futures.ThreadPoolExecutor(len(factories)) as pool:
            list(pool.map(daemons.stop, factories.values()))


@pytest.fixture(scope="package")
def salt_run(fleet_master):
    return fleet_master.salt_run_cli(timeout=180)


@pytest.fixture(scope="package")
def ids(fleet) -> dict[str, str]:
    return {role: factory.id for role, factory in fleet.items()}
