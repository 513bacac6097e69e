"""JUnit XML against the common schema, and the HTML page in a real headless browser,
from reports built in-process (hostile values included)."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from saltext_win_iscsi.fleet import html as report_html
from saltext_win_iscsi.fleet import junit as report_junit
from tests.support import fleet_samples as samples
from tests.support.fleet_samples import ABSENT, NP
from tests.support.report_tools import read_page

ROLES = {"win-ok": "compliant", "win-bad": "violating", "win-err": "faulty", "win-gone": "x"}
HOSTILE_ID = '<img src=x onerror="document.title=1">&amp;'
HOSTILE_IQN = "iqn.1991-05.com.contoso:</script><script>document.title=2</script>"


def hostile_report():
    fleet_report = samples.fleet({**ROLES, HOSTILE_ID: "violating"})
    host = next(h for h in fleet_report.hosts if h.minion == HOSTILE_ID)
    host.violations[0] = type(host.violations[0])(
        rule=NP, kind="session", target=HOSTILE_IQN, session="s\x00\x1b[2J'\"", portal="p"
    )
    host.error = ""
    return fleet_report


# --- JUnit -------------------------------------------------------------------------------


def test_junit_one_case_per_minion_and_rule(tmp_path, junit_validate):
    fleet_report = samples.fleet(ROLES, remediation=[samples.remediation("win-ok")])
    path = tmp_path / "report.xml"
    path.write_text(report_junit.render(fleet_report, elapsed=12.3456), encoding="utf-8")
    junit_validate(str(path))

    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    assert root.attrib | {"time": "-"} == {
        "name": "iSCSI policy compliance",
        "tests": "7",
        "failures": "2",
        "errors": "3",
        "time": "-",
    }
    assert root.get("time") == "12.346"
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert list(suites) == ["win-bad", "win-err", "win-gone", "win-ok"]

    def cases(minion):
        return {
            c.get("name"): (c[0].tag if len(c) else None, c[0].get("message") if len(c) else None)
            for c in suites[minion].iter("testcase")
        }

    assert cases("win-bad") == {
        NP: ("failure", "4 violation(s)"),
        ABSENT: ("failure", "1 violation(s)"),
    }
    assert cases("win-ok") == {NP: (None, None), ABSENT: (None, None)}  # passed
    assert cases("win-err") == {
        NP: ("error", "the host could not be checked"),
        ABSENT: ("error", "the host could not be checked"),
    }
    assert cases("win-gone") == {"policy": ("error", "no answer")}
    failure = suites["win-bad"].find("testcase/failure")
    assert "session fffffa800d008430-4000013700000001" in failure.text
    assert "The policy formula would: Would make 3 session(s)" in failure.text
    assert "Initiator Service is not running" in suites["win-err"].find("testcase/error").text
    history = suites["win-ok"].findall("system-out")[-1].text
    assert "reactor run 20251125101500123456: ok; changed iscsi-policy-not-persistent-1" in history


def test_junit_stays_valid_with_hostile_values(tmp_path, junit_validate):
    path = tmp_path / "hostile.xml"
    path.write_text(report_junit.render(hostile_report()), encoding="utf-8")
    junit_validate(str(path))
    root = ET.parse(path).getroot()
    assert HOSTILE_ID in {s.get("name") for s in root.iter("testsuite")}
    text = "".join(f.text for f in root.iter("failure"))
    assert HOSTILE_IQN in text and "s\\x00\\x1b[2J'\"" in text


# --- HTML --------------------------------------------------------------------------------


def test_html_is_self_contained_and_escapes_every_value():
    page = report_html.render(hostile_report())
    assert HOSTILE_ID not in page and HOSTILE_IQN not in page
    assert html.escape(HOSTILE_ID) in page and html.escape(HOSTILE_IQN) in page
    # No external asset: no src, no stylesheet link, no URL but the in-page anchors.
    assert not re.search(r"<(img|link|iframe|object|embed)\b", page)
    assert not re.search(r"<[a-z]+\b[^>]*\s(src|srcset)=", page)
    assert not re.search(r"(https?:)?//[a-z0-9]", page.replace("http-equiv", ""))
    # The only script is ours, allowed by its hash in the page's CSP.
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert scripts == [report_html.SCRIPT]
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in html.unescape(page)


class _Columns(HTMLParser):
    """Per table, per column: the set of (tag, is right-aligned) its heading and cells have."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict[int, set[tuple[str, bool]]]] = []
        self._column = 0

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({})
        elif tag == "tr":
            self._column = 0
        elif tag in ("th", "td"):
            numeric = "num" in (dict(attrs).get("class") or "").split()
            self.tables[-1].setdefault(self._column, set()).add((tag, numeric))
            self._column += 1


@pytest.mark.parametrize("inventory", [False, True])
def test_html_number_columns_are_aligned_as_their_headings(inventory):
    page = report_html.render(
        samples.fleet(ROLES, inventory=inventory, remediation=[samples.remediation("win-bad")])
    )
    columns = _Columns()
    columns.feed(page)
    assert len(columns.tables) >= 3  # the hosts, a host's violations, the remediation runs
    for table in columns.tables:
        for kinds in table.values():
            # heading and cells present, all right-aligned or none
            assert {tag for tag, _ in kinds} == {"th", "td"}, kinds
            assert len({numeric for _, numeric in kinds}) == 1, kinds
    hosts = columns.tables[0]
    right = [i for i, kinds in hosts.items() if ("th", True) in kinds]
    assert len(right) == (4 if inventory else 2)  # violations, [sessions, logins,] runs


def test_html_in_a_browser(tmp_path, browser):
    page = tmp_path / "report.html"
    page.write_text(report_html.render(hostile_report()), encoding="utf-8")
    dom = browser.dom(page)
    read = read_page(dom)
    # Rows in the order the report sorts them, values shown as text.
    assert [row[0] for row in read.rows] == [HOSTILE_ID, "win-bad", "win-err", "win-gone", "win-ok"]
    assert [row[1] for row in read.rows] == [
        "violating",
        "violating",
        "error",
        "no answer",
        "compliant",
    ]
    # The page's own script ran over the rendered rows...
    assert read.texts["rendered"] == (
        "5 hosts rendered: 2 violating, 1 error, 1 no answer, 1 compliant"
    )
    assert read.texts["filters"].startswith("All hostsviolating (2)error (1)")
    (box,) = re.findall(r"<input[^>]*>", dom)  # the name filter, shown once the script ran
    assert 'id="search"' in box and "hidden" not in box
    # ...and nothing from the data became markup or ran.
    assert "img" not in read.tags
    assert read.tags.count("script") == 1
    assert "<title>iSCSI policy compliance: *</title>" in dom
