"""Highstate enforces the pillar policy: iscsi.not_persistent through the iscsi formula."""

import pytest

from tests.support.simhost.model import SEED_TARGET

BACKUP = "iqn.1991-05.com.contoso:backup-vault"
KEEP = "iqn.1991-05.com.contoso:backup-keep"
DATABASE = "iqn.1991-05.com.contoso:db-01"

POLICY = {
    "iscsi": {
        "policy": {
            "not_persistent": [
                {"target": "iqn.1991-05.com.contoso:testiscsi-*"},
                {"target": "iqn.1991-05.com.contoso:backup-*", "portal": "10.0.9.*"},
            ],
            "exceptions": [KEEP],
        }
    }
}


@pytest.fixture
def hosts_sessions(seeded):
    """The seed's three sessions plus a backup, an excepted backup and a database target."""
    ids = {
        "seed": [s["SessionIdentifier"] for s in seeded.sessions()],
        "backup": seeded.add_session(BACKUP, persistent=True, portal="10.0.9.1"),
        "backup_other_portal": seeded.add_session(BACKUP, persistent=True, portal="10.0.1.1"),
        "keep": seeded.add_session(KEEP, persistent=True, portal="10.0.9.2"),
        "db": seeded.add_session(DATABASE, persistent=True),
    }
    return ids


def state_results(ret) -> dict:
    assert isinstance(ret.data, dict), ret
    return {key.split("_|-")[1]: value for key, value in ret.data.items()}


def test_highstate_fixes_violations_then_is_clean(minion_run, set_pillar, seeded, hosts_sessions):
    set_pillar(POLICY)
    violating = {*hosts_sessions["seed"], hosts_sessions["backup"]}

    first = minion_run.run("state.highstate")
    assert first.returncode == 0, first
    results = state_results(first)
    assert set(results) == {"iscsi-policy-not-persistent-1", "iscsi-policy-not-persistent-2"}
    seed_rule = results["iscsi-policy-not-persistent-1"]
    assert seed_rule["result"] is True
    assert set(seed_rule["changes"]) == set(hosts_sessions["seed"])
    assert seed_rule["changes"][hosts_sessions["seed"][0]] == {
        "TargetNodeAddress": SEED_TARGET,
        "IsPersistent": {"old": True, "new": False},
    }
    assert seed_rule["comment"].startswith("Made 3 session(s) non-persistent: ")
    backup_rule = results["iscsi-policy-not-persistent-2"]
    assert list(backup_rule["changes"]) == [hosts_sessions["backup"]]
    print("first run:", {k: v["comment"] for k, v in results.items()})

    assert seeded.persistent_ids() == {
        hosts_sessions["backup_other_portal"],
        hosts_sessions["keep"],
        hosts_sessions["db"],
    }
    assert not violating & seeded.persistent_ids()

    second = minion_run.run("state.highstate")
    assert second.returncode == 0, second
    results = state_results(second)
    assert all(r["changes"] == {} and r["result"] is True for r in results.values())
    assert results["iscsi-policy-not-persistent-1"]["comment"] == (
        "3 matching session(s) already non-persistent."
    )
    print("second run:", {k: v["comment"] for k, v in results.items()})


def test_test_mode_changes_nothing(minion_run, set_pillar, seeded, hosts_sessions):
    set_pillar(POLICY)
    before = seeded.persistent_ids()
    ret = minion_run.run("state.apply", "iscsi.policy", "test=True")
    results = state_results(ret)
    rule = results["iscsi-policy-not-persistent-1"]
    assert rule["result"] is None
    assert set(rule["changes"]) == set(hosts_sessions["seed"])
    assert rule["comment"].startswith("Would make 3 session(s) non-persistent")
    assert seeded.persistent_ids() == before
    assert seeded.stats()["requests"].get("unregister") is None
    print("test run:", {k: v["comment"] for k, v in results.items()})


def test_failure_on_one_session_keeps_the_others(minion_run, set_pillar, seeded, hosts_sessions):
    set_pillar(POLICY)
    bad = hosts_sessions["seed"][1]
    seeded.set_fault("fail_sessions", {bad: "persistent_remove"})
    # The state also removes leftover persistent logins: make that path fail too, or it
    # would (rightly) make the failed session non-persistent after all.
    seeded.set_fault("fail_logins", {SEED_TARGET: "persistent_remove"})
    ret = minion_run.run("state.apply", "iscsi.policy")
    assert ret.returncode != 0
    rule = state_results(ret)["iscsi-policy-not-persistent-1"]
    assert rule["result"] is False
    assert set(rule["changes"]) == {hosts_sessions["seed"][0], hosts_sessions["seed"][2]}
    assert rule["comment"].startswith(
        f"Failed for 1 session(s): {bad} ({SEED_TARGET}): Failed to remove persistent login information."
    )
    assert "Made 2 session(s) non-persistent" in rule["comment"]
    assert f"Failed to remove persistent login {SEED_TARGET} @ 10.0.0.5:3260" in rule["comment"]
    assert seeded.persistent_ids() & set(hosts_sessions["seed"]) == {bad}
    # The other rule is independent and still applied.
    assert hosts_sessions["backup"] not in seeded.persistent_ids()


def test_no_match_is_success(minion_run, set_pillar, seeded):
    set_pillar({"iscsi": {"policy": {"not_persistent": [{"target": "iqn.2000-01.com.nowhere:*"}]}}})
    rule = state_results(minion_run.run("state.apply", "iscsi.policy"))[
        "iscsi-policy-not-persistent-1"
    ]
    assert rule["result"] is True and rule["changes"] == {}
    assert rule["comment"] == "No iSCSI session matches; the policy holds (non-persistent)."


# Every malformed shape is covered by tests/unit/test_policy.py; here two of them go the
# whole way through the formula on a real minion.
@pytest.mark.parametrize(
    ("pillar", "message"),
    [
        ({"iscsi": {"policy": ["iqn.*"]}}, "pillar iscsi:policy must be a mapping"),
        (
            {"iscsi": {"policy": {"not_persistent": [{"target": 42}]}}},
            "iscsi:policy:not_persistent item 1:target must be a glob or a list of globs",
        ),
    ],
)
def test_malformed_policy_is_a_readable_error(minion_run, set_pillar, seeded, pillar, message):
    set_pillar(pillar)
    before = seeded.persistent_ids()
    ret = minion_run.run("state.apply", "iscsi.policy")
    assert ret.returncode != 0
    comments = " ".join(r["comment"] for r in state_results(ret).values())
    assert message in comments
    assert seeded.persistent_ids() == before


def test_empty_policy_is_a_no_op(minion_run, set_pillar, seeded):
    set_pillar({})
    ret = minion_run.run("state.apply", "iscsi.policy")
    assert ret.returncode == 0, ret
    (result,) = state_results(ret).values()
    assert result["result"] is True and result["changes"] == {}
    assert "nothing to enforce" in result["comment"]


def test_stale_and_mpio_persistent_logins_are_removed_by_highstate(
    minion_run, set_pillar, seeded, hosts_sessions
):
    """Targets unreachable today have no session but would reconnect at boot."""
    offsite = "iqn.1991-05.com.contoso:backup-offsite"
    seeded.add_persistent_login(offsite, portal="10.0.9.8")  # stale: target down
    seeded.add_persistent_login("iqn.1991-05.com.contoso:testiscsi-mpio", count=3)  # MPIO x3
    seeded.add_persistent_login(offsite, portal="10.0.1.8")  # other portal: rule 2 does not match
    set_pillar(POLICY)

    ret = minion_run.run("state.highstate")
    assert ret.returncode == 0, ret
    results = state_results(ret)
    rule1 = results["iscsi-policy-not-persistent-1"]
    assert rule1["changes"][
        "persistent login iqn.1991-05.com.contoso:testiscsi-mpio @ 10.0.0.5:3260"
    ] == {
        "entries": 3,
        "old": "present",
        "new": "removed",
    }
    assert "Removed 3 persistent login(s) without a persistent session" in rule1["comment"]
    rule2 = results["iscsi-policy-not-persistent-2"]
    assert f"persistent login {offsite} @ 10.0.9.8:3260" in rule2["changes"]
    left = {(lg["TargetName"], lg["TargetPortal"]["Address"]) for lg in seeded.persistent_logins()}
    assert ("iqn.1991-05.com.contoso:testiscsi-mpio", "10.0.0.5") not in left
    assert (offsite, "10.0.9.8") not in left
    assert (offsite, "10.0.1.8") in left

    second = state_results(minion_run.run("state.highstate"))
    assert all(r["changes"] == {} for r in second.values())


def test_check_policy_agrees_with_the_state(minion_run, set_pillar, seeded, hosts_sessions):
    """The beacon's and the report's evaluation and the formula share one parser."""
    set_pillar(POLICY)
    ret = minion_run.run("iscsi.check_policy")
    assert ret.returncode == 0, ret
    assert ret.data["compliant"] is False and ret.data["rules"] == 2
    forbidden = {v["session"] for v in ret.data["violations"] if v["kind"] == "session"}
    assert forbidden == {*hosts_sessions["seed"], hosts_sessions["backup"]}
    assert minion_run.run("state.apply", "iscsi.policy").returncode == 0
    ret = minion_run.run("iscsi.check_policy")
    assert (ret.data["compliant"], ret.data["rules"], ret.data["violations"]) == (True, 2, [])
    assert ret.data["risks"] == []
    assert seeded.persistent_ids() == {
        hosts_sessions["backup_other_portal"],
        hosts_sessions["keep"],
        hosts_sessions["db"],
    }
