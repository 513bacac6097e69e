"""Scenario 2: ``iscsi.unregister_session`` on one of two persistent targets and
``iscsi.register_session`` on a third connected by hand, then one real reboot: the
unregistered one does not come back, the registered one does, the other stays."""

from __future__ import annotations

import pytest

from tests.integration.real_initiator.conftest import PORTAL, call, fresh
from tests.support.initiator_vm import admin
from tests.support.initiator_vm.targets import Target

pytestmark = pytest.mark.real_initiator

KEEP = "iqn.2003-01.org.example:keep"
DROP = "iqn.2003-01.org.example:drop"
ADD = "iqn.2003-01.org.example:add"


@pytest.fixture(scope="module")
def both_persistent(vm):
    """KEEP and DROP automatic, logged in as the boot service does; ADD connected by hand."""
    fresh(vm, [Target(KEEP), Target(DROP), Target(ADD)])
    admin.discover(vm)
    for target in (KEEP, DROP):
        admin.set_startup(vm, target, PORTAL, node="automatic", conn="automatic")
    vm.iscsiadm("-m", "node", "--loginall=automatic")
    admin.login(vm, ADD)
    assert admin.sessions(vm) == {(KEEP, PORTAL), (DROP, PORTAL), (ADD, PORTAL)}
    return vm


def sid_of(local_cli, minion, target: str) -> str:
    (session,) = call(local_cli, minion, "iscsi.get_sessions", f"target_node_address={target}")
    return session["SessionIdentifier"]


def test_unregistered_stays_away_and_registered_comes_back_after_a_reboot(
    local_cli, vm_minion, both_persistent
):
    vm = both_persistent
    drop, add = sid_of(local_cli, vm_minion, DROP), sid_of(local_cli, vm_minion, ADD)
    # Quoted: Linux session ids are numbers, which Salt's CLI would parse as int.
    report = call(local_cli, vm_minion, "iscsi.unregister_session", f"session_identifier='{drop}'")
    assert report == {drop: {"TargetNodeAddress": DROP, "status": "unregistered"}}
    report = call(local_cli, vm_minion, "iscsi.register_session", f"target_node_address={ADD}")
    assert report == {add: {"TargetNodeAddress": ADD, "status": "registered"}}
    assert admin.startup(vm, DROP) == ("manual", "manual")
    assert admin.startup(vm, ADD) == ("automatic", "automatic")
    assert admin.startup(vm, KEEP) == ("automatic", "automatic")
    assert len(admin.sessions(vm)) == 3  # all still connected

    vm.reboot()
    assert admin.sessions(vm) == {(KEEP, PORTAL), (ADD, PORTAL)}
    sessions = call(local_cli, vm_minion, "iscsi.get_sessions")
    assert sorted((s["TargetNodeAddress"], s["IsPersistent"]) for s in sessions) == [
        (ADD, True),
        (KEEP, True),
    ]
    logins = call(local_cli, vm_minion, "iscsi.get_persistent_logins")
    assert sorted(lg["TargetName"] for lg in logins) == [ADD, KEEP]


def test_a_session_id_as_typed_on_the_command_line(local_cli, vm_minion, both_persistent):
    sid = sid_of(local_cli, vm_minion, KEEP)
    ret = local_cli.run(
        "iscsi.unregister_session", f"session_identifier={sid}", "test=True",
        minion_tgt=vm_minion.id,
    )  # fmt: skip
    assert ret.returncode == 0, ret
    assert ret.data == {sid: {"TargetNodeAddress": KEEP, "status": "would_unregister"}}
