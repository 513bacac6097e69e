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
    local_cli, vm_minion, set_pillar, persistent
):
    vm = persistent
    set_pillar(POLICY)
    (sid,) = [s for s, (t, _) in admin.session_ids(vm).items() if t == FORBIDDEN]
    expected = {sid: {"TargetNodeAddress": FORBIDDEN, "IsPersistent": {"old": True, "new": False}}}

    dry = call(local_cli, vm_minion, "state.highstate", "test=True")
    assert list(dry) == [STATE], dry
    assert (dry[STATE]["result"], dry[STATE]["changes"]) == (None, expected), dry
    assert admin.startup(vm, FORBIDDEN) == ("automatic", "automatic")  # nothing changed

    run = call(local_cli, vm_minion, "state.highstate")
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
    again = call(local_cli, vm_minion, "state.highstate")
    assert (again[STATE]["result"], again[STATE]["changes"]) == (True, {}), again
    assert admin.startup(vm, FORBIDDEN) == ("manual", "manual")


REDISCOVERED = "iqn.2003-01.org.example:testiscsi-rediscovered"
DEFAULTS_STATE = "iscsi_|-iscsi-policy-defaults_|-iscsi-policy-defaults_|-initiator_defaults"


def test_with_the_default_managed_a_rediscovery_does_not_bring_the_target_back(
    local_cli, vm_minion, set_pillar, vm
):
    """open-iscsi#58: a plain rediscovery rewrites node.startup to iscsid.conf's default.
    With ``defaults: {node_startup: manual}`` in the policy the highstate makes that default
    manual, so after the rediscovery and a real reboot the target stays away."""
    fresh(vm, [Target(REDISCOVERED), Target(ALLOWED)], default_startup="automatic")
    admin.discover(vm)
    vm.iscsiadm("-m", "node", "--loginall=all")
    assert admin.startup(vm, REDISCOVERED)[0] == "automatic"
    set_pillar(
        {"iscsi": {"policy": {**POLICY["iscsi"]["policy"], "defaults": {"node_startup": "manual"}}}}
    )

    run = call(local_cli, vm_minion, "state.highstate")
    assert run[DEFAULTS_STATE]["result"] is True, run
    conf = vm.etc / "iscsid.conf"
    assert run[DEFAULTS_STATE]["changes"] == {
        f"{conf}: node.startup": {"old": "automatic", "new": "manual"}
    }
    assert "node.startup = manual" in conf.read_text().splitlines()
    assert admin.startup(vm, REDISCOVERED) == ("manual", "manual")

    admin.discover(vm)  # as an admin would, without -o new
    assert admin.startup(vm, REDISCOVERED)[0] == "manual"
    vm.reboot()
    assert (REDISCOVERED, PORTAL) not in admin.sessions(vm)
    again = call(local_cli, vm_minion, "state.highstate")
    assert all(r["changes"] == {} for r in again.values()), again
