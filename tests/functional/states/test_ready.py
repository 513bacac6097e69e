"""``iscsi.ready`` on the simulated Windows host: test=True says exactly what would change
and changes nothing, a real run fixes everything in one PowerShell process and one
``ready`` request, a second run changes nothing; what cannot be fixed fails the state."""

import pytest

from tests.support.simhost.readiness import ADAPTER_KEY, DISK_KEY

RULES = {
    "service": True,
    "timers": {"LinkDownTime": 35, "MaxRequestHoldTime": 90},
    "disk_timeout": 65,
}


@pytest.fixture
def states(loaders):
    return loaders.states.iscsi


@pytest.fixture
def drifted(seeded):
    seeded.set_fault("service_stopped", True)
    seeded.set_readiness(msiscsi_start_mode="Manual")
    return seeded


def test_test_mode_is_exact_and_changes_nothing(states, drifted):
    before = drifted.read()["readiness"]
    ret = states.ready("ready", **RULES, test=True)
    assert ret["result"] is None, ret
    assert ret["changes"] == {
        "service.state": {"old": "Stopped", "new": "ok"},
        "service.start_type": {"old": "Manual", "new": "ok"},
        "timer.LinkDownTime": {"old": 15, "new": 35},
        "timer.MaxRequestHoldTime": {"old": 60, "new": 90},
        "disk.timeout": {"old": 60, "new": 65},
    }
    assert drifted.read()["readiness"] == before
    assert drifted.faults()["service_stopped"] is True
    assert "ready" not in drifted.stats()["requests"]


def test_a_real_run_fixes_in_one_process_and_the_next_changes_nothing(states, drifted):
    drifted.reset_stats()
    ret = states.ready("ready", **RULES)
    assert ret["result"] is True, ret
    assert set(ret["changes"]) == {
        "service.state",
        "service.start_type",
        "timer.LinkDownTime",
        "timer.MaxRequestHoldTime",
        "disk.timeout",
    }
    assert "take effect after a restart" in ret["comment"]
    stats = drifted.stats()
    assert stats["processes"] == 1 and stats["requests"]["ready"] == 1, stats
    state = drifted.read()
    assert state["faults"]["service_stopped"] is False
    assert state["readiness"]["msiscsi_start_mode"] == "Auto"
    assert state["readiness"]["registry"][ADAPTER_KEY]["LinkDownTime"] == 35
    assert state["readiness"]["registry"][DISK_KEY]["TimeOutValue"] == 65

    again = states.ready("ready", **RULES)
    assert again["result"] is True and again["changes"] == {}, again
    assert "every readiness rule holds" in again["comment"]


def test_what_cannot_be_fixed_fails_with_why(states, seeded):
    ret = states.ready("ready", mpio_claims_iscsi=True, initiator_name="iqn.2000-01.other:*")
    assert ret["result"] is False, ret
    assert "rename it by hand" in ret["comment"]
    # MSDSM cannot claim anything without the Multipath-IO feature: Windows' reason.
    assert "MPIO PowerShell module cannot be loaded" in ret["comment"]


def test_a_malformed_rule_is_an_invalid_argument(states, seeded):
    ret = states.ready("ready", timers={"LinkDowntime": 5})
    assert ret["result"] is False
    assert "unknown timer" in ret["comment"] and "LinkDownTime" in ret["comment"]
