"""Scenario 3: the ``iscsi`` formula from pillar at highstate. ``test=True`` reports
exactly what the run then changes; after a real reboot the target is gone, and a second
run changes nothing."""

from __future__ import annotations

import pytest

from tests.integration.real_initiator.conftest import POLICY, PORTAL, call, fresh
from tests.support.initiator_vm import admin
from tests.support.initiator_vm.targets import Target

pytestmark = pytest.mark.real_initiator

FORBIDDEN = "iqn.2003-01.org.example:testiscsi-scratch"
ALLOWED = "iqn.2003-01.org.example:db"
STATE = "iscsi_|-iscsi-policy-not-persistent-1_|-iscsi-policy-not-persistent-1_|-not_persistent"


@pytest.fixture(scope="module")
def persistent(vm):
    fresh(vm, [Target(FORBIDDEN), Target(ALLOWED)])
    admin.discover(vm)
    for target in (FORBIDDEN, ALLOWED):
        admin.set_startup(vm, target, PORTAL, node="automatic", conn="automatic")
    vm.iscsiadm("-m", "node", "--loginall=automatic")
    return vm


def test_highstate_makes_the_target_go_away_at_the_next_boot(
    salt_cli, vm_minion, set_pillar, persistent
):
    vm = persistent
    set_pillar(POLICY)
    (sid,) = [s for s, (t, _) in admin.session_ids(vm).items() if t == FORBIDDEN]
    expected = {sid: {"TargetNodeAddress": FORBIDDEN, "IsPersistent": {"old": True, "new": False}}}

    dry = call(salt_cli, vm_minion, "state.highstate", "test=True")
    assert list(dry) == [STATE], dry
    assert (dry[STATE]["result"], dry[STATE]["changes"]) == (None, expected), dry
    assert admin.startup(vm, FORBIDDEN) == ("automatic", "automatic")  # nothing changed

    run = call(salt_cli, vm_minion, "state.highstate")
    assert (run[STATE]["result"], run[STATE]["changes"]) == (True, expected), run
    assert admin.startup(vm, FORBIDDEN) == ("manual", "manual")
    assert admin.startup(vm, ALLOWED) == ("automatic", "automatic")
    assert admin.sessions(vm) == {(FORBIDDEN, PORTAL), (ALLOWED, PORTAL)}  # still connected
    # What the admin loses at the next boot: the forbidden target's real disk.
    lost = [f"/dev/{d}" for d in admin.disks(vm)[sid]]
    assert (
        lost
        and f"After the next restart these will be missing: {'; '.join(lost)}."
        in (run[STATE]["comment"])
    ), run

    vm.reboot()
    assert admin.sessions(vm) == {(ALLOWED, PORTAL)}
    again = call(salt_cli, vm_minion, "state.highstate")
    assert (again[STATE]["result"], again[STATE]["changes"]) == (True, {}), again
    assert admin.startup(vm, FORBIDDEN) == ("manual", "manual")
