"""Scenario 8: one pillar, one highstate, two platforms: ``connected`` (two paths, MPIO)
and ``absent`` rules converge the VM's real Linux initiator and a simulated Windows host in
the same run, and the next run changes nothing (what a reboot leaves of each state:
test_lifecycle.py)."""

from __future__ import annotations

import json

import pytest
import salt.client
from saltfactories.utils import random_string

from tests.integration.real_initiator.conftest import PORTAL, SECOND_PORTAL, fresh
from tests.support import daemons
from tests.support.initiator_vm import admin
from tests.support.initiator_vm.targets import Target
from tests.support.local_client import sync_all

pytestmark = pytest.mark.real_initiator

DB = "iqn.2003-01.org.example:mixed-db"
OLD = "iqn.2003-01.org.example:mixed-old"
PILLAR = {
    "iscsi": {
        "policy": {
            "connected": [{"target": DB, "portals": [PORTAL, SECOND_PORTAL], "multipath": True}],
            "absent": [{"target": OLD}],
        }
    }
}


@pytest.fixture(scope="module")
def windows_minion(vm_master, powershell):
    overrides = {"iscsi.backend": "windows", "iscsi.powershell": str(powershell)}
    factory = vm_master.salt_minion_daemon(random_string("win-"), overrides=overrides)
    with daemons.running(factory):
        sync_all(vm_master.config, factory.id)
        yield factory


@pytest.fixture
def both_sans(vm, host):
    """The same two targets on both: OLD connected and persistent, DB offered only."""
    fresh(vm, [Target(DB, portals=(PORTAL, SECOND_PORTAL)), Target(OLD)])
    admin.discover(vm)
    admin.set_startup(vm, OLD, PORTAL, node="automatic", conn="automatic")
    admin.login(vm, OLD)
    host.reset()
    host.add_network_target(DB, portals=(PORTAL, SECOND_PORTAL))
    host.add_network_target(OLD, portals=(PORTAL,))
    host.handle({"op": "add_target_portal", "address": "127.0.0.1", "port": 3260})
    host.handle({"op": "connect_target", "node_address": OLD, "is_persistent": True})
    return vm, host


def test_one_highstate_converges_linux_and_windows(
    vm_master, vm_minion, windows_minion, set_pillar, both_sans
):
    vm, host = both_sans
    set_pillar(PILLAR)
    set_pillar(PILLAR, minion=windows_minion)
    client = salt.client.get_local_client(mopts=vm_master.config.copy())
    minions = [vm_minion.id, windows_minion.id]

    def highstate() -> dict:
        results = client.cmd(minions, "state.highstate", tgt_type="list", timeout=300)
        assert set(results) == set(minions), results
        for minion_id, states in results.items():
            assert isinstance(states, dict), (minion_id, states)
            failed = {k: v["comment"] for k, v in states.items() if v["result"] is not True}
            assert not failed, (minion_id, failed)
        return results

    first = highstate()
    for minion_id in minions:
        changed = [k.split("_|-")[1] for k, v in first[minion_id].items() if v["changes"]]
        assert sorted(changed) == ["iscsi-policy-absent-1", "iscsi-policy-connected-1"], (
            minion_id,
            json.dumps(first[minion_id], default=str)[:2000],
        )
    assert admin.sessions(vm) == {(DB, PORTAL), (DB, SECOND_PORTAL)}
    assert admin.startup(vm, DB) == ("automatic", "automatic")
    windows = {(s["TargetNodeAddress"], s["IsPersistent"]) for s in host.sessions()}
    assert windows == {(DB, True)} and len(host.sessions()) == 2
    assert {lg["TargetName"] for lg in host.persistent_logins()} == {DB}

    again = highstate()
    for minion_id in minions:
        assert all(not v["changes"] for v in again[minion_id].values()), again[minion_id]
