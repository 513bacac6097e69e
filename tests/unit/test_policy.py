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
        {"rule": "iscsi-policy-not-persistent-1", "kind": "session", "target": T, "session": "s1"},
        {
            "rule": "iscsi-policy-not-persistent-1",
            "kind": "persistent_login",
            "target": stale,
            "portal": "10.0.9.1:3260",
            "entries": 2,
        },
    ]
    assert policy.violations([s for s in sessions if s["SessionIdentifier"] != "s1"], []) == []
