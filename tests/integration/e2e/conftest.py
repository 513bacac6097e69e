"""End to end: master with the reactor, minion with the beacon, their own simulated host."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from saltfactories.utils import random_string

from tests.conftest import master_config, minion_config
from tests.support import daemons, events, waiting
from tests.support.local_client import LocalCli, sync_beacon
from tests.support.simhost.model import SimulatedHost
from tests.support.simhost.powershell_standin import install
from tests.support.trees import Trees

BEACON_INTERVAL = 1
BACKOFF_MAX = 4  # seconds: short, so that the tests see several attempts
READINESS_EVERY = 3  # checks (the default is 30): a readiness drift is seen in seconds
REACTOR = "salt://reactor/iscsi_enforce.sls"
WATCHED = "iqn.1991-05.com.contoso:testiscsi-deepcore-target"
ALLOWED = "iqn.1991-05.com.contoso:db-01"
EXCEPTED = "iqn.1991-05.com.contoso:testiscsi-keep"
POLICY = {
    "iscsi": {"policy": {"not_persistent": [{"target": "*:testiscsi-*"}], "exceptions": [EXCEPTED]}}
}
LIMIT = 60  # seconds: far above the expected few, so that a slow CI machine is no failure


def wait_for(predicate, timeout: float = LIMIT, step: float = 0.05) -> float:
    """Seconds until predicate() held; fails the test after ``timeout``."""
    return waiting.wait_for(predicate, timeout, step)


@pytest.fixture(scope="package")
def loop_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="package")
def loop_trees(loop_dir) -> Trees:
    return Trees(loop_dir / "trees", POLICY)


@pytest.fixture(scope="package")
def loop_host(loop_dir) -> SimulatedHost:
    return SimulatedHost(loop_dir / "host.json").reset()


@pytest.fixture(scope="package")
def loop_master(salt_factories, loop_trees):
    factory = salt_factories.salt_master_daemon(
        random_string("loop-master-"),
        overrides={
            **master_config(),
            **loop_trees.master_config(),
            "reactor": [{"salt/beacon/*/iscsi/violation": [REACTOR]}],
        },
    )
    with daemons.running(factory):
        yield factory


@pytest.fixture(scope="package")
def loop_minion(loop_master, loop_dir, loop_host):
    overrides = minion_config(install(loop_dir / "bin", loop_host.path))
    overrides.pop("file_client")
    overrides.pop("file_roots")
    # Salt's default; salt-factories uses 0.05, and a beacon's interval counts
    # process calls (about one a second) times loop_interval.
    overrides["loop_interval"] = 1
    overrides["beacons"] = {
        "iscsi": [
            {"interval": BEACON_INTERVAL},
            {"backoff_max": BACKOFF_MAX},
            {"readiness_every": READINESS_EVERY},
        ]
    }
    overrides["log_level_logfile"] = "info"
    factory = loop_master.salt_minion_daemon(random_string("loop-minion-"), overrides=overrides)
    with daemons.running(factory):
        sync_beacon(loop_master.config, factory.id)
        # The new beacon's first check is its baseline: a registration it finds there is
        # no news (its violation is still reported). Once a second check has begun, the
        # first is over, and what a test registers is news.
        checks = beacon_checks(loop_host)

        def second_check():
            """the refreshed beacon's second check began"""
            return beacon_checks(loop_host) >= checks + 2

        wait_for(second_check)
        yield factory


def beacon_checks(host: SimulatedHost) -> int:
    """The beacon's checks of ``host`` so far: one digest request each."""
    return host.stats()["requests"].get("digest", 0)


@pytest.fixture(scope="package")
def loop_call(loop_master, loop_minion) -> LocalCli:
    """Jobs on the loop minion (``salt <minion> ...``), run by its daemon."""
    return LocalCli(loop_master.config, timeout=60, minion_tgt=loop_minion.id)


@pytest.fixture(scope="package")
def set_loop_pillar(loop_trees, loop_call, loop_minion):
    """Write every minion's iscsi pillar and refresh the loop minion's."""

    def _set(data: dict) -> None:
        loop_trees.set_pillar(data, loop_call, loop_minion.id)

    return _set


class Bus:
    """What the master's event bus saw: beacon events, policy runs, job returns."""

    def __init__(self, listener, master, minion) -> None:
        self.listener, self.master, self.minion = listener, master, minion

    def flush(self) -> None:
        """Wait until every event the master fired so far is in the listener."""
        events.flush(self.listener, self.master)

    def events(self, tag: str, since: float) -> list:
        found = self.listener.get_events([(self.master.id, tag)], after_time=since)
        return sorted(found, key=lambda e: e.stamp)

    def violations(self, since: float) -> list:
        return self.events(f"salt/beacon/{self.minion.id}/iscsi/violation", since)

    def registrations(self, since: float) -> list:
        return self.events(f"salt/beacon/{self.minion.id}/iscsi/registered", since)

    def policy_runs(self, since: float) -> list:
        """state.apply jobs published since ``since``, as their 'new' events."""
        return [
            e for e in self.events("salt/job/*/new", since) if e.data.get("fun") == "state.apply"
        ]

    def policy_returns(self, since: float) -> list:
        return [
            e
            for e in self.events(f"salt/job/*/ret/{self.minion.id}", since)
            if e.data.get("fun") == "state.apply"
        ]


@pytest.fixture
def bus(event_listener, loop_master, loop_minion) -> Bus:
    return Bus(event_listener, loop_master, loop_minion)


def quiet(bus: Bus, loop_call, window: float = 3 * BEACON_INTERVAL + 2) -> None:
    """Wait until no job runs on the minion and no violation was reported nor policy run
    published for ``window`` seconds: whatever an earlier test set in motion has finished.
    (A violation event's policy run is published some time after it, by the reactor.)"""

    def settled():
        """the minion is idle, and no violation nor policy run came lately"""
        bus.flush()
        lately = time.time() - window
        if bus.violations(lately) or bus.policy_runs(lately):
            return False  # the bus is read in-process; asking the minion is a job
        running = loop_call.run("saltutil.running")
        return running.returncode == 0 and running.data == []

    wait_for(settled, step=0.5)


@pytest.fixture
def world(loop_host, set_loop_pillar, loop_minion, loop_call, bus):
    """Policy in pillar; host with 3 watched, 2 allowed and 1 excepted session, none
    persistent; nothing left running from an earlier test."""
    set_loop_pillar(POLICY)
    loop_host.reset()
    ids = {
        "watched": [loop_host.add_session(WATCHED) for _ in range(3)],
        "allowed": [loop_host.add_session(ALLOWED) for _ in range(2)],
        "excepted": [loop_host.add_session(EXCEPTED)],
    }
    quiet(bus, loop_call)
    return ids
