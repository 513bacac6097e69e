"""The whole lifecycle from pillar through highstate, real master and minion: connect two
targets (one over two MPIO paths with CHAP), make one non-persistent, remove a third; the
second run changes nothing."""

import hashlib

import pytest

from tests.integration.conftest import CHAP_SECRET
from tests.integration.test_policy_state import state_results

DB = "iqn.1991-05.com.contoso:db-01"
APP = "iqn.1991-05.com.contoso:app-01"
SCRATCH = "iqn.1991-05.com.contoso:scratch-01"
OLD = "iqn.1991-05.com.contoso:old-01"
PILLAR = {
    "iscsi": {
        "policy": {
            "connected": [
                {
                    "target": DB,
                    "portals": ["10.0.1.5", "10.0.2.5"],
                    "multipath": True,
                    "authentication": "one-way",
                    "chap_username": "host1",
                    "chap_secret": "sdb://isecrets/chap_secret",
                },
                {"target": APP, "portals": ["10.0.3.5"]},
            ],
            "not_persistent": [{"target": "*:scratch-*"}],
            "absent": [{"target": "*:old-*"}],
        }
    }
}


@pytest.fixture
def san(host):
    """The SAN offers four targets; scratch and old are connected and persistent already."""
    host.reset()
    host.add_network_target(
        DB, portals=("10.0.1.5:3260", "10.0.2.5:3260"), chap=("host1", CHAP_SECRET)
    )
    host.add_network_target(APP, portals=("10.0.3.5:3260",))
    host.add_network_target(
        SCRATCH,
        portals=("10.0.4.5:3260",),
        disks=[
            {
                "FriendlyName": "SCRATCH",
                "IsOffline": False,
                "Volumes": [{"DriveLetter": "S", "AccessPaths": ["S:\\\\"]}],
            }
        ],
    )
    host.add_network_target(OLD, portals=("10.0.9.5:3260",))
    for portal, target in (("10.0.4.5", SCRATCH), ("10.0.9.5", OLD)):
        host.handle({"op": "add_target_portal", "address": portal, "port": 3260})
        host.handle({"op": "connect_target", "node_address": target, "is_persistent": True})
    return host


def test_highstate_builds_the_whole_lifecycle_then_is_clean(minion_run, set_pillar, san):
    set_pillar(PILLAR)
    planned = minion_run.run("state.apply", "iscsi.policy", "test=True")
    assert planned.returncode == 0, planned
    plan = state_results(planned)
    assert {k: v["result"] for k, v in plan.items()} == {
        "iscsi-policy-connected-1": None,
        "iscsi-policy-connected-2": None,
        "iscsi-policy-not-persistent-1": None,
        "iscsi-policy-absent-1": None,
    }
    assert san.sessions() and san.portals()[0]["TargetPortalAddress"] == "10.0.4.5"  # unchanged

    san.reset_stats()
    first = minion_run.run("state.apply", "iscsi.policy")
    assert first.returncode == 0, first
    results = state_results(first)
    processes = san.stats()["processes"]
    print("first run:", {k: v["comment"] for k, v in results.items()})
    print(f"PowerShell processes for the whole policy run: {processes}")
    # Every planned change was made, and only those.
    for state_id, planned_state in plan.items():
        assert set(results[state_id]["changes"]) == set(planned_state["changes"]), state_id
    sessions = {(s["TargetNodeAddress"], s["IsPersistent"]) for s in san.sessions()}
    assert sessions == {(DB, True), (APP, True), (SCRATCH, False)}
    # How each reconnects: the persistent logins' MPIO flag (sessions show none).
    mpio = {(lg["TargetName"], lg["IsMultipathEnabled"]) for lg in san.persistent_logins()}
    assert mpio == {(DB, True), (APP, False)}
    db_paths = sorted(
        s["Connections"][0]["TargetAddress"]
        for s in san.handle({"op": "get_sessions", "connections": True})["sessions"]
        if s["TargetNodeAddress"] == DB
    )
    assert db_paths == ["10.0.1.5", "10.0.2.5"]
    db_logins = [lg for lg in san.persistent_logins() if lg["TargetName"] == DB]
    assert len(db_logins) == 2
    assert {lg["chap_secret_sha256"] for lg in db_logins} == {
        hashlib.sha256(CHAP_SECRET.encode()).hexdigest()
    }
    assert [
        lg["TargetName"] for lg in san.persistent_logins() if lg["TargetName"] in (OLD, SCRATCH)
    ] == []
    assert "10.0.9.5" not in {p["TargetPortalAddress"] for p in san.portals()}
    assert (
        "After the next restart these will be missing: disk"
        in results["iscsi-policy-not-persistent-1"]["comment"]
    )
    assert "S:" in results["iscsi-policy-not-persistent-1"]["comment"]

    second = minion_run.run("state.apply", "iscsi.policy")
    assert second.returncode == 0, second
    assert {k: v["changes"] for k, v in state_results(second).items()} == {k: {} for k in results}


def test_contradicting_rules_fail_before_anything_changes(minion_run, set_pillar, san):
    policy = {"iscsi": {"policy": {**PILLAR["iscsi"]["policy"], "absent": [{"target": "*:db-*"}]}}}
    set_pillar(policy)
    before = san.read()
    ret = minion_run.run("state.apply", "iscsi.policy")
    assert ret.returncode != 0
    (result,) = state_results(ret).values()
    assert (
        "connected item 1" in result["comment"] and "absent item 1 removes it" in result["comment"]
    )
    after = san.read()
    assert after["sessions"] == before["sessions"] and after["portals"] == before["portals"]
