"""The beacon through Salt's real beacons loader: its configuration is checked by the
execution module's settings, and a tick reports a violation of this minion's policy."""

import pytest
import salt.loader

from tests.support.waiting import wait_for


def beacons_of(loaders):
    return salt.loader.beacons(loaders.opts, loaders.modules, context=loaders.context)


@pytest.fixture
def beacons(loaders):
    return beacons_of(loaders)


@pytest.mark.parametrize(
    ("config", "valid"),
    [
        ([{"interval": 5}], True),
        (
            [{"targets": "iqn.*"}, {"exclude_targets": ["iqn.*:db-*"]}, {"report_existing": True}],
            True,
        ),
        ([{"timeout": 2.5}, {"backoff_max": 60}, {"enabled": True}], True),
        ({"targets": "iqn.*"}, False),
        ([{"targets": 5}], False),
        ([{"targets": []}], False),
        ([{"exclude_targets": [""]}], False),
        ([{"report_existing": "yes"}], False),
        ([{"timeout": 0}], False),
        ([{"timeout": True}], False),
        ([{"backoff_max": -1}], False),
        (["targets"], False),
    ],
)
def test_beacon_config_is_validated(beacons, config, valid):
    ok, message = beacons["iscsi.validate"](config)
    assert ok is valid, message
    assert message if not valid else message == "Valid beacon configuration"


def test_the_defaults_come_from_the_library(loaders):
    settings = loaders.modules.iscsi.beacon_settings()
    assert settings == {
        "interval": 1.0,
        "timeout": 10.0,
        "backoff_max": 300.0,
        "report_existing": False,
        "readiness_every": 30,
        "targets": None,
        "exclude_targets": None,
    }


def test_a_tick_reports_a_violation_of_the_policy(with_pillar, seeded):
    beacons = beacons_of(with_pillar({"iscsi": {"policy": {"not_persistent": [{"target": "*"}]}}}))
    found = []

    def violated():
        """the beacon fired a violation event"""
        found.extend(beacons["iscsi.beacon"]([{"interval": 1}]))
        return any(e["tag"] == "violation" for e in found)

    wait_for(violated, 30)
    (event,) = [e for e in found if e["tag"] == "violation"]
    assert event["count"] == 3 and {v["kind"] for v in event["violations"]} == {"session"}
