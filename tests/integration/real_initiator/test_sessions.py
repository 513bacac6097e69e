"""Scenario 1: ``iscsi.get_sessions`` lists the guest's real sessions with the documented
fields: two portals of one target are two sessions, ``disks=True`` shows the real disks,
and a CHAP session says so without its secret ever leaving the guest."""

from __future__ import annotations

import pytest

from tests.integration.real_initiator.conftest import PORTAL, SECOND_PORTAL, call, fresh, wait_for
from tests.support.initiator_vm import admin
from tests.support.initiator_vm.machine import INITIATOR
from tests.support.initiator_vm.targets import Chap, Target

pytestmark = pytest.mark.real_initiator

MULTIPATH = "iqn.2003-01.org.example:mpio"
TWO_LUNS = "iqn.2003-01.org.example:two-luns"
CHAP_TARGET = "iqn.2003-01.org.example:chap"
CHAP = Chap("vm-initiator", "Chap-S3cret-in-the-vm")
TARGETS = [
    Target(MULTIPATH, portals=(PORTAL, SECOND_PORTAL)),
    Target(TWO_LUNS, luns=2),
    Target(CHAP_TARGET, chap=CHAP),
]
# The fields docs/linux.md documents for a Linux session.
FIELDS = {
    "SessionIdentifier", "TargetNodeAddress", "InitiatorNodeAddress", "InitiatorInstanceName",
    "InitiatorPortalAddress", "IsConnected", "IsPersistent", "AuthenticationType",
    "IsHeaderDigest", "IsDataDigest", "NumberOfConnections", "Connections",
    "TargetPortalGroupTag", "PersistentPortalAddress", "PersistentPortalPort", "Transport",
    "SessionState", "ConnectionState", "StartupMode", "AttachedDisks",
}  # fmt: skip


@pytest.fixture(scope="module")
def logged_in(vm):
    """Four sessions (two paths to MULTIPATH), every disk attached; records manual."""
    fresh(vm, TARGETS)
    admin.discover(vm)
    admin.set_chap(vm, CHAP_TARGET, PORTAL, CHAP)
    vm.iscsiadm("-m", "node", "--loginall=all")

    def attached():
        """every LUN of every session is a disk in the guest"""
        return sorted(len(d) for d in admin.disks(vm).values()) == [1, 1, 1, 2]

    wait_for(attached)
    return vm


def test_the_real_sessions_with_the_documented_fields(local_cli, vm_minion, logged_in):
    sessions = call(local_cli, vm_minion, "iscsi.get_sessions")
    real = admin.session_ids(logged_in)
    assert len(real) == 4
    assert {
        s["SessionIdentifier"]: (
            s["TargetNodeAddress"],
            f"{s['Connections'][0]['TargetAddress']}:{s['Connections'][0]['TargetPortNumber']}",
        )
        for s in sessions
    } == real
    for session in sessions:
        assert set(session) >= FIELDS, sorted(FIELDS - set(session))
        assert session["InitiatorNodeAddress"] == INITIATOR
        assert session["InitiatorInstanceName"] == "default"
        assert session["Transport"] == "tcp"
        assert (session["IsConnected"], session["SessionState"]) == (True, "LOGGED_IN")
        assert (session["IsPersistent"], session["StartupMode"]) == (False, "manual")
        assert session["NumberOfConnections"] == 1
        portal = session["Connections"][0]
        assert (session["PersistentPortalAddress"], session["PersistentPortalPort"]) == (
            portal["TargetAddress"],
            portal["TargetPortNumber"],
        )


def test_two_portals_are_two_sessions(local_cli, vm_minion, logged_in):
    paths = call(local_cli, vm_minion, "iscsi.get_sessions", f"target_node_address={MULTIPATH}")
    assert sorted(s["Connections"][0]["TargetAddress"] for s in paths) == [
        "127.0.0.1",
        "127.0.0.2",
    ]
    assert len({s["SessionIdentifier"] for s in paths}) == 2
    second = call(local_cli, vm_minion, "iscsi.get_sessions", "target_portal=127.0.0.2")
    assert [(s["TargetNodeAddress"], s["PersistentPortalAddress"]) for s in second] == [
        (MULTIPATH, "127.0.0.2")
    ]


def test_disks_are_the_real_block_devices(local_cli, vm_minion, logged_in):
    sessions = call(local_cli, vm_minion, "iscsi.get_sessions", "disks=True")
    real = admin.disks(logged_in)  # the guest's sysfs, not iscsiadm's text
    # The same disks; their order is the kernel's scan order, not a promise.
    found = {s["SessionIdentifier"]: sorted(s["AttachedDisks"]) for s in sessions}
    assert found == {sid: sorted(names) for sid, names in real.items()}
    (two,) = [s for s in sessions if s["TargetNodeAddress"] == TWO_LUNS]
    assert len(two["AttachedDisks"]) == 2
    assert all(d.startswith("sd") for s in sessions for d in s["AttachedDisks"])


def test_a_chap_session_says_so_and_its_secret_stays_in_the_guest(local_cli, vm_minion, logged_in):
    ret = local_cli.run("iscsi.get_sessions", minion_tgt=vm_minion.id)
    kinds = {s["TargetNodeAddress"]: s["AuthenticationType"] for s in ret.data}
    assert kinds == {MULTIPATH: "NONE", TWO_LUNS: "NONE", CHAP_TARGET: "ONEWAYCHAP"}
    logins = local_cli.run("iscsi.get_persistent_logins", minion_tgt=vm_minion.id)
    for text in (ret.stdout, logins.stdout, _log(vm_minion)):
        assert CHAP.secret not in text
    # The target really demands CHAP: without the record's credentials, no login.
    record = ["-m", "node", "-T", CHAP_TARGET, "-p", PORTAL]
    logged_in.iscsiadm(*record, "--logout")
    logged_in.iscsiadm(
        *record, "-o", "update",
        "-n", "node.session.auth.username", "-v", "", "-n", "node.session.auth.password", "-v", "",
    )  # fmt: skip
    refused = logged_in.run(["iscsiadm", *record, "--login"], ok=(24,))
    assert "authorization failure" in refused.stdout + refused.stderr
    admin.set_chap(logged_in, CHAP_TARGET, PORTAL, CHAP)
    admin.login(logged_in, CHAP_TARGET)


def _log(minion) -> str:
    with open(minion.config["log_file"], errors="replace") as handle:
        return handle.read()
