"""Scenario 2: ``iscsi.unregister_session`` on one of two targets, then a real reboot:
only the other comes back; ``iscsi.register_session``, reboot: it comes back."""

from __future__ import annotations

import pytest

from tests.integration.real_initiator.conftest import PORTAL, call, fresh
from tests.support.initiator_vm import admin
from tests.support.initiator_vm.targets import Target

pytestmark = pytest.mark.real_initiator

KEEP = "iqn.2003-01.org.example:keep"
DROP = "iqn.2003-01.org.example:drop"


@pytest.fixture(scope="module")
def both_persistent(vm):
    """Both targets automatic, logged in as the boot service does."""
    fresh(vm, [Target(KEEP), Target(DROP)])
    admin.discover(vm)
    for target in (KEEP, DROP):
        admin.set_startup(vm, target, PORTAL, node="automatic", conn="automatic")
    vm.iscsiadm("-m", "node", "--loginall=automatic")
    assert admin.sessions(vm) == {(KEEP, PORTAL), (DROP, PORTAL)}
    return vm


def sid_of(salt_cli, minion, target: str) -> str:
    (session,) = call(salt_cli, minion, "iscsi.get_sessions", f"target_node_address={target}")
    return session["SessionIdentifier"]


def test_unregistered_does_not_come_back_after_a_reboot(salt_cli, vm_minion, both_persistent):
    vm = both_persistent
    sid = sid_of(salt_cli, vm_minion, DROP)
    # Quoted: Linux session ids are numbers, which Salt's CLI would parse as int.
    report = call(salt_cli, vm_minion, "iscsi.unregister_session", f"session_identifier='{sid}'")
    assert report == {sid: {"TargetNodeAddress": DROP, "status": "unregistered"}}
    assert admin.startup(vm, DROP) == ("manual", "manual")
    assert admin.startup(vm, KEEP) == ("automatic", "automatic")
    assert admin.sessions(vm) == {(KEEP, PORTAL), (DROP, PORTAL)}  # still connected

    vm.reboot()
    assert admin.sessions(vm) == {(KEEP, PORTAL)}
    sessions = call(salt_cli, vm_minion, "iscsi.get_sessions")
    assert [(s["TargetNodeAddress"], s["IsPersistent"]) for s in sessions] == [(KEEP, True)]
    logins = call(salt_cli, vm_minion, "iscsi.get_persistent_logins")
    assert [lg["TargetName"] for lg in logins] == [KEEP]


def test_registered_comes_back_after_a_reboot(salt_cli, vm_minion, both_persistent):
    vm = both_persistent
    admin.set_startup(vm, DROP, PORTAL, node="manual", conn="manual")
    if (DROP, PORTAL) not in admin.sessions(vm):
        admin.login(vm, DROP)  # connected by hand, not persistent
    sid = sid_of(salt_cli, vm_minion, DROP)
    report = call(salt_cli, vm_minion, "iscsi.register_session", f"target_node_address={DROP}")
    assert report == {sid: {"TargetNodeAddress": DROP, "status": "registered"}}
    assert admin.startup(vm, DROP) == ("automatic", "automatic")

    vm.reboot()
    assert admin.sessions(vm) == {(KEEP, PORTAL), (DROP, PORTAL)}
    sessions = call(salt_cli, vm_minion, "iscsi.get_sessions")
    assert sorted((s["TargetNodeAddress"], s["IsPersistent"]) for s in sessions) == [
        (DROP, True),
        (KEEP, True),
    ]


def test_a_session_id_as_typed_on_the_command_line(salt_cli, vm_minion, both_persistent):
    sid = sid_of(salt_cli, vm_minion, KEEP)
    ret = salt_cli.run(
        "iscsi.unregister_session", f"session_identifier={sid}", "test=True",
        minion_tgt=vm_minion.id,
    )  # fmt: skip
    assert ret.returncode == 0, ret
    assert ret.data == {sid: {"TargetNodeAddress": KEEP, "status": "would_unregister"}}
