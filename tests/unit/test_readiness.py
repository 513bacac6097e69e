"""Readiness rules in the pillar policy (``iscsi:policy:readiness``): parsing with errors
that name the key, the formula's state, and items against rules (verdicts, breaches)."""

import pytest

from saltext_win_iscsi import diagnosis
from saltext_win_iscsi.policy import Policy, PolicyError

RULES = {
    "service": True,
    "mpio_claims_iscsi": True,
    "timers": {"LinkDownTime": 35},
    "disk_timeout": 60,
    "initiator_name": "iqn.1991-05.com.contoso:*",
    "iscsid_conf": {"node.session.timeo.replacement_timeout": 15},
}


def windows_items(**overrides):
    facts = {name: {"value": None} for name, _ in diagnosis.WINDOWS_FACTS}
    facts.update(
        {
            "powershell.edition": {"value": "Desktop"},
            "service.state": {"value": "Running"},
            "service.start_type": {"value": "Auto"},
            "mpio.msdsm_claim": {"value": {"iSCSI": True}},
            "initiator.names": {"value": ["iqn.1991-05.com.contoso:h1"]},
            "timer.LinkDownTime": {"value": 35},
        }
    )
    facts.update({k: {"value": v} for k, v in overrides.items()})
    return diagnosis.windows(facts).items


def test_rules_become_items_and_a_state():
    policy = Policy.parse({"readiness": RULES})
    assert policy.readiness_items == {
        "service.state": True,
        "service.start_type": True,
        "iscsid.running": True,
        "iscsid.enabled": True,
        "mpio.msdsm_claim": True,
        "timer.LinkDownTime": 35,
        "disk.timeout": 60,
        "initiator.names": "iqn.1991-05.com.contoso:*",
        "iscsid_conf.node.session.timeo.replacement_timeout": "15",
    }
    assert policy.states() == [
        {"id": "iscsi-policy-readiness", "function": "iscsi.ready", "args": RULES}
    ]
    assert policy.rule_count == 1


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("yes", "iscsi:policy:readiness must be a mapping"),
        ({"sevice": True}, "unknown keys sevice"),
        ({"service": "yes"}, "readiness:service must be True or False"),
        ({"timers": {"LinkDowntime": 5}}, 'unknown timer "LinkDowntime"'),
        ({"timers": {"LinkDownTime": -1}}, "timers:LinkDownTime must be a whole number"),
        ({"timers": [1]}, "timers must be a mapping"),
        ({"disk_timeout": "60"}, "disk_timeout must be a whole number"),
        ({"initiator_name": ""}, "initiator_name must be a glob"),
        ({"iscsid_conf": {"node.startup": "manual"}}, "iscsi:policy:defaults:node_startup"),
        ({"iscsid_conf": {"node.session.timeo.replacement_timeout": True}}, "a number or a word"),
    ],
)
def test_malformed_rules_name_the_key(raw, message):
    with pytest.raises(PolicyError, match=message.replace("(", r"\(")):
        Policy.parse({"readiness": raw})


def test_a_ready_host_breaks_no_rule_and_an_other_platforms_rule_is_skipped():
    policy = Policy.parse({"readiness": RULES})
    assert policy.readiness_violations(windows_items()) == []
    # disk.timeout is not set: its default (60) applies, so the rule holds.


def test_breaches_say_what_differs():
    policy = Policy.parse({"readiness": RULES})
    items = windows_items(
        **{
            "service.state": "Stopped",
            "timer.LinkDownTime": 15,
            "initiator.names": ["iqn.2000-01.other:h1"],
        }
    )
    problems = {v["item"]: v["problem"] for v in policy.readiness_violations(items)}
    assert set(problems) == {"service.state", "timer.LinkDownTime", "initiator.names"}
    assert problems["timer.LinkDownTime"] == "timer.LinkDownTime is 15, not 35"
    assert "not running" in problems["service.state"]


def test_an_unreadable_item_is_a_breach():
    facts = {"timer.LinkDownTime": {"error": {"message": "Access denied", "error_id": "X"}}}
    items = diagnosis.windows(facts).items
    assert items["timer.LinkDownTime"]["verdict"] == "unknown"
    breached = diagnosis.breaches(items, {"timer.LinkDownTime": 35})
    assert breached[0]["problem"] == "timer.LinkDownTime: cannot be read: Access denied (X)"


def test_check_counts_readiness_violations():
    policy = Policy.parse({"readiness": {"service": True}})
    result = policy.check([], [], None, windows_items(**{"service.start_type": "Manual"}))
    assert result["compliant"] is False
    assert [v["item"] for v in result["violations"]] == ["service.start_type"]
    assert policy.check([], [], None, windows_items())["compliant"] is True
