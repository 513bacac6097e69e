"""Path health and portals in violations, through the loaders against the simulated host:
a connected rule's missing path is a ``path`` violation naming its portal; every session
violation names its portal in the fleet report without the inventory (it used to be ``''``)."""

import time

from saltext_win_iscsi.fleet import report

DB = "iqn.1991-05.com.contoso:db-01"
OLD = "iqn.1991-05.com.contoso:old-archive"
POLICY = {
    "connected": [{"target": DB, "portals": ["10.0.1.5", "10.0.2.5"], "persistent": False}],
    "absent": [{"target": "*:old-*"}],
}


def test_a_missing_path_and_a_forbidden_session_name_their_portals(with_pillar, host):
    host.reset()
    host.add_session(DB, portal="10.0.1.5")
    host.add_session(OLD, portal="10.0.9.7")  # not persistent: not in the inventory
    check = with_pillar({"iscsi": {"policy": POLICY}}).modules.iscsi.check_policy()
    assert [(v["kind"], v["target"], v["portal"]) for v in check["violations"]] == [
        ("path", DB, "10.0.2.5:3260"),
        ("session", OLD, "10.0.9.7:3260"),
    ]
    assert check["violations"][0]["problem"] == "1 of 2 paths live: none via 10.0.2.5:3260"

    fleet = report.build("*", "now", ["m1"], {"check": {"m1": check}})  # no inventory
    rows = fleet.as_return()["violations"]
    assert [(r["kind"], r["portal"]) for r in rows] == [
        ("path", "10.0.2.5:3260"),
        ("session", "10.0.9.7:3260"),
    ]
    assert "" not in {r["portal"] for r in rows}


def test_the_beacon_reports_the_missing_path(with_pillar, host):
    host.reset()
    host.add_session(DB, portal="10.0.1.5")
    host.add_session(DB, portal="10.0.2.5", connected=False)  # reconnecting: no live path
    iscsi = with_pillar({"iscsi": {"policy": {"connected": POLICY["connected"]}}}).modules.iscsi
    events = []
    deadline = time.monotonic() + 30
    while not events and time.monotonic() < deadline:
        events = [e for e in iscsi.beacon_events() if e["tag"] == "violation"]
    (event,) = events
    assert [(v["kind"], v["portal"]) for v in event["violations"]] == [("path", "10.0.2.5:3260")]
