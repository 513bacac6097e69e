"""The pillar policy: one parser, clear errors naming the key, violations as the state sees them."""

import pytest

from saltext_win_iscsi.policy import Policy, PolicyError

T = "iqn.1991-05.com.contoso:backup-1"


def session(sid, target=T, persistent=True, portal="10.0.9.1"):
    return {
        "SessionIdentifier": sid,
        "TargetNodeAddress": target,
        "InitiatorNodeAddress": "iqn.1991-05.com.contoso:host",
        "IsPersistent": persistent,
        "Connections": [{"TargetAddress": portal, "TargetPortNumber": 3260}],
    }


def login(target=T, address="10.0.9.1"):
    return {
        "TargetName": target,
        "InitiatorInstance": "ROOT\\ISCSIPRT\\0000_0",
        "InitiatorPortNumber": 4294967295,
        "TargetPortalAddress": address,
        "TargetPortalPort": 3260,
    }


def test_rules_become_states_with_the_same_selection():
    policy = Policy.parse(
        {
            "not_persistent": [{"target": "*:backup-*", "portal": "10.0.9.*"}, {"target": "a,b"}],
            "exceptions": ["*:backup-keep"],
        }
    )
    first, second = policy.rules
    assert first.state_id == "iscsi-policy-not-persistent-1"
    assert first.state_args == {
        "target_node_address": ["*:backup-*"],
        "target_portal": ["10.0.9.*"],
        "exclude_target_node_address": ["*:backup-keep"],
    }
    assert second.state_args["target_node_address"] == ["a", "b"]
    assert policy.needs_connections


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (["iqn.*"], "pillar iscsi:policy must be a mapping"),
        ({"not_persistant": []}, "pillar iscsi:policy has unknown keys: not_persistant"),
        ({"not_persistent": "iqn.*"}, "iscsi:policy:not_persistent must be a list of rules"),
        ({"not_persistent": ["iqn.*"]}, "not_persistent item 1 must be a mapping"),
        ({"not_persistent": [{"targte": "x"}]}, 'got: {"targte": "x"}'),
        ({"not_persistent": [{"target": "x", "port": 1}]}, "item 1 has unknown keys port"),
        ({"not_persistent": [{"target": 42}]}, "item 1:target must be a glob or a list of globs"),
        (
            {"not_persistent": [{"target": "*"}], "exceptions": {"a": 1}},
            "exceptions must be a glob",
        ),
    ],
)
def test_malformed_policies_name_the_key(raw, message):
    with pytest.raises(PolicyError, match="^pillar ") as err:
        Policy.parse(raw)
    assert message in str(err.value)


def test_empty_policy_has_no_rules():
    assert Policy.parse(None).rules == () == Policy.parse({}).rules


def test_violations_are_persistent_sessions_and_logins_the_rules_forbid():
    policy = Policy.parse(
        {"not_persistent": [{"target": "*:backup-*"}], "exceptions": ["*:backup-keep"]}
    )
    sessions = [
        session("s1"),
        session("s2", persistent=False),
        session("s3", target="iqn.1991-05.com.contoso:backup-keep"),
        session("s4", target="iqn.1991-05.com.contoso:db-1"),
    ]
    stale = "iqn.1991-05.com.contoso:backup-down"
    logins = [login(), login(stale), login(stale), login("iqn.1991-05.com.contoso:db-1")]
    assert policy.violations(sessions, logins) == [
        {
            "rule": "iscsi-policy-not-persistent-1",
            "kind": "session",
            "target": T,
            "session": "s1",
            "portal": "10.0.9.1:3260",
        },
        {
            "rule": "iscsi-policy-not-persistent-1",
            "kind": "persistent_login",
            "target": stale,
            "portal": "10.0.9.1:3260",
            "entries": 2,
        },
    ]
    assert policy.violations([s for s in sessions if s["SessionIdentifier"] != "s1"], []) == []


FULL = {
    "connected": [
        {
            "target": "iqn.1991-05.com.contoso:db-01",
            "portals": [
                "10.0.1.5",
                {"address": "10.0.2.5", "initiator_portal_address": "10.0.2.21"},
            ],
            "multipath": True,
            "authentication": "one-way",
            "chap_username": "host1",
            "chap_secret": "sdb://vault/db-01",
        }
    ],
    "not_persistent": [{"target": "*:backup-*"}],
    "absent": [{"target": "*:old-*", "force": True}],
}


def test_connected_and_absent_rules_become_states():
    policy = Policy.parse(FULL)
    assert [r.state_id for r in policy.rules] == [
        "iscsi-policy-connected-1",
        "iscsi-policy-not-persistent-1",
        "iscsi-policy-absent-1",
    ]
    connected, _, absent = policy.rules
    assert connected.state_args == {
        "name": "iqn.1991-05.com.contoso:db-01",
        "persistent": True,
        "multipath": True,
        "portals": [
            "10.0.1.5:3260",
            {"address": "10.0.2.5", "port": 3260, "initiator_portal_address": "10.0.2.21"},
        ],
        "authentication": "one-way",
        "chap_username": "host1",
        "chap_secret": "sdb://vault/db-01",
    }
    assert absent.state_args == {"name": "*:old-*", "force": True}
    assert policy.needs_connections


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"not_persistent": [{"target": "*:db-*"}]},
            "not_persistent item 1 forbids its persistence",
        ),
        ({"absent": [{"target": "iqn.1991-05.com.contoso:db-*"}]}, "absent item 1 removes it"),
    ],
)
def test_contradicting_rules_fail_naming_both(extra, message):
    with pytest.raises(PolicyError) as err:
        Policy.parse({**FULL, **extra})
    assert "iscsi:policy:connected item 1" in str(err.value) and message in str(err.value)


def test_not_persistent_connected_targets_do_not_contradict_a_not_persistent_rule():
    rules = {
        "connected": [{"target": "iqn.x:db-01", "persistent": False}],
        "not_persistent": [{"target": "*:db-*"}],
    }
    assert len(Policy.parse(rules).rules) == 2


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"target": "*:db-*"}, "connected item 1:target must be one target IQN"),
        (
            {"target": "iqn.x:y", "multipath": "yes"},
            "connected item 1:multipath must be True or False",
        ),
        ({"target": "iqn.x:y", "portals": ["10.0.0.5:99999"]}, "the port must be 1 to 65535"),
        ({"target": "iqn.x:y", "authentication": "kerberos"}, "authentication must be one of"),
        ({"target": "iqn.x:y", "chap_secret": "x", "bogus": 1}, "unknown keys bogus"),
    ],
)
def test_malformed_connected_rules(rule, message):
    with pytest.raises(PolicyError) as err:
        Policy.parse({"connected": [rule]})
    assert message in str(err.value)
    assert '"chap_secret": "x"' not in str(err.value)  # secrets are not repeated


def test_connected_and_absent_violations():
    policy = Policy.parse(
        {
            "connected": [{"target": "iqn.x:db-01", "portals": ["10.0.1.5", "10.0.2.5"]}],
            "absent": [{"target": "iqn.x:old-*"}],
        }
    )
    db = session("s1", target="iqn.x:db-01", portal="10.0.1.5")
    old = session("s2", target="iqn.x:old-1", persistent=False)
    found = policy.violations([db, old], [login("iqn.x:db-01", "10.0.1.5")])
    assert [(v["kind"], v.get("problem") or v.get("session"), v["portal"]) for v in found] == [
        ("path", "1 of 2 paths live: none via 10.0.2.5:3260", "10.0.2.5:3260"),
        ("session", "s2", "10.0.9.1:3260"),  # not persistent, yet its portal is named
    ]


def test_a_path_is_live_only_while_its_session_is_connected():
    policy = Policy.parse(
        {"connected": [{"target": "iqn.x:db-01", "portals": ["10.0.1.5", "10.0.2.5"]}]}
    )
    one = session("s1", target="iqn.x:db-01", portal="10.0.1.5")
    two = {**session("s2", target="iqn.x:db-01", portal="10.0.2.5"), "IsConnected": False}
    logins = [login("iqn.x:db-01", "10.0.1.5"), login("iqn.x:db-01", "10.0.2.5")]
    (path,) = policy.violations([one, two], logins)
    assert (path["kind"], path["portal"]) == ("path", "10.0.2.5:3260")
    assert policy.violations([one, {**two, "IsConnected": True}], logins) == []
    # No path at all: one path violation per portal, nothing else to judge.
    assert [(v["kind"], v["problem"]) for v in policy.violations([], logins)] == [
        ("path", "0 of 2 paths live: none via 10.0.1.5:3260"),
        ("path", "0 of 2 paths live: none via 10.0.2.5:3260"),
    ]
    # Without portals a rule means "any path": not connected is a connection violation.
    anyway = Policy.parse({"connected": [{"target": "iqn.x:db-01", "persistent": False}]})
    assert [v["kind"] for v in anyway.violations([], [])] == ["connection"]


def test_a_connected_rule_may_allow_unclaimed_multipath():
    rule = {"target": "iqn.x:db-01", "multipath": True, "allow_unclaimed_multipath": True}
    (connected,) = Policy.parse({"connected": [rule]}).rules
    assert connected.state_args["allow_unclaimed_multipath"] is True
    (plain,) = Policy.parse({"connected": [{"target": "iqn.x:db-01"}]}).rules
    assert "allow_unclaimed_multipath" not in plain.state_args
    with pytest.raises(PolicyError, match="allow_unclaimed_multipath must be True or False"):
        Policy.parse({"connected": [{**rule, "allow_unclaimed_multipath": "yes"}]})
