"""Scenario 7: the initiator's lifecycle on Linux, through Salt, on real sessions: target
portals (discovery records), targets (node records), connecting with CHAP one-way and
mutual over one or two portals, disconnecting, and ``iscsi.connected``/``iscsi.absent``;
one real reboot shows what each leaves behind. Secrets never reach iscsiadm's argv."""

from __future__ import annotations

import json

import pytest

from tests.integration.real_initiator.conftest import PORTAL, SECOND_PORTAL, call, fresh
from tests.support.initiator_vm import admin
from tests.support.initiator_vm.machine import InitiatorVm
from tests.support.initiator_vm.targets import Chap, Target, spec

pytestmark = pytest.mark.real_initiator

PATHS = "iqn.2003-01.org.example:paths"  # two portals: two sessions
SECURE = "iqn.2003-01.org.example:secure"  # one-way CHAP
MUTUAL = "iqn.2003-01.org.example:mutual"  # mutual CHAP
SCRATCH = "iqn.2003-01.org.example:scratch"  # connected, then made absent
LATER = "iqn.2003-01.org.example:later"  # appears on the SAN after the first discovery
CHAP = Chap("vm-initiator", "Chap-S3cret-life")  # 12 to 16 bytes, as Windows wants
# In mutual CHAP the target answers as its own name (as Windows' default) with the
# initiator's secret (iscsi.set_initiator_chap_secret's on Windows).
TARGET_CHAP = Chap(MUTUAL, "Mutual-S3cret-1")
TARGETS = [
    Target(PATHS, portals=(PORTAL, SECOND_PORTAL)),
    Target(SECURE, chap=CHAP),
    Target(MUTUAL, chap=CHAP, mutual=TARGET_CHAP),
    Target(SCRATCH),
]
SECRETS = (CHAP.secret, TARGET_CHAP.secret)


@pytest.fixture
def clean(vm):
    """No session, no record, the targets in LIO (no boot: cheap for every test)."""
    fresh(vm, TARGETS)
    return vm


def failed(local_cli, minion, *args) -> str:
    """``salt <minion> <args>`` that must fail: its message."""
    ret = local_cli.run(*args, minion_tgt=minion.id)
    assert ret.returncode != 0, ret
    return str(ret.data)


def add_portals(local_cli, minion, *portals: str) -> None:
    for portal in portals:
        address = portal.rsplit(":", 1)[0]
        added = call(local_cli, minion, "iscsi.add_target_portal", address)
        assert added == {"portal": portal, "status": "added"}


def argv_seen(vm: InitiatorVm) -> str:
    """Every argv the minion's iscsiadm runs carried (what ``ps`` would have shown)."""
    return "\n".join(" ".join(c.args) for c in vm.journal)


def test_target_portals_add_update_and_remove(local_cli, vm_minion, clean):
    vm = clean
    dry = call(local_cli, vm_minion, "iscsi.add_target_portal", "127.0.0.1", "test=True")
    assert dry == {"portal": PORTAL, "status": "would_add"}
    assert call(local_cli, vm_minion, "iscsi.get_target_portals") == []
    add_portals(local_cli, vm_minion, PORTAL)
    (portal,) = call(local_cli, vm_minion, "iscsi.get_target_portals")
    assert (portal["TargetPortalAddress"], portal["TargetPortalPortNumber"]) == ("127.0.0.1", 3260)
    targets = call(local_cli, vm_minion, "iscsi.get_targets")
    assert sorted((t["NodeAddress"], t["IsConnected"]) for t in targets) == sorted(
        (t.iqn, False) for t in TARGETS
    )
    assert admin.startup(vm, SCRATCH) == ("manual", "manual")  # iscsid.conf's default

    # A target the SAN offers later is found by discovering again.
    vm.request({"op": "lio", "spec": spec([*TARGETS, Target(LATER)])})
    refreshed = call(local_cli, vm_minion, "iscsi.update_target_portal", "127.0.0.1")
    assert refreshed == {"portal": PORTAL, "status": "refreshed"}
    found = call(local_cli, vm_minion, "iscsi.get_targets", f"node_address={LATER}")
    assert found == [{"NodeAddress": LATER, "IsConnected": False}]

    dry = call(local_cli, vm_minion, "iscsi.remove_target_portal", "127.0.0.1", "test=True")
    assert dry == {"portal": PORTAL, "status": "would_remove"}
    assert len(call(local_cli, vm_minion, "iscsi.get_target_portals")) == 1
    removed = call(local_cli, vm_minion, "iscsi.remove_target_portal", "127.0.0.1")
    assert removed == {"portal": PORTAL, "status": "removed"}
    assert call(local_cli, vm_minion, "iscsi.get_target_portals") == []
    assert call(local_cli, vm_minion, "iscsi.get_targets") == []  # its records went with it


def test_a_portal_whose_records_are_in_use_is_not_removed(local_cli, vm_minion, clean):
    vm = clean
    add_portals(local_cli, vm_minion, PORTAL)
    connected = call(
        local_cli, vm_minion, "iscsi.connect_target", SCRATCH, "target_portal_address=127.0.0.1"
    )
    assert connected == {"target": SCRATCH, "portal": PORTAL, "status": "connected"}
    message = failed(local_cli, vm_minion, "iscsi.remove_target_portal", "127.0.0.1")
    assert f"not removing portal {PORTAL}" in message and f"{SCRATCH} at {PORTAL}" in message
    assert admin.sessions(vm) == {(SCRATCH, PORTAL)}
    assert len(call(local_cli, vm_minion, "iscsi.get_target_portals")) == 1


def test_a_wrong_chap_secret_is_a_clear_error_and_changes_nothing(local_cli, vm_minion, clean):
    vm = clean
    add_portals(local_cli, vm_minion, PORTAL)
    (record,) = (vm.etc / "nodes" / SECURE).glob("127.0.0.1,3260,*/default")
    before = record.read_text()
    message = failed(
        local_cli, vm_minion, "iscsi.connect_target", SECURE, "target_portal_address=127.0.0.1",
        "authentication_type=one-way", f"chap_username={CHAP.userid}",
        "chap_secret=Wrong-S3cret-1", "is_persistent=True",
    )  # fmt: skip
    assert f"cannot log in to {SECURE} at {PORTAL}" in message, message
    assert "its record is as it was" in message and "Wrong-S3cret" not in message
    assert admin.sessions(vm) == set()
    assert record.read_text() == before  # startup and authentication as they were
    assert "Wrong-S3cret" not in argv_seen(vm)


def test_a_portal_that_does_not_answer_is_a_clear_error(local_cli, vm_minion, clean):
    message = failed(local_cli, vm_minion, "iscsi.add_target_portal", "127.0.0.9")
    assert "127.0.0.9" in message, message
    assert call(local_cli, vm_minion, "iscsi.get_target_portals") == []


def test_absent_refuses_a_disk_in_use_unless_forced(local_cli, vm_minion, clean):
    """The guest's kernel has no disk file system loaded: the disk in use is swap, which
    lsblk lists as mounted (``[SWAP]``) as it lists a file system."""
    vm = clean
    add_portals(local_cli, vm_minion, PORTAL)
    call(local_cli, vm_minion, "iscsi.connect_target", SCRATCH, "is_persistent=True")
    (sid,) = admin.session_ids(vm)
    (disk,) = admin.disks(vm)[sid]
    vm.run(["mkswap", f"/dev/{disk}"])
    vm.run(["swapon", f"/dev/{disk}"])
    try:
        ret = local_cli.run("iscsi.ensure_absent", SCRATCH, minion_tgt=vm_minion.id)
        refused = ret.data
        assert ret.returncode == 1 and refused["changes"] == {}, ret
        assert any(f"/dev/{disk} is mounted at [SWAP]" in e for e in refused["errors"]), refused
        assert admin.sessions(vm) == {(SCRATCH, PORTAL)}
        assert admin.startup(vm, SCRATCH) == ("automatic", "automatic")  # nothing half-done
    finally:
        vm.run(["swapoff", f"/dev/{disk}"])
    gone = call(local_cli, vm_minion, "iscsi.ensure_absent", SCRATCH, "force=True")
    assert gone["errors"] == [] and gone["changes"], gone
    assert admin.sessions(vm) == set()


def test_each_state_of_the_lifecycle_holds_across_a_real_reboot(local_cli, vm_minion, clean):
    """Persistent over two portals, one-way and mutual CHAP, connected for now only,
    disconnected but persistent, and absent: one reboot shows each as it was meant."""
    vm = clean
    add_portals(local_cli, vm_minion, PORTAL, SECOND_PORTAL)
    paths = json.dumps([PORTAL, SECOND_PORTAL])
    dry = call(
        local_cli, vm_minion, "iscsi.ensure_connected", PATHS, f"portals={paths}",
        "multipath=True", "test=True",
    )  # fmt: skip
    assert dry["errors"] == [] and sorted(dry["changes"]) == [
        f"session {PATHS} via {PORTAL}",
        f"session {PATHS} via {SECOND_PORTAL}",
    ], dry
    assert admin.sessions(vm) == set()
    both = call(
        local_cli, vm_minion, "iscsi.ensure_connected", PATHS, f"portals={paths}", "multipath=True"
    )
    assert both["errors"] == [] and sorted(both["changes"]) == sorted(dry["changes"]), both
    again = call(
        local_cli, vm_minion, "iscsi.ensure_connected", PATHS, f"portals={paths}", "multipath=True"
    )
    assert (again["changes"], again["errors"]) == ({}, []), again

    one_way = call(
        local_cli, vm_minion, "iscsi.connect_target", SECURE, "target_portal_address=127.0.0.1",
        "authentication_type=one-way", f"chap_username={CHAP.userid}",
        f"chap_secret={CHAP.secret}",
    )  # fmt: skip
    assert one_way["status"] == "connected", one_way
    mutual = call(
        local_cli, vm_minion, "iscsi.ensure_connected", MUTUAL, "portals=127.0.0.1",
        "authentication=mutual", f"chap_username={CHAP.userid}", f"chap_secret={CHAP.secret}",
        f"initiator_chap_secret={TARGET_CHAP.secret}",
    )  # fmt: skip
    assert mutual["errors"] == [] and mutual["changes"], mutual
    sessions = call(local_cli, vm_minion, "iscsi.get_sessions")
    kinds = {s["TargetNodeAddress"]: s["AuthenticationType"] for s in sessions}
    assert (kinds[SECURE], kinds[MUTUAL]) == ("ONEWAYCHAP", "MUTUALCHAP"), kinds

    call(local_cli, vm_minion, "iscsi.connect_target", SCRATCH, "is_persistent=True")
    absent = call(local_cli, vm_minion, "iscsi.ensure_absent", SCRATCH)
    assert absent["errors"] == [], absent
    (sid,) = [s for s, (t, p) in admin.session_ids(vm).items() if (t, p) == (PATHS, SECOND_PORTAL)]
    off = call(local_cli, vm_minion, "iscsi.disconnect_target", f"session_identifier='{sid}'")
    assert off == {sid: {"TargetNodeAddress": PATHS, "status": "disconnected"}}
    assert admin.sessions(vm) == {(PATHS, PORTAL), (SECURE, PORTAL), (MUTUAL, PORTAL)}
    for text in (argv_seen(vm), json.dumps([both, one_way, mutual, sessions])):
        assert not any(secret in text for secret in SECRETS)

    vm.reboot()
    # Persistent paths back (the disconnected one too: its record stays automatic, as a
    # persistent login does on Windows); the one-way CHAP session was not persistent.
    assert admin.sessions(vm) == {(PATHS, PORTAL), (PATHS, SECOND_PORTAL), (MUTUAL, PORTAL)}
    assert call(local_cli, vm_minion, "iscsi.get_targets", f"node_address={SCRATCH}") == []
    settled = call(
        local_cli, vm_minion, "iscsi.ensure_connected", PATHS, f"portals={paths}", "multipath=True"
    )
    assert (settled["changes"], settled["errors"]) == ({}, []), settled


def test_portal_states_and_a_rescan_on_real_sessions(local_cli, vm_minion, clean):
    """What ``iscsi.portal_present``/``portal_absent`` run, and ``iscsi.rescan`` with a
    session logged in (the disks stay as they are)."""
    vm = clean
    added = {f"portal {PORTAL}": {"old": "absent", "new": "present"}}
    dry = call(local_cli, vm_minion, "iscsi.ensure_portal", "127.0.0.1", "test=True")
    assert (dry["changes"], dry["errors"]) == (added, []), dry
    assert call(local_cli, vm_minion, "iscsi.get_target_portals") == []
    done = call(local_cli, vm_minion, "iscsi.ensure_portal", "127.0.0.1")
    assert (done["changes"], done["errors"]) == (added, []), done
    again = call(local_cli, vm_minion, "iscsi.ensure_portal", "127.0.0.1")
    assert (again["changes"], again["errors"]) == ({}, []), again

    call(local_cli, vm_minion, "iscsi.connect_target", SCRATCH)
    disks = admin.disks(vm)
    assert call(local_cli, vm_minion, "iscsi.rescan") == {"status": "rescanned"}
    assert "-m session -R" in argv_seen(vm)
    assert admin.disks(vm) == disks and admin.sessions(vm) == {(SCRATCH, PORTAL)}

    ret = local_cli.run(
        "iscsi.ensure_portal", "127.0.0.1", "present=False", minion_tgt=vm_minion.id
    )
    assert ret.returncode == 1 and ret.data["changes"] == {}, ret  # SCRATCH is logged in
    call(local_cli, vm_minion, "iscsi.disconnect_target", f"node_address={SCRATCH}")
    gone = call(local_cli, vm_minion, "iscsi.ensure_portal", "127.0.0.1", "present=False")
    assert gone["changes"] == {f"portal {PORTAL}": {"old": "present", "new": "absent"}}, gone
    assert call(local_cli, vm_minion, "iscsi.get_target_portals") == []
