"""IPv6 portals are bracketed wherever a portal is shown: a policy violation, a state's
changes and comment, the fleet report's rows (never the ambiguous ``fe80::1:3260``)."""

from saltext_win_iscsi.backend import backend_for
from saltext_win_iscsi.config import Settings
from saltext_win_iscsi.fleet import report
from saltext_win_iscsi.policy import Policy

TARGET = "iqn.1991-05.com.contoso:testiscsi-v6"
LABEL = "[fe80::1]:3260"
POLICY = Policy.parse({"not_persistent": [{"target": "*:testiscsi-v6"}]})


def test_a_violation_the_state_and_the_report_bracket_ipv6(loaders, seeded):
    seeded.reset()
    seeded.add_persistent_login(TARGET, portal="fe80::1")
    settings = Settings.read(lambda key, default=None: loaders.opts.get(key, default))
    check = backend_for(settings).check_policy(POLICY)
    (violation,) = check["violations"]
    assert violation["portal"] == LABEL

    fleet = report.build("*", "now", ["m1"], {"check": {"m1": check}})
    (row,) = fleet.as_return()["violations"]
    assert row["portal"] == LABEL

    ret = loaders.states.iscsi.not_persistent(TARGET)
    assert f"persistent login {TARGET} @ {LABEL}" in ret.changes
    assert seeded.persistent_logins() == []
