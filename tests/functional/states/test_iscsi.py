"""The state module through Salt's loader: each state is one execution-module call, one
PowerShell process on the simulated host, whatever it has to do."""

import pytest

from tests.support.simhost.model import SEED_TARGET

DOWN = "iqn.1991-05.com.contoso:testiscsi-offsite"
OFFERED = "iqn.1991-05.com.contoso:offered"


@pytest.fixture
def states(loaders):
    return loaders.states.iscsi


@pytest.fixture
def san(seeded):
    """The SAN offers a target on 10.0.9.5 and on [fe80::1]."""
    seeded.add_network_target(OFFERED, portals=("10.0.9.5:3260", "[fe80::1]:3260"))
    return seeded


def test_a_remediation_run_is_one_powershell_process(states, seeded):
    """Unregister three sessions, remove a stale login, name the disks: one process."""
    seeded.add_persistent_login(DOWN, portal="10.0.9.8")
    seeded.reset_stats()
    ret = states.not_persistent("iqn.1991-05.com.contoso:testiscsi-*")
    assert ret["result"] is True, ret
    assert len([k for k in ret["changes"] if not k.startswith("persistent login")]) == 3
    assert f"persistent login {DOWN} @ 10.0.9.8:3260" in ret["changes"]
    assert seeded.persistent_logins() == []
    stats = seeded.stats()
    assert stats["processes"] == 1, stats
    # What the process served: the change, the login removal, the disks behind them.
    assert stats["requests"]["unregister"] >= 1
    assert stats["requests"]["remove_persistent_logins"] == 1


def test_the_second_run_changes_nothing_and_is_one_process(states, seeded):
    states.not_persistent(SEED_TARGET)
    seeded.reset_stats()
    ret = states.not_persistent(SEED_TARGET)
    assert (ret.result, ret.changes) == (True, {})
    assert ret.comment == "3 matching session(s) already non-persistent."
    assert seeded.stats()["processes"] == 1


def test_test_mode_reports_and_changes_nothing(states, seeded):
    seeded.add_persistent_login(DOWN, portal="10.0.9.8")
    before = seeded.read()
    ret = states.not_persistent("iqn.1991-05.com.contoso:testiscsi-*", test=True)
    assert ret["result"] is None
    assert ret["comment"].startswith("Would make 3 session(s) non-persistent")
    assert f"persistent login {DOWN} @ 10.0.9.8:3260" in ret["changes"]
    # The seed's own logins go with its sessions: not listed as leftovers.
    assert f"persistent login {SEED_TARGET} @ 10.0.0.5:3260" not in ret["changes"]
    after = seeded.read()
    assert after["sessions"] == before["sessions"]
    assert after["persistent_logins"] == before["persistent_logins"]


def test_the_comment_names_what_goes_missing_after_a_restart(states, seeded):
    seeded.reset()
    seeded.add_session(
        "iqn.1991-05.com.contoso:testiscsi-data",
        persistent=True,
        disks=[{"Number": 3, "FriendlyName": "DATA", "Volumes": [{"DriveLetter": "E"}]}],
    )
    ret = states.not_persistent("iqn.1991-05.com.contoso:testiscsi-*")
    assert "After the next restart these will be missing: disk 3 (DATA) with E:." in ret["comment"]


def test_persistent_registers_again(states, seeded):
    ids = [s["SessionIdentifier"] for s in seeded.sessions()]
    states.not_persistent(SEED_TARGET)
    seeded.reset_stats()
    ret = states.persistent(SEED_TARGET)
    assert ret["result"] is True and set(ret["changes"]) == set(ids)
    assert ret["comment"].startswith("Made 3 session(s) persistent")
    assert seeded.persistent_ids() == set(ids)
    assert seeded.stats()["processes"] == 1


def test_a_portal_state_is_one_process(states, san):
    san.reset_stats()
    ret = states.portal_present("10.0.9.5")
    assert ret["result"] is True and ret["comment"] == "Added portal 10.0.9.5:3260."
    assert ret["changes"] == {"portal 10.0.9.5:3260": {"old": "absent", "new": "present"}}
    assert san.stats()["processes"] == 1
    again = states.portal_present("10.0.9.5")
    assert again["changes"] == {} and again["comment"] == "Portal 10.0.9.5:3260 is present."
    gone = states.portal_absent("10.0.9.5")
    assert gone["comment"] == "Removed portal 10.0.9.5:3260."


def test_an_ipv6_portal_is_bracketed(states, san):
    ret = states.portal_present("fe80::1", test=True)
    assert ret["comment"] == "Would add portal [fe80::1]:3260."


def test_invalid_arguments_are_a_failed_state(states, seeded):
    ret = states.not_persistent("x", target_node_address=42)
    assert ret["result"] is False and ret["changes"] == {}
    assert ret["comment"].startswith("Invalid arguments: target_node_address must be a string")
