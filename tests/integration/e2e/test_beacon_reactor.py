"""Registration by hand -> beacon violation event -> reactor -> policy enforced, on real
daemons. Restarts and lost messages: test_lose_nothing.py."""

import statistics
import time

from tests.integration.e2e.conftest import (
    BACKOFF_MAX,
    BEACON_INTERVAL,
    POLICY,
    WATCHED,
    quiet,
    wait_for,
)


def undone(host, *ids):
    def check():
        """the registrations are undone"""
        return not set(ids) & host.persistent_ids()

    return check


def test_registration_by_hand_is_undone(loop_host, loop_call, bus, world):
    latencies = []
    began = time.time()
    for sid in world["watched"]:
        # Each registration once the last one's runs are over: a policy run still queued
        # (a late event for the session before) would undo this one before the beacon saw
        # it, and there would be no registration event to check (seen once in CI).
        quiet(bus, loop_call)
        since = time.time()
        start = time.monotonic()
        loop_host.register_by_hand(sid)
        wait_for(undone(loop_host, sid))
        latencies.append(time.monotonic() - start)
        wait_for(lambda since=since: bus.policy_returns(since))
        (event,) = bus.registrations(since)
        assert event.data["SessionIdentifier"] == sid and event.data["kind"] == "session"
    # Each violation event comes from this minion and names watched sessions only.
    events = bus.violations(began)
    assert events and all(e.data["id"] == bus.minion.id for e in events)
    named = {v["session"] for e in events for v in e.data["violations"] if v["kind"] == "session"}
    assert named and named <= set(world["watched"])
    print(
        f"registration -> remediated, beacon interval {BEACON_INTERVAL} s: "
        f"median {statistics.median(latencies):.2f} s, worst {max(latencies):.2f} s, "
        f"runs {[round(x, 2) for x in latencies]}"
    )
    assert loop_host.persistent_ids() == set()


def test_allowed_and_excepted_registrations_are_left_alone(loop_host, loop_call, bus, world):
    """A burst mixing forbidden, allowed and excepted targets: only the forbidden go."""
    since = time.time()
    keep = [*world["allowed"], *world["excepted"]]
    for sid in [*keep, world["watched"][0]]:
        loop_host.register_by_hand(sid)
    wait_for(undone(loop_host, world["watched"][0]))
    quiet(bus, loop_call)
    assert loop_host.persistent_ids() == set(keep)
    assert len(bus.registrations(since)) == 4  # reported, all of them
    assert all(e.data["tgt"] == bus.minion.id for e in bus.policy_runs(since))


def fires_within(seconds: float) -> int:
    """The violation events the beacon's backoff allows while a violation lasts ``seconds``:
    one at once, then after the interval, twice it, four times... capped at BACKOFF_MAX."""
    fires, at, wait = 1, 0.0, float(BEACON_INTERVAL)
    while at + wait <= seconds:
        at, fires, wait = at + wait, fires + 1, min(BACKOFF_MAX, wait * 2)
    return fires


def test_a_burst_of_twenty_is_one_remediation(loop_host, loop_call, bus, world):
    many = [loop_host.add_session(WATCHED) for _ in range(17)] + world["watched"]
    quiet(bus, loop_call)
    since = time.time()
    start = time.monotonic()
    with loop_host.edit() as state:  # all twenty registrations at the same moment
        for session in state["sessions"]:
            if session["SessionIdentifier"] in many:
                loop_host._add_login(state, session, False)
    wait_for(undone(loop_host, *many))
    took = time.monotonic() - start
    quiet(bus, loop_call)
    events, runs = bus.violations(since), bus.policy_runs(since)
    print(
        f"20 registrations: {len(events)} violation event(s), {len(runs)} policy run(s), {took:.1f} s"
    )
    assert events[0].data["count"] == 20  # one event for the whole burst
    # Further events only as the backoff allows while the remediation ran (one tick of
    # slack): on a quiet machine 1 or 2; on a busy one a slower run allows a few more.
    assert len(events) <= fires_within(took + BEACON_INTERVAL), events
    assert len(runs) <= len(events), runs


def test_registrations_spread_over_seconds_and_flaps(loop_host, loop_call, bus, world):
    """Five registrations over 3 s, and one register/unregister flap within a tick."""
    sids = [loop_host.add_session(WATCHED) for _ in range(2)] + world["watched"]
    for sid in sids:
        loop_host.register_by_hand(sid)
        time.sleep(0.75)  # the spread under test, not a wait for a condition
    flap = world["allowed"][0]
    loop_host.register_by_hand(flap)
    with loop_host.edit() as state:
        state["persistent_logins"] = [
            lg for lg in state["persistent_logins"] if lg["session"] != flap
        ]
    wait_for(undone(loop_host, *sids))
    quiet(bus, loop_call)
    assert loop_host.persistent_ids() == set()


def test_registered_again_right_after_remediation(loop_host, bus, world):
    """The session comes back 0.3 s after its remediation run returned: undone again."""
    sid = world["watched"][0]
    since = time.time()
    loop_host.register_by_hand(sid)
    wait_for(undone(loop_host, sid))
    wait_for(lambda: bus.policy_returns(since))
    time.sleep(0.3)  # the gap under test
    loop_host.register_by_hand(sid)
    # Undone by a new violation event or by a run still queued from the first: either way
    # nothing is lost (the old edge-triggered beacon lost it every time).
    took = wait_for(undone(loop_host, sid))
    print(f"re-registered 0.3 s after remediation: undone again in {took:.2f} s")


def test_a_stricter_pillar_is_enforced(loop_host, set_loop_pillar, bus, world):
    allowed = world["allowed"][0]
    loop_host.register_by_hand(allowed)
    assert allowed in loop_host.persistent_ids()
    set_loop_pillar({"iscsi": {"policy": {"not_persistent": [{"target": "*"}]}}})
    took = wait_for(undone(loop_host, allowed))
    print(f"stricter pillar: enforced {took:.2f} s after saltutil.refresh_pillar")
    assert took < 10 * BEACON_INTERVAL + 10


def test_entry_added_while_target_down_is_removed(loop_host, bus, world):
    since = time.time()
    offline = "iqn.1991-05.com.contoso:testiscsi-offline"
    loop_host.add_persistent_login(offline, portal="10.0.9.9")

    def gone():
        """the persistent login to the unreachable target is removed"""
        return not [lg for lg in loop_host.persistent_logins() if lg["TargetName"] == offline]

    def reported():
        """a policy run's return names the removed login"""
        return [e for e in bus.policy_returns(since) if offline in str(e.data.get("return"))]

    wait_for(gone)
    # The run that removed it may have been published before ``since`` (queued by the
    # previous test's late event) but it returned after: its return says what it removed.
    wait_for(reported)
    # On a busy machine such a run can remove the entry before the beacon reads it; when
    # the beacon did see it, it said so twice.
    seen = [
        v for e in bus.violations(since) for v in e.data["violations"] if v.get("target") == offline
    ]
    if seen:
        assert {v["kind"] for v in seen} == {"persistent_login"}, seen
        logins = [e for e in bus.registrations(since) if e.data["kind"] == "persistent_login"]
        assert [e.data["TargetPortalAddress"] for e in logins] == ["10.0.9.9"]


HANG = 15  # seconds: a check's whole timeout (iscsi.timeout, 10 s) and more


def test_a_hung_powershell_never_blocks_the_minion(loop_host, loop_master, bus, world):
    """PowerShell hangs (for longer than the check's timeout, 10 s): the minion answers at
    once, and a registration made during the hang is undone once PowerShell answers again."""
    client = loop_master.salt_client()
    loop_host.set_fault("hang", True)
    hang_started = time.monotonic()
    sid = world["watched"][0]
    loop_host.register_by_hand(sid)
    pings = []
    while time.monotonic() - hang_started < HANG:
        start = time.monotonic()
        assert client.run("test.ping", minion_tgt=bus.minion.id, timeout=10) is True
        pings.append(time.monotonic() - start)
    loop_host.clear_faults()
    took = wait_for(undone(loop_host, sid))
    print(
        f"during a {HANG} s hang: {len(pings)} test.ping, median {statistics.median(pings):.2f} s, "
        f"worst {max(pings):.2f} s; undone {took:.1f} s after the hang ended"
    )
    # A tick that waited on the hung check would hold every ping for the check's timeout
    # (10 s) or the whole hang: the median would be 10 s or more. 3 s leaves room for a busy
    # machine (median seen: 0.31 s); a single slow ping under heavy load (15 s seen at load
    # 9 on 2 cores) is the machine, not a blocked tick, as long as it is not the hang.
    assert statistics.median(pings) < 3.0 and len(pings) >= 5
    assert max(pings) < 25.0


CRAFTED_IDS = ["victim-minion", "*", "a,b", "L@a,b", "G@os:Windows", "minion/../other", "x" * 200]


def test_forged_events_target_nobody_else(loop_call, bus, world):
    """Another minion's id, and ids crafted as target expressions, in tag and data."""
    since = time.time()
    for tag_id in CRAFTED_IDS:
        ret = loop_call.run(
            "event.send", f"salt/beacon/{tag_id}/iscsi/violation", f'data={{"id": "{tag_id}"}}'
        )
        assert ret.returncode == 0, ret
    # A marker: a genuine-looking event for ourselves, sent after the forged ones. Once its
    # policy run is published, the forged events have been through the reactor too.
    ret = loop_call.run("event.send", f"salt/beacon/{bus.minion.id}/iscsi/violation")
    assert ret.returncode == 0, ret
    wait_for(lambda: bus.policy_runs(since))
    assert [e.data["tgt"] for e in bus.policy_runs(since)] == [bus.minion.id]


def test_forged_content_decides_nothing(loop_host, loop_call, bus, world):
    """An event for our own id naming an allowed session as forbidden, 100 kB of junk:
    one more idempotent policy run on us, deciding from pillar."""
    allowed = world["allowed"][1]
    loop_host.register_by_hand(allowed)
    since = time.time()
    junk = ",".join(f'"k{i}": "{"x" * 100}"' for i in range(900))
    ret = loop_call.run(
        "event.send",
        f"salt/beacon/{bus.minion.id}/iscsi/violation",
        f'data={{"violations": [{{"session": "{allowed}", "target": "{WATCHED}"}}], {junk}}}',
    )
    assert ret.returncode == 0, ret
    wait_for(lambda: bus.policy_returns(since))
    assert [e.data["tgt"] for e in bus.policy_runs(since)] == [bus.minion.id]
    assert allowed in loop_host.persistent_ids()


def test_a_stopped_iscsi_service_is_started_by_the_reactor(loop_host, set_loop_pillar, bus, world):
    """A readiness rule drifting (MSiSCSI stopped, then not automatic): the beacon reports
    it within its readiness cadence, the reactor's policy run (iscsi.ready) fixes it."""
    policy = {"iscsi": {"policy": {**POLICY["iscsi"]["policy"], "readiness": {"service": True}}}}
    set_loop_pillar(policy)
    since = time.time()
    start = time.monotonic()
    loop_host.set_readiness(msiscsi_start_mode="Manual")
    loop_host.set_fault("service_stopped", True)

    def fixed():
        """MSiSCSI runs again and starts automatically"""
        state = loop_host.read()
        return not state["faults"]["service_stopped"] and (
            state["readiness"]["msiscsi_start_mode"] == "Auto"
        )

    # The readiness cadence (READINESS_EVERY checks, one a second) comes before the
    # reactor's run.
    wait_for(fixed)
    took = time.monotonic() - start
    wait_for(lambda: bus.policy_returns(since))
    kinds = {v["kind"] for e in bus.violations(since) for v in e.data["violations"]}
    assert "readiness" in kinds
    print(f"MSiSCSI stopped -> started by the reactor in {took:.2f} s")
    set_loop_pillar(POLICY)
