"""The iscsi execution module through Salt's real loader, against the simulated host."""

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.support.simhost.model import SEED_TARGET

OTHER_TARGET = "iqn.1991-05.com.contoso:backup-vault"


@pytest.fixture
def ids(seeded):
    return [s["SessionIdentifier"] for s in seeded.sessions()]


def test_get_sessions_fields_and_filters(iscsi, seeded, ids):
    extra = seeded.add_session(OTHER_TARGET, persistent=False, portal="10.0.9.9")
    sessions = iscsi.get_sessions()
    assert [s["SessionIdentifier"] for s in sessions] == [*ids, extra]
    assert set(sessions[0]) >= {
        "SessionIdentifier",
        "TargetNodeAddress",
        "InitiatorNodeAddress",
        "IsPersistent",
        "IsConnected",
        "IsMultipathEnabled",
        "NumberOfConnections",
    }
    assert "Connections" not in sessions[0]
    by_target = iscsi.get_sessions(target_node_address="IQN.1991-05.com.contoso:backup-*")
    assert [s["SessionIdentifier"] for s in by_target] == [extra]
    assert [s["SessionIdentifier"] for s in iscsi.get_sessions(is_persistent=False)] == [extra]
    assert [s["SessionIdentifier"] for s in iscsi.get_sessions(target_portal="10.0.9.*")] == [extra]
    assert (
        iscsi.get_sessions(target_portal="10.0.9.9:3260")[0]["Connections"][0]["TargetAddress"]
        == "10.0.9.9"
    )
    assert [
        s["SessionIdentifier"] for s in iscsi.get_sessions(session_identifier=f"{ids[0]},{ids[2]}")
    ] == [
        ids[0],
        ids[2],
    ]
    assert iscsi.get_sessions(initiator_node_address="iqn.2000-01.com.other:*") == []


def test_unregister_one_session_keeps_the_others(iscsi, seeded, ids):
    result = iscsi.unregister_session(session_identifier=ids[0])
    assert result == {ids[0]: {"TargetNodeAddress": SEED_TARGET, "status": "unregistered"}}
    assert seeded.persistent_ids() == {ids[1], ids[2]}
    # Unregistering is not a logout: the session is still there and connected.
    assert [s["IsConnected"] for s in seeded.sessions()] == [True, True, True]


def test_unregister_reports_every_case(iscsi, seeded, ids):
    iscsi.unregister_session(session_identifier=ids[1])
    result = iscsi.unregister_session(session_identifier=[ids[0], ids[1], "ffff-does-not-exist"])
    assert {sid: r["status"] for sid, r in result.items()} == {
        ids[0]: "unregistered",
        ids[1]: "not_persistent",
        "ffff-does-not-exist": "not_found",
    }
    assert seeded.persistent_ids() == {ids[2]}


def test_unregister_by_input_objects_and_passthru(iscsi, seeded, ids):
    chosen = iscsi.get_sessions(session_identifier=ids[1:])
    after = iscsi.unregister_session(sessions=chosen, passthru=True)
    assert [s["SessionIdentifier"] for s in after] == ids[1:]
    assert [s["IsPersistent"] for s in after] == [False, False]
    assert seeded.persistent_ids() == {ids[0]}


def test_unregister_by_target_pattern(iscsi, seeded, ids):
    keep = seeded.add_session(OTHER_TARGET, persistent=True)
    result = iscsi.unregister_session(target_node_address="*:testiscsi-*")
    assert sorted(result) == sorted(ids)
    assert seeded.persistent_ids() == {keep}


def test_test_mode_changes_nothing(iscsi, seeded, ids):
    result = iscsi.unregister_session(target_node_address="*", test=True)
    assert {r["status"] for r in result.values()} == {"would_unregister"}
    assert seeded.persistent_ids() == set(ids)
    assert seeded.stats()["requests"].get("unregister") is None


def test_selection_is_required_and_validated(iscsi, seeded):
    with pytest.raises(SaltInvocationError, match="no session selected"):
        iscsi.unregister_session()
    with pytest.raises(SaltInvocationError, match="target_node_address must be a string"):
        iscsi.unregister_session(target_node_address=42)
    with pytest.raises(SaltInvocationError, match="empty value"):
        iscsi.unregister_session(session_identifier="a,,b")
    with pytest.raises(SaltInvocationError, match="SessionIdentifier"):
        iscsi.unregister_session(sessions=[{"TargetNodeAddress": "x"}])
    assert seeded.stats()["processes"] == 0


def test_one_process_for_a_hundred_sessions(iscsi, seeded):
    for _ in range(97):
        seeded.add_session(SEED_TARGET, persistent=True)
    seeded.reset_stats()
    result = iscsi.unregister_session(target_node_address=SEED_TARGET)
    assert len(result) == 100
    assert {r["status"] for r in result.values()} == {"unregistered"}
    assert seeded.persistent_ids() == set()
    stats = seeded.stats()
    assert stats["processes"] == 1
    # ...and one to take the unregistered targets' volumes off the bound list.
    assert stats["requests"] == {"get_sessions": 2, "unregister": 1, "unbind_volumes": 1}


def test_partial_failure_is_reported_and_keeps_the_rest(iscsi, loaders, seeded, ids):
    seeded.set_fault("fail_sessions", {ids[1]: "persistent_remove"})
    result = iscsi.unregister_session(session_identifier=ids)
    assert result[ids[0]]["status"] == "unregistered"
    assert result[ids[2]]["status"] == "unregistered"
    assert result[ids[1]] == {
        "TargetNodeAddress": SEED_TARGET,
        "status": "failed",
        "error": "Failed to remove persistent login information. "
        "(NotSpecified, HRESULT 0xefff0042,Unregister-IscsiSession)",
    }
    assert loaders.context.get("retcode") == 1
    assert seeded.persistent_ids() == {ids[1]}
    with pytest.raises(
        CommandExecutionError, match=rf"{ids[1]}: Failed to remove.*unregistered: none"
    ):
        iscsi.unregister_session(session_identifier=ids, passthru=True)


@pytest.mark.parametrize("removes", ["one", "all"])
def test_mpio_registrations_are_all_removed(iscsi, seeded, ids, removes):
    """Whether Windows removes one or all logins per call, none is left."""
    seeded.set_behaviour("unregister_removes", removes)
    seeded.register_by_hand(ids[0], multipath=True)
    seeded.register_by_hand(ids[0], multipath=True)
    assert sum(lg["session"] == ids[0] for lg in seeded.persistent_logins()) == 3
    assert iscsi.unregister_session(session_identifier=ids[0])[ids[0]]["status"] == "unregistered"
    assert [lg for lg in seeded.persistent_logins() if lg["session"] == ids[0]] == []


@pytest.mark.parametrize("non_persistent", ["noop", "error"])
def test_non_persistent_sessions_are_not_touched(iscsi, seeded, ids, non_persistent):
    seeded.set_behaviour("unregister_non_persistent", non_persistent)
    iscsi.unregister_session(session_identifier=ids[0])
    again = iscsi.unregister_session(session_identifier=ids[0])
    assert again[ids[0]]["status"] == "not_persistent"


def test_register_is_the_inverse(iscsi, seeded, ids):
    iscsi.unregister_session(session_identifier=ids[0])
    result = iscsi.register_session(session_identifier=ids[:2])
    assert {sid: r["status"] for sid, r in result.items()} == {
        ids[0]: "registered",
        ids[1]: "already_persistent",
    }
    assert seeded.persistent_ids() == set(ids)
    forced = iscsi.register_session(
        session_identifier=ids[1], force=True, is_multipath_enabled=True
    )
    assert forced[ids[1]]["status"] == "registered"
    logins = [lg for lg in seeded.persistent_logins() if lg["session"] == ids[1]]
    assert len(logins) == 2 and logins[-1]["IsMultipathEnabled"] is True


def test_register_chap_secret_stays_secret(iscsi, seeded, ids, caplog):
    import hashlib

    secret = "Sup3r-S3cret!1"
    iscsi.unregister_session(session_identifier=ids[:2])
    seeded.set_fault("fail_sessions", {ids[1]: "persistent_save"})
    with caplog.at_level(1):
        result = iscsi.register_session(
            session_identifier=ids[:2], chap_username="deepcore", chap_secret=secret
        )
    assert result[ids[0]]["status"] == "registered"
    assert result[ids[1]]["status"] == "failed"
    login = [lg for lg in seeded.persistent_logins() if lg["session"] == ids[0]][-1]
    assert login["chap_username"] == "deepcore"
    assert login["chap_secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in repr(result)
    assert secret not in caplog.text
    with pytest.raises(SaltInvocationError, match="12 to 16 bytes") as err:
        iscsi.register_session(session_identifier=ids[0], chap_secret="short")
    assert "short" not in str(err.value)


def test_windows_errors_name_the_cause(iscsi, seeded):
    seeded.set_fault("access_denied", True)
    with pytest.raises(
        CommandExecutionError, match=r"'get_sessions' failed: Access denied \(PermissionDenied"
    ):
        iscsi.get_sessions()
    seeded.clear_faults()
    seeded.set_fault("service_stopped", True)
    with pytest.raises(CommandExecutionError, match="Initiator Service is not running"):
        iscsi.unregister_session(target_node_address="*")
