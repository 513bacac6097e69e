"""The pillar policy through the execution module: the formula's plan, the evaluation and
the beacon's tick, on Salt's real loader with a compiled pillar (which Salt 3008 masks:
``pillar.get`` outside templates returns ``**********`` for every string)."""

import time

import pytest
from salt.exceptions import SaltInvocationError

from tests.support.simhost.model import SEED_TARGET

POLICY = {"not_persistent": [{"target": "*:testiscsi-*"}], "exceptions": ["*:testiscsi-keep"]}


def test_policy_states_is_the_formula_plan(with_pillar):
    plan = with_pillar({"iscsi": {"policy": POLICY}}).modules.iscsi.policy_states()
    assert plan == {
        "error": None,
        "states": [
            {
                "id": "iscsi-policy-not-persistent-1",
                "function": "iscsi.not_persistent",
                "args": {
                    "target_node_address": ["*:testiscsi-*"],
                    "exclude_target_node_address": ["*:testiscsi-keep"],
                },
            }
        ],
    }
    bad = with_pillar({"iscsi": {"policy": {"not_persistent": "oops"}}})
    assert bad.modules.iscsi.policy_states()["error"].startswith(
        "pillar iscsi:policy:not_persistent must be a list of rules"
    )


def test_check_policy_reads_the_real_pillar_values(with_pillar, seeded):
    result = with_pillar({"iscsi": {"policy": POLICY}}).modules.iscsi.check_policy()
    assert result["compliant"] is False
    assert {v["target"] for v in result["violations"]} == {SEED_TARGET}
    other = with_pillar({"iscsi": {"policy": {"not_persistent": [{"target": "*:other"}]}}})
    assert other.modules.iscsi.check_policy()["compliant"] is True
    bad = with_pillar({"iscsi": {"policy": ["bad"]}})
    with pytest.raises(SaltInvocationError, match="pillar iscsi:policy must be a mapping"):
        bad.modules.iscsi.check_policy()


def test_beacon_events_fire_for_a_violation(with_pillar, seeded):
    iscsi = with_pillar({"iscsi": {"policy": POLICY}}).modules.iscsi
    events = []
    deadline = time.monotonic() + 30
    while not events and time.monotonic() < deadline:
        events = [e for e in iscsi.beacon_events() if e["tag"] == "violation"]
    assert events and events[0]["count"] == 3
