"""The initiator's persistent-login list: entries with and without live sessions."""

import pytest
from salt.exceptions import SaltInvocationError

from saltext_win_iscsi.beacon.monitor import Scope
from tests.support.simhost.model import SEED_TARGET

DOWN = "iqn.1991-05.com.contoso:backup-offsite"


def test_list_shows_entries_without_sessions(iscsi, seeded):
    seeded.add_persistent_login(DOWN, portal="10.0.9.7")
    logins = iscsi.get_persistent_logins()
    assert [lg["TargetName"] for lg in logins] == [SEED_TARGET] * 3 + [DOWN]
    assert logins[-1] == {
        "TargetName": DOWN,
        "InitiatorInstance": "ROOT\\ISCSIPRT\\0000_0",
        "InitiatorPortNumber": 4294967295,
        "TargetPortalAddress": "10.0.9.7",
        "TargetPortalPort": 3260,
        "IsMultipathEnabled": False,
        "AuthenticationType": "NONE",
        "ChapUsername": "",
    }
    assert iscsi.get_persistent_logins(target_portal="10.0.9.*") == logins[-1:]
    assert iscsi.get_persistent_logins(exclude_target_node_address="*:testiscsi-*") == logins[-1:]


def test_remove_stale_entry_keeps_the_rest(iscsi, seeded):
    seeded.add_persistent_login(DOWN, portal="10.0.9.7")
    seeded.reset_stats()
    report = iscsi.remove_persistent_login(target_node_address="*:backup-*")
    assert [(e["TargetName"], e["entries"], e["status"]) for e in report] == [(DOWN, 1, "removed")]
    assert [lg["TargetName"] for lg in seeded.persistent_logins()] == [SEED_TARGET] * 3
    assert seeded.stats()["processes"] == 1


@pytest.mark.parametrize("removes", ["one", "all"])
def test_mpio_entries_all_go(iscsi, seeded, removes):
    seeded.set_behaviour("remove_persistent_removes", removes)
    seeded.add_persistent_login(DOWN, count=3)
    (entry,) = iscsi.remove_persistent_login(target_node_address=DOWN)
    assert entry["entries"] == 3 and entry["status"] == "removed"
    assert not [lg for lg in seeded.persistent_logins() if lg["TargetName"] == DOWN]


def test_test_mode_removes_nothing(iscsi, seeded):
    seeded.add_persistent_login(DOWN)
    (entry,) = iscsi.remove_persistent_login(target_node_address=DOWN, test=True)
    assert entry["status"] == "would_remove"
    assert len(seeded.persistent_logins()) == 4
    assert seeded.stats()["requests"].get("remove_persistent_logins") is None


def test_failure_is_named(iscsi, loaders, seeded):
    seeded.add_persistent_login(DOWN)
    seeded.set_fault("fail_logins", {DOWN: "persistent_remove"})
    (entry,) = iscsi.remove_persistent_login(target_node_address=DOWN)
    assert entry["status"] == "failed"
    assert entry["error"].startswith("Failed to remove persistent login information.")
    assert loaders.context.get("retcode") == 1
    assert len(seeded.persistent_logins()) == 4


def test_target_is_required(iscsi, seeded):
    with pytest.raises(SaltInvocationError, match="target_node_address is required"):
        iscsi.remove_persistent_login()


def test_misreported_is_persistent_is_still_caught_by_the_list(iscsi, seeded):
    """Windows reports IsPersistent False for a session that does have a persistent login."""
    sid = seeded.sessions()[0]["SessionIdentifier"]
    seeded.set_behaviour("misreport_persistent", [sid])
    assert iscsi.unregister_session(session_identifier=sid)[sid]["status"] == "not_persistent"
    (entry,) = iscsi.remove_persistent_login(target_node_address=SEED_TARGET)
    assert entry["entries"] == 3 and entry["status"] == "removed"
    assert seeded.persistent_logins() == []


def test_the_beacons_check_sees_a_new_entry(checker, seeded):
    digest, _ = checker.look(None, Scope(sessions=False), 10)
    assert checker.look(digest, Scope(sessions=False), 10) == (digest, None)
    seeded.add_persistent_login(DOWN)
    again, snapshot = checker.look(digest, Scope(sessions=False), 10)
    assert again != digest and len(snapshot.sessions) == 3
    assert [lg["TargetName"] for lg in snapshot.logins] == [SEED_TARGET] * 3 + [DOWN]


def test_a_logins_only_check_does_not_enumerate_the_sessions(checker, seeded):
    """With rules on persistence alone the digest is the persistent-login list's: a new
    non-persistent session leaves it as it was."""
    logins_only, with_sessions = Scope(sessions=False), Scope(sessions=True)
    digest, _ = checker.look(None, logins_only, 10)
    full, _ = checker.look(None, with_sessions, 10)
    seeded.add_session(DOWN)
    assert checker.look(digest, logins_only, 10) == (digest, None)
    assert checker.look(full, with_sessions, 10)[0] != full
    seeded.add_persistent_login(DOWN)
    assert checker.look(digest, logins_only, 10)[0] != digest
