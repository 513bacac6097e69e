"""Initiator names shared by several minions (cloned hosts): the policy check says which
names a host's sessions go out as; the report, its JUnit and its HTML flag the shared ones."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from saltext_win_iscsi.fleet import html as report_html
from saltext_win_iscsi.fleet import junit as report_junit
from saltext_win_iscsi.fleet import report
from saltext_win_iscsi.policy import Policy
from tests.support import fleet_samples as samples

CLONED = "iqn.1991-05.com.microsoft:win-template"
POLICY = Policy.parse({"not_persistent": [{"target": "*:backup-*"}]})


def session(n: int, initiator: str) -> dict:
    return {**samples.persistent_session(n), "InitiatorNodeAddress": initiator}


def three_minions() -> report.FleetReport:
    """What three minions answered: two clones (one spelling the name in upper case, as
    IQNs compare case-insensitively) and one with a name of its own; one has no session."""
    answers = {
        "win-a": POLICY.check([session(1, CLONED), session(2, CLONED)], [], None),
        "win-b": POLICY.check([session(1, CLONED.upper())], [], None),
        "win-c": POLICY.check([session(1, "iqn.1991-05.com.microsoft:win-c")], [], None),
        "win-d": POLICY.check([], [], None),
    }
    return report.build("*", "2025-11-25 10:30:00 +0000", sorted(answers), {"check": answers})


def test_the_policy_check_names_the_initiators():
    assert POLICY.check([session(1, CLONED), session(2, CLONED)], [], None)["initiators"] == [
        CLONED
    ]
    assert POLICY.check([], [], None)["initiators"] == []


def test_the_report_flags_names_several_minions_share():
    fleet = three_minions()
    assert fleet.duplicate_initiators == [(CLONED, ["win-a", "win-b"])]
    assert fleet.as_return()["duplicate initiators"] == [
        {"initiator": CLONED, "minions": "win-a, win-b", "count": 2}
    ]
    assert all(h.compliant for h in fleet.hosts)  # a matter of its own, not of the policy
    alone = {"win-a": POLICY.check([session(1, CLONED)], [], None)}
    assert (
        "duplicate initiators"
        not in report.build("*", "now", ["win-a"], {"check": alone}).as_return()
    )


def test_junit_and_html_carry_the_duplicates(tmp_path, junit_validate):
    fleet = three_minions()
    path = tmp_path / "report.xml"
    path.write_text(report_junit.render(fleet), encoding="utf-8")
    junit_validate(str(path))
    root = ET.parse(path).getroot()
    (suite,) = [s for s in root.iter("testsuite") if s.get("name") == report_junit.DUPLICATES_SUITE]
    (case,) = suite.iter("testcase")
    assert case.get("name") == CLONED
    assert case[0].tag == "failure" and case[0].text == "win-a\nwin-b"
    assert (root.get("tests"), root.get("failures")) == ("5", "1")

    page = report_html.render(fleet)
    section = page[page.index('<section id="duplicates">') :]
    assert "Duplicate initiator names" in section
    assert f"<code>{CLONED}</code>" in section and "win-a, win-b" in section
    # the count right-aligned under its right-aligned heading
    assert '<th class="num">shared by</th>' in section and '<td class="num">2</td>' in section
    assert page.index('id="duplicates"') < page.index('id="hosts"')  # before the host list
