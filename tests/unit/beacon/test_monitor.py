"""The beacon's brain: level-triggered violation events with backoff, registrations,
checks that never block the caller. Windows is the simulated host behind a channel double."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest

from saltext_win_iscsi.beacon.monitor import TICK_WAIT, Monitor, MonitorSettings
from saltext_win_iscsi.errors import ChannelError, IscsiInputError
from saltext_win_iscsi.policy import Policy
from saltext_win_iscsi.windows import wire
from saltext_win_iscsi.windows.checker import WindowsChecker
from tests.support.simhost.model import SimulatedHost

WATCHED = "iqn.1991-05.com.contoso:testiscsi-1"
OTHER = "iqn.1991-05.com.contoso:db-1"
POLICY = Policy.parse({"not_persistent": [{"target": "*:testiscsi-*"}]})
SETTINGS = MonitorSettings(interval=1, timeout=2, backoff_max=8)


class SimChannel:
    """A channel that answers from the simulated host in-process; can hang on request."""

    def __init__(self, host: SimulatedHost, gate: threading.Event) -> None:
        self.host = host
        self.gate = gate
        self.alive = True

    def request(self, request: dict, secrets=None) -> dict:
        if not self.gate.wait(timeout=5):
            self.alive = False
            raise ChannelError("iSCSI: PowerShell did not answer within 5 s; stopped")
        return {"v": wire.PROTOCOL_VERSION, **self.host.handle(request, secrets)}

    def close(self) -> None:
        self.alive = False

    def kill(self) -> None:
        self.alive = False


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def host(tmp_path) -> SimulatedHost:
    return SimulatedHost(tmp_path / "host.json").reset()


@pytest.fixture
def world(host, tmp_path):
    gate = threading.Event()
    gate.set()
    clock = Clock()
    opened = []

    def opener(timeout):
        opened.append(timeout)
        return SimChannel(host, gate)

    def make(cache: str | None = str(tmp_path / "cache.json")) -> Monitor:
        return Monitor(WindowsChecker(opener), cache, clock=clock)

    return {"host": host, "gate": gate, "clock": clock, "make": make, "opened": opened}


def settle(monitor: Monitor, policy=POLICY, running=lambda: False, settings=SETTINGS):
    """Tick until the background check has been collected; return all events seen."""
    events = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        events += monitor.tick(settings, policy, running)
        if monitor._worker is not None and not monitor._worker.is_alive():
            events += monitor.tick(settings, policy, running)
            return events
        time.sleep(0.02)
    raise AssertionError("the check never finished")


def tags(events):
    return [e["tag"] for e in events]


def test_violations_fire_with_backoff_until_the_policy_holds(world):
    host, clock = world["host"], world["clock"]
    sid = host.add_session(WATCHED, persistent=True)
    monitor = world["make"]()
    first = settle(monitor)
    assert tags(first) == ["violation"]
    assert first[0]["count"] == 1 and first[0]["violations"][0]["session"] == sid
    fired_at = []
    for _ in range(40):  # 20 s in half-second steps
        clock.now += 0.5
        if monitor.tick(SETTINGS, POLICY, lambda: False):
            fired_at.append(clock.now - 1000.0)
    # interval 1: waits of 1, 2, 4, then the cap of 8 seconds
    assert fired_at == [1.0, 3.0, 7.0, 15.0]
    host.clear_faults()
    with host.edit() as state:
        state["persistent_logins"] = []
    assert settle(monitor) == []
    # A new violation after the policy held fires at once: the backoff starts over.
    host.register_by_hand(sid)
    assert tags(settle(monitor)) == ["registered", "violation"]


def test_nothing_fires_while_a_state_run_is_in_progress(world):
    world["host"].add_session(WATCHED, persistent=True)
    monitor = world["make"]()
    assert settle(monitor, running=lambda: True) == []
    world["clock"].now += 30
    assert monitor.tick(SETTINGS, POLICY, lambda: True) == []
    assert tags(monitor.tick(SETTINGS, POLICY, lambda: False)) == ["violation"]


def test_a_burst_is_one_event(world):
    host = world["host"]
    ids = [host.add_session(WATCHED) for _ in range(20)]
    monitor = world["make"]()
    assert settle(monitor) == []
    for sid in ids:
        host.register_by_hand(sid)
    events = settle(monitor)
    violation = [e for e in events if e["tag"] == "violation"]
    assert len(violation) == 1 and violation[0]["count"] == 20
    assert len([e for e in events if e["tag"] == "registered"]) == 20


def test_a_stricter_policy_is_enforced_without_any_change_on_the_host(world):
    world["host"].add_session(OTHER, persistent=True)
    monitor = world["make"]()
    assert settle(monitor) == []
    stricter = Policy.parse({"not_persistent": [{"target": "*"}]})
    assert tags(monitor.tick(SETTINGS, stricter, lambda: False)) == ["violation"]


def test_a_malformed_policy_enforces_nothing_but_still_reports(world):
    host = world["host"]
    sid = host.add_session(WATCHED)
    monitor = world["make"]()
    settle(monitor, policy=None)
    host.register_by_hand(sid)
    assert tags(settle(monitor, policy=None)) == ["registered"]


def test_a_hung_check_never_blocks_a_tick(world, caplog):
    world["host"].add_session(WATCHED, persistent=True)
    monitor = world["make"]()
    world["gate"].clear()  # PowerShell hangs
    durations = []
    with caplog.at_level(logging.DEBUG):
        for _ in range(6):
            start = time.monotonic()
            assert monitor.tick(SETTINGS, POLICY, lambda: False) == []
            durations.append(time.monotonic() - start)
        assert max(durations) < TICK_WAIT + 0.2
        # The channel gives up after its timeout: the fault is logged once.
        monitor._worker.join(10)
        monitor.tick(SETTINGS, POLICY, lambda: False)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "did not answer" in errors[0].getMessage()
    world["gate"].set()
    with caplog.at_level(logging.INFO):
        assert tags(settle(monitor)) == ["violation"]
    assert "checks work again" in caplog.text


def test_registrations_are_remembered_across_restarts(world):
    host = world["host"]
    a = host.add_session(WATCHED)
    b = host.add_session(OTHER)
    assert settle(world["make"](), policy=Policy()) == []  # first run: baseline
    host.register_by_hand(b)  # while the minion is down
    events = settle(world["make"](), policy=Policy())
    assert [(e["tag"], e["SessionIdentifier"]) for e in events] == [("registered", b)]
    assert a  # not persistent, not reported


def test_an_unreadable_cache_is_an_error_and_hides_no_violation(world, tmp_path, caplog):
    host = world["host"]
    sid = host.add_session(WATCHED)
    settle(world["make"]())
    (tmp_path / "cache.json").write_text("{corrupt")
    host.register_by_hand(sid)  # while the minion is down
    with caplog.at_level(logging.ERROR):
        events = settle(world["make"]())
    assert tags(events) == ["violation"]
    assert "cache.json is unreadable" in caplog.text
    assert json.loads((tmp_path / "cache.json").read_text())["persistent"] == {
        sid: f"{WATCHED}|{host.read()['initiator']['node_address']}".lower()
    }


def test_an_idle_tick_asks_for_a_digest_only(world):
    host = world["host"]
    host.add_session(OTHER, persistent=True)
    monitor = world["make"]()
    settle(monitor)
    host.reset_stats()
    for _ in range(5):
        settle(monitor)
    assert set(host.stats()["requests"]) == {"digest"}
    assert world["opened"] == [SETTINGS.timeout]  # one channel, kept open


def test_a_registration_right_after_a_remediation_is_seen(world):
    """Unregistering one session and registering another of the same target leaves the
    login list as it was: while violating, the check covers the sessions too."""
    host = world["host"]
    first, second = host.add_session(WATCHED), host.add_session(WATCHED)
    monitor = world["make"]()
    settle(monitor)
    host.register_by_hand(first)
    registered = [e["SessionIdentifier"] for e in settle(monitor) if e["tag"] == "registered"]
    assert registered == [first]
    host.handle({"op": "unregister", "ids": [first]})  # the remediation, then a new one,
    host.register_by_hand(second)  # both between two checks
    registered = [e["SessionIdentifier"] for e in settle(monitor) if e["tag"] == "registered"]
    assert registered == [second]
    assert [v["session"] for v in monitor.violations(POLICY)] == [second]


# -- readiness at its own cadence (readiness_every) ----------------------------------------

READY = Policy.parse({"readiness": {"service": True}})


def diagnoses(simulated) -> int:
    return simulated.stats()["requests"].get("diagnose", 0)


@pytest.fixture
def monitor(world):
    monitor = world["make"]()
    yield monitor
    monitor.close()


def test_readiness_is_read_every_nth_check_only(world, monitor):
    settings = MonitorSettings(interval=1, timeout=2, backoff_max=8, readiness_every=3)
    for _ in range(7):  # each tick starts one check, which ends before the next tick
        monitor.tick(settings, READY, lambda: False)
        monitor._worker.join(10)
    assert diagnoses(world["host"]) == 3  # checks 1, 4 and 7
    assert world["host"].stats()["requests"]["digest"] == 7


def test_while_breached_readiness_is_read_on_every_check(world, monitor):
    world["host"].set_readiness(msiscsi_start_mode="Manual")
    settings = MonitorSettings(interval=1, timeout=2, backoff_max=8, readiness_every=30)
    for _ in range(3):
        monitor.tick(settings, READY, lambda: False)
        monitor._worker.join(10)
    assert diagnoses(world["host"]) == 3
    world["host"].set_readiness(msiscsi_start_mode="Auto")
    for _ in range(3):  # the fix is seen on the next check, then the slow cadence again
        monitor.tick(settings, READY, lambda: False)
        monitor._worker.join(10)
    assert diagnoses(world["host"]) == 4


def test_without_readiness_rules_it_is_never_read(world, monitor):
    for _ in range(3):
        settle(monitor, Policy.parse({"not_persistent": [{"target": "*:x"}]}))
    assert diagnoses(world["host"]) == 0


def test_a_stopped_service_is_a_readiness_violation(world, monitor):
    world["host"].set_fault("service_stopped", True)
    events = settle(monitor, READY)
    violations = [e for e in events if e["tag"] == "violation"]
    assert violations, events
    items = {v["item"] for v in violations[0]["violations"]}
    assert items == {"service.state"}
    assert violations[0]["violations"][0]["kind"] == "readiness"


def test_readiness_every_is_checked():
    assert MonitorSettings.from_config({}).readiness_every == 30
    with pytest.raises(IscsiInputError, match="readiness_every must be a whole number"):
        MonitorSettings.from_config({"readiness_every": 0})
