"""Scenarios 4 and 5: the beacon and the reactor, with real daemons, against changes made
in the guest: a record switched to automatic by hand (undone; a real reboot then shows the
target stays away), and a discovery that resets it (the guest's iscsid.conf defaults new
records to ``automatic``, as RHEL's does), undone before any reboot."""

from __future__ import annotations

import time

import pytest

from tests.integration.real_initiator.conftest import POLICY, PORTAL, fresh, wait_for
from tests.support.initiator_vm import admin
from tests.support.initiator_vm.targets import Target

pytestmark = pytest.mark.real_initiator

FORBIDDEN = "iqn.2003-01.org.example:testiscsi-backup"
ALLOWED = "iqn.2003-01.org.example:db"
BEACON = {"iscsi": [{"interval": 1}, {"backoff_max": 4}, {"timeout": 30}]}


@pytest.fixture(scope="module")
def guest(vm):
    """Discovery makes automatic records; the forbidden one is set manual by hand."""
    fresh(vm, [Target(FORBIDDEN), Target(ALLOWED)], default_startup="automatic")
    admin.discover(vm)
    admin.set_startup(vm, FORBIDDEN, PORTAL, node="manual", conn="manual")
    vm.iscsiadm("-m", "node", "--loginall=all")
    # iscsid.conf's default reaches node.startup only: node.conn[0].startup stays manual.
    assert admin.startup(vm, ALLOWED) == ("automatic", "manual")
    return vm


@pytest.fixture
def beacon(set_pillar, vm_minion, local_cli):
    """The policy and the beacon in the VM's minion's pillar (beacons follow a refresh),
    and no job left running from before: a policy run queued by an earlier violation
    could otherwise undo the next change before the beacon sees it."""
    set_pillar({**POLICY, "beacons": BEACON})

    def idle():
        """no job runs on the minion"""
        ret = local_cli.run("saltutil.running", minion_tgt=vm_minion.id)
        return ret.returncode == 0 and ret.data == []

    wait_for(idle, step=1)
    return vm_minion


def violations(event_listener, master, minion, since: float) -> list[dict]:
    """The violations the minion's beacon reported since ``since``, oldest first."""
    events = event_listener.get_events(
        [(master.id, f"salt/beacon/{minion.id}/iscsi/violation")], after_time=since
    )
    return [v for e in sorted(events, key=lambda e: e.stamp) for v in e.data["violations"]]


def reactor_runs(event_listener, master, minion, since: float) -> list:
    events = event_listener.get_events(
        [(master.id, f"salt/job/*/ret/{minion.id}")], after_time=since
    )
    return [e for e in events if e.data.get("fun") == "state.apply"]


def test_a_record_set_to_automatic_by_hand_is_undone_and_stays_away_after_a_reboot(
    guest, beacon, vm_master, event_listener
):
    since = time.time()
    admin.set_startup(guest, FORBIDDEN, PORTAL, node="automatic")  # as someone would type it

    def undone():
        """the forbidden record is manual again (its file; iscsiadm confirms below)"""
        return admin.recorded_startup(guest, FORBIDDEN) == ("manual", "manual")

    took = wait_for(undone)
    assert admin.startup(guest, FORBIDDEN) == ("manual", "manual")
    print(f"real initiator: node.startup=automatic by hand -> manual again in {took:.1f} s")

    def remediated():
        """the reactor's policy run returned"""
        return reactor_runs(event_listener, vm_master, beacon, since)

    # The listener gets the bus's events in order, a second or so late: once the run's
    # return is in, the violation that started it is too.
    wait_for(remediated)
    seen = violations(event_listener, vm_master, beacon, since)
    assert {(v["kind"], v["target"]) for v in seen} == {("session", FORBIDDEN)}, seen
    assert admin.startup(guest, ALLOWED) == ("automatic", "manual")  # untouched

    guest.reboot()
    assert admin.sessions(guest) == {(ALLOWED, PORTAL)}


def test_a_discovery_that_resets_the_record_is_undone_before_any_reboot(
    guest, beacon, vm_master, event_listener
):
    """open-iscsi#58, #286, #439: discovery rewrites node.startup to iscsid.conf's default."""
    assert admin.startup(guest, FORBIDDEN) == ("manual", "manual")
    since = time.time()
    started = time.monotonic()
    admin.discover(guest)
    discovered = time.monotonic()

    def reported():
        """the beacon reported the forbidden record as persistent"""
        return violations(event_listener, vm_master, beacon, since)

    wait_for(reported)
    seen = reported()[0]
    assert (seen["kind"], seen["target"], seen["portal"]) == (
        "persistent_login",
        FORBIDDEN,
        PORTAL,
    ), seen

    def undone():
        """the forbidden record is manual again (its file; iscsiadm confirms below)"""
        return admin.recorded_startup(guest, FORBIDDEN) == ("manual", "manual")

    wait_for(undone)
    took = time.monotonic() - discovered
    assert admin.startup(guest, FORBIDDEN) == ("manual", "manual")
    print(
        f"real initiator: discovery ({discovered - started:.1f} s) reset the record to "
        f"automatic -> manual again {took:.1f} s after it"
    )
    assert admin.startup(guest, ALLOWED)[0] == "automatic"  # the allowed one keeps it
