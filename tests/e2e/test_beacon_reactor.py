"""Registration by hand → beacon event → reactor → policy enforced, on real daemons."""

import statistics
import time

import pytest

from tests.e2e.conftest import BEACON_INTERVAL

WATCHED = "iqn.1991-05.com.contoso:testiscsi-deepcore-target"
ALLOWED = "iqn.1991-05.com.contoso:db-01"
POLICY = {"iscsi": {"policy": {"not_persistent": [{"target": "*:testiscsi-*"}]}}}
LIMIT = 30  # seconds: far above the expected few, so that a slow CI machine is no failure


def wait_for(predicate, timeout: float = LIMIT, step: float = 0.05) -> float:
    """Seconds until predicate() held; fails the test after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"not within {timeout} s: {predicate.__doc__ or predicate}")
        time.sleep(step)
    return time.monotonic() - start


@pytest.fixture
def world(loop_host, set_loop_pillar, loop_minion):
    """Policy in pillar; host with 3 watched and 2 allowed sessions, none persistent."""
    set_loop_pillar(POLICY)
    loop_host.reset()
    ids = {
        "watched": [loop_host.add_session(WATCHED) for _ in range(3)],
        "allowed": [loop_host.add_session(ALLOWED) for _ in range(2)],
    }
    # Let the beacon see this state before the test acts.
    time.sleep(3 * BEACON_INTERVAL)
    return ids


def master_events(event_listener, loop_master, tag: str, since: float) -> list:
    """Events with a tag matching ``tag`` seen on the master's bus since ``since``."""
    found = event_listener.get_events([(loop_master.id, tag)], after_time=since)
    return sorted(found, key=lambda e: e.stamp)


def beacon_events(event_listener, loop_master, loop_minion, since: float) -> list:
    tag = f"salt/beacon/{loop_minion.id}/iscsi/registered"
    return master_events(event_listener, loop_master, tag, since)


def state_apply_returned(event_listener, loop_master, loop_minion, since: float) -> bool:
    tag = f"salt/job/*/ret/{loop_minion.id}"
    return any(
        e.data.get("fun") == "state.apply"
        for e in master_events(event_listener, loop_master, tag, since)
    )


def wait_for_policy_run(event_listener, loop_master, loop_minion, since: float) -> None:
    """Wait until a state.apply job on the minion, published after ``since``, returned."""

    def returned():
        """the reactor's state.apply job returned"""
        return state_apply_returned(event_listener, loop_master, loop_minion, since)

    wait_for(returned)


def state_apply_targets(event_listener, loop_master, since: float) -> list:
    """The targets of every state.apply job published since ``since``."""
    return [
        e.data.get("tgt")
        for e in master_events(event_listener, loop_master, "salt/job/*/new", since)
        if e.data.get("fun") == "state.apply"
    ]


def test_registration_by_hand_is_undone(loop_host, loop_master, loop_minion, event_listener, world):
    latencies = []
    for sid in world["watched"]:
        start_wall = time.time()
        start = time.monotonic()
        loop_host.register_by_hand(sid)

        def undone(sid=sid):
            """the watched session is non-persistent again"""
            return sid not in loop_host.persistent_ids()

        wait_for(undone)
        latencies.append(time.monotonic() - start)

        # Its state run also sweeps matching persistent logins: let it end before the next.
        wait_for_policy_run(event_listener, loop_master, loop_minion, start_wall)
        events = beacon_events(event_listener, loop_master, loop_minion, start_wall)
        assert [e.data["SessionIdentifier"] for e in events] == [sid]
        assert events[0].data["TargetNodeAddress"] == WATCHED
        assert events[0].data["id"] == loop_minion.id
    print(
        f"registration -> remediated, beacon interval {BEACON_INTERVAL} s: "
        f"median {statistics.median(latencies):.2f} s, worst {max(latencies):.2f} s, "
        f"runs {[round(x, 2) for x in latencies]}"
    )
    assert loop_host.persistent_ids() == set()


def test_allowed_registration_is_left_alone(
    loop_host, loop_master, loop_minion, event_listener, world
):
    sid = world["allowed"][0]
    since = time.time()
    loop_host.register_by_hand(sid)

    wait_for_policy_run(event_listener, loop_master, loop_minion, since)
    events = beacon_events(event_listener, loop_master, loop_minion, since)
    assert [e.data["SessionIdentifier"] for e in events] == [sid]
    assert state_apply_targets(event_listener, loop_master, since) == [loop_minion.id]
    assert loop_host.persistent_ids() == {sid}


def test_forged_events_are_harmless(
    loop_host, loop_master, loop_minion, loop_call, event_listener, world
):
    allowed = world["allowed"][1]
    loop_host.register_by_hand(allowed)
    time.sleep(4 * BEACON_INTERVAL)  # the genuine event and its reactor run pass first
    since = time.time()
    # Another minion's id in the tag (and data): the reactor must not target anyone.
    ret = loop_call.run(
        "event.send",
        "salt/beacon/victim-minion/iscsi/registered",
        'data={"id": "victim-minion", "SessionIdentifier": "x"}',
    )
    assert ret.returncode == 0, ret
    time.sleep(3)
    assert state_apply_targets(event_listener, loop_master, since) == []
    # Our own id, with a crafted session naming the allowed session as a watched target:
    # the reactor runs the policy on us only, deciding from pillar, not from the event.
    since = time.time()
    ret = loop_call.run(
        "event.send",
        f"salt/beacon/{loop_minion.id}/iscsi/registered",
        f'data={{"SessionIdentifier": "{allowed}", "TargetNodeAddress": "{WATCHED}"}}',
    )
    assert ret.returncode == 0, ret

    wait_for_policy_run(event_listener, loop_master, loop_minion, since)
    assert state_apply_targets(event_listener, loop_master, since) == [loop_minion.id]
    assert allowed in loop_host.persistent_ids()


def test_beacon_survives_a_faulty_host(loop_host, loop_minion, loop_call, world):
    loop_host.set_fault("garbage", True)
    time.sleep(4 * BEACON_INTERVAL)
    loop_host.set_fault("garbage", False)
    loop_host.set_fault("hang", True)
    time.sleep(7)  # longer than the beacon's 5 s timeout: the hung PowerShell is stopped
    loop_host.clear_faults()
    assert loop_call.run("test.ping").data is True
    sid = world["watched"][1]
    loop_host.register_by_hand(sid)

    def undone():
        """the registration made after the faults is undone"""
        return sid not in loop_host.persistent_ids()

    wait_for(undone)


def test_entry_added_while_target_down_is_removed(
    loop_host, loop_master, loop_minion, event_listener, world
):
    since = time.time()
    loop_host.add_persistent_login("iqn.1991-05.com.contoso:testiscsi-offline", portal="10.0.9.9")

    def gone():
        """the persistent login to the unreachable target is removed"""
        return not [
            lg
            for lg in loop_host.persistent_logins()
            if lg["TargetName"].endswith(":testiscsi-offline")
        ]

    wait_for(gone)
    (event,) = beacon_events(event_listener, loop_master, loop_minion, since)
    assert event.data["kind"] == "persistent_login"
    assert event.data["TargetPortalAddress"] == "10.0.9.9"


@pytest.mark.parametrize(
    "tag_id",
    ["*", "loop-minion-*", "a,b", "L@a,b", "G@os:Windows", "minion/../other", "x" * 200],
)
def test_crafted_minion_ids_target_nobody(loop_master, loop_call, event_listener, tag_id):
    since = time.time()
    ret = loop_call.run(
        "event.send", f"salt/beacon/{tag_id}/iscsi/registered", f'data={{"id": "{tag_id}"}}'
    )
    assert ret.returncode == 0, ret
    time.sleep(2)
    assert state_apply_targets(event_listener, loop_master, since) == []


def test_oversized_forged_event_is_harmless(
    loop_host, loop_master, loop_minion, loop_call, event_listener, world
):
    allowed = world["allowed"][0]
    loop_host.register_by_hand(allowed)
    time.sleep(4 * BEACON_INTERVAL)
    since = time.time()
    # About 100 kB: a command-line argument cannot be longer than 128 kB.
    junk = ",".join(f'"k{i}": "{"x" * 100}"' for i in range(900))
    ret = loop_call.run(
        "event.send",
        f"salt/beacon/{loop_minion.id}/iscsi/registered",
        f'data={{"SessionIdentifier": "{allowed}", {junk}}}',
    )
    assert ret.returncode == 0, ret

    wait_for_policy_run(event_listener, loop_master, loop_minion, since)
    assert state_apply_targets(event_listener, loop_master, since) == [loop_minion.id]
    assert allowed in loop_host.persistent_ids()
