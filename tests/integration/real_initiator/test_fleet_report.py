"""Scenario 7: the fleet report (``salt-run iscsi.report``) against the VM's minion: real
violations with their portals, then ``iscsi.enforce``, then compliant."""

from __future__ import annotations

import pytest

from tests.integration.real_initiator.conftest import POLICY, PORTAL, fresh
from tests.support.initiator_vm import admin
from tests.support.initiator_vm.targets import Target

pytestmark = pytest.mark.real_initiator

FORBIDDEN = "iqn.2003-01.org.example:testiscsi-logs"  # logged in and automatic
OFFLINE = "iqn.2003-01.org.example:testiscsi-offline"  # automatic, no session
ALLOWED = "iqn.2003-01.org.example:db"
RULE = "iscsi-policy-not-persistent-1"


@pytest.fixture(scope="module")
def violating(vm):
    fresh(vm, [Target(FORBIDDEN), Target(OFFLINE), Target(ALLOWED)])
    admin.discover(vm)
    for target in (FORBIDDEN, OFFLINE, ALLOWED):
        admin.set_startup(vm, target, PORTAL, node="automatic", conn="automatic")
    admin.login(vm, FORBIDDEN)
    admin.login(vm, ALLOWED)
    return vm


def test_report_enforce_report(salt_run, vm_minion, set_pillar, violating):
    vm = violating
    set_pillar(POLICY)
    (sid,) = [s for s, (t, _) in admin.session_ids(vm).items() if t == FORBIDDEN]
    target = (f"tgt={vm_minion.id}", "tgt_type=list", "timeout=60")

    ret = salt_run.run("iscsi.report", *target, "inventory=True")
    assert ret.returncode == 0, ret
    (host,) = ret.data["hosts"]
    assert (host["minion"], host["status"]) == (vm_minion.id, "violating"), ret.data
    assert [
        (v["rule"], v["kind"], v["target"], v["session"], v["portal"])
        for v in ret.data["violations"]
    ] == [
        (RULE, "session", FORBIDDEN, sid, PORTAL),
        (RULE, "persistent_login", OFFLINE, "", PORTAL),
    ], ret.data

    ret = salt_run.run("iscsi.enforce", *target)
    assert ret.returncode == 0, ret
    (row,) = ret.data["enforced"]
    assert (row["minion"], row["result"]) == (vm_minion.id, True), ret.data
    for forbidden in (FORBIDDEN, OFFLINE):
        assert admin.startup(vm, forbidden) == ("manual", "manual")
    assert admin.startup(vm, ALLOWED) == ("automatic", "automatic")

    ret = salt_run.run("iscsi.report", *target)
    assert [h["status"] for h in ret.data["hosts"]] == ["compliant"], ret.data
