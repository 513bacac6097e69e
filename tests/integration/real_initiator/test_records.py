"""Scenario 6: records the policy must read as open-iscsi does. ``onboot`` records are never
changed; a record whose ``node.conn[0].startup`` differs from its ``node.startup`` is one
violation, fixed in both fields."""

from __future__ import annotations

import pytest

from tests.integration.real_initiator.conftest import POLICY, PORTAL, call, fresh
from tests.support.initiator_vm import admin
from tests.support.initiator_vm.targets import Target

pytestmark = pytest.mark.real_initiator

BOOT = "iqn.2003-01.org.example:testiscsi-boot"  # onboot: the initramfs' job
SPLIT = "iqn.2003-01.org.example:testiscsi-split"  # what a discovery leaves: automatic/manual
CONN = "iqn.2003-01.org.example:testiscsi-conn"  # manual/automatic
ALLOWED = "iqn.2003-01.org.example:db"
RULE = "iscsi-policy-not-persistent-1"
STATE = f"iscsi_|-{RULE}_|-{RULE}_|-not_persistent"
STARTUP = {
    BOOT: ("onboot", "onboot"),
    SPLIT: ("automatic", "manual"),
    CONN: ("manual", "automatic"),
    ALLOWED: ("automatic", "automatic"),
}


@pytest.fixture(scope="module")
def records(vm):
    fresh(vm, [Target(t) for t in STARTUP])
    admin.discover(vm)
    vm.iscsiadm("-m", "node", "--loginall=all")
    return vm


@pytest.fixture
def shaped(records, set_pillar):
    """Every record as STARTUP says, every target logged in, the policy in pillar."""
    for target, (node, conn) in STARTUP.items():
        admin.set_startup(records, target, PORTAL, node=node, conn=conn)
    for target in STARTUP:
        if (target, PORTAL) not in admin.sessions(records):
            admin.login(records, target)
    set_pillar(POLICY)
    return records


def test_a_split_record_is_one_violation_and_onboot_none(local_cli, vm_minion, shaped):
    report = call(local_cli, vm_minion, "iscsi.check_policy")
    found = [(v["kind"], v["target"]) for v in report["violations"] if v["target"] in (SPLIT, BOOT)]
    assert found == [("session", SPLIT)], report


def test_the_policy_fixes_both_fields_and_leaves_onboot_alone(local_cli, vm_minion, shaped):
    """SPLIT (automatic in node.startup only) and CONN (automatic in node.conn[0].startup
    only) are fixed in both fields by one policy run, a change each; BOOT is left alone.
    One reboot then shows neither split record comes back."""
    vm = shaped
    report = call(local_cli, vm_minion, "iscsi.check_policy")
    assert CONN in {v["target"] for v in report["violations"]}, report
    sids = {t: s for s, (t, _) in admin.session_ids(vm).items()}
    states = call(local_cli, vm_minion, "state.apply", "iscsi.policy")
    assert states[STATE]["result"] is True, states
    changes = states[STATE]["changes"]

    def about(target: str) -> list[str]:
        """the changes naming ``target``: a session id, or 'persistent login <target> @ ...'"""
        return [
            k for k, v in changes.items() if target in k or v.get("TargetNodeAddress") == target
        ]

    assert about(SPLIT) == [sids[SPLIT]], changes  # one change: its session's record
    assert about(CONN) == [sids[CONN]], changes
    assert about(BOOT) == [], changes
    assert admin.startup(vm, SPLIT) == ("manual", "manual")
    assert admin.startup(vm, CONN) == ("manual", "manual")
    assert admin.startup(vm, BOOT) == ("onboot", "onboot")
    assert admin.startup(vm, ALLOWED) == ("automatic", "automatic")

    vm.reboot()
    after = {target for target, _ in admin.sessions(vm)}
    assert ALLOWED in after
    assert SPLIT not in after
    assert CONN not in after
    assert BOOT not in after  # --loginall=automatic leaves onboot records to the initramfs
