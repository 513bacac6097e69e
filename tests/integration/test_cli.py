"""The module as an admin uses it: salt and salt-call against a real master and minion."""

from tests.support.simhost.model import SEED_TARGET


def test_salt_lists_and_unregisters(salt_cli, minion, seeded):
    ids = [s["SessionIdentifier"] for s in seeded.sessions()]
    ret = salt_cli.run("iscsi.get_sessions", minion_tgt=minion.id)
    assert ret.returncode == 0, ret
    assert [s["SessionIdentifier"] for s in ret.data] == ids

    ret = salt_cli.run(
        "iscsi.unregister_session", f"session_identifier={ids[0]}", minion_tgt=minion.id
    )
    assert ret.returncode == 0, ret
    assert ret.data == {ids[0]: {"TargetNodeAddress": SEED_TARGET, "status": "unregistered"}}
    assert seeded.persistent_ids() == set(ids[1:])


def test_salt_call_comma_list_and_test_mode(salt_call_cli, seeded):
    ids = [s["SessionIdentifier"] for s in seeded.sessions()]
    ret = salt_call_cli.run(
        "iscsi.unregister_session", f"session_identifier={ids[1]},{ids[2]}", "test=True"
    )
    assert ret.returncode == 0, ret
    assert {r["status"] for r in ret.data.values()} == {"would_unregister"}
    assert seeded.persistent_ids() == set(ids)

    ret = salt_call_cli.run("iscsi.unregister_session", f"session_identifier={ids[1]},{ids[2]}")
    assert {r["status"] for r in ret.data.values()} == {"unregistered"}
    assert seeded.persistent_ids() == {ids[0]}


def test_partial_failure_sets_the_exit_code(salt_call_cli, seeded):
    ids = [s["SessionIdentifier"] for s in seeded.sessions()]
    seeded.set_fault("fail_sessions", {ids[2]: "access_denied"})
    ret = salt_call_cli.run("iscsi.unregister_session", f"target_node_address={SEED_TARGET}")
    assert ret.returncode == 1
    assert ret.data[ids[2]]["status"] == "failed"
    assert ret.data[ids[2]]["error"].startswith("Access denied (PermissionDenied")
    assert seeded.persistent_ids() == {ids[2]}


def test_register_round_trip(salt_cli, minion, seeded):
    ids = [s["SessionIdentifier"] for s in seeded.sessions()]
    salt_cli.run("iscsi.unregister_session", "target_node_address=*", minion_tgt=minion.id)
    assert seeded.persistent_ids() == set()
    ret = salt_cli.run(
        "iscsi.register_session", f"session_identifier={ids[0]}", minion_tgt=minion.id
    )
    assert ret.data[ids[0]]["status"] == "registered"
    assert seeded.persistent_ids() == {ids[0]}


def test_bad_input_is_a_clear_error(salt_call_cli, seeded):
    ret = salt_call_cli.run("iscsi.unregister_session")
    assert ret.returncode != 0
    assert "no session selected" in ret.stdout + ret.stderr
