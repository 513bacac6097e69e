"""The fleet report as JUnit XML, for CI dashboards (Jenkins, GitLab, ...).

One ``testsuite`` per minion, one ``testcase`` per minion and rule: a violation of the
rule is a ``failure``; a host that could not be checked (PowerShell failed, the policy is
malformed, the minion did not answer) gives an ``error``. A host with no rules, or one
that could not say which rules it has, gets one test case named ``policy``. Initiator
names several minions share make one more suite, ``duplicate initiator names``: a failing
test case per name, listing the minions. Valid against
the common JUnit schema (``junit-10.xsd``, as pytest's own tests use).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from saltext_win_iscsi.fleet.report import ERROR, NO_ANSWER, FleetReport, HostReport, Violation

DUPLICATES_SUITE = "duplicate initiator names"

# Characters XML 1.0 cannot carry at all (not even escaped): written as \xNN instead.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _clean(value: object) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def _element(parent: ET.Element, tag: str, text: str | None = None, /, **attrs: object):
    child = ET.SubElement(parent, tag, {k: _clean(v) for k, v in attrs.items()})
    if text is not None:
        child.text = _clean(text)
    return child


def describe(v: Violation) -> str:
    """One violation, one line."""
    what = f"session {v.session}" if v.session else v.kind.replace("_", " ")
    where = f" via {v.portal}" if v.portal else ""
    extra = f" ({v.detail})" if v.detail else ""
    target = f"{v.target}: " if v.target else ""  # readiness and defaults: the host itself
    return f"{target}{what}{where}{extra}"


def _cases(host: HostReport) -> list[tuple[str, str | None, str, str]]:
    """(name, outcome tag or None, message, text) of each test case of a host."""
    if host.status in (ERROR, NO_ANSWER):
        names = host.rules or ["policy"]
        message = "no answer" if host.status == NO_ANSWER else "the host could not be checked"
        return [(name, "error", message, host.error) for name in names]
    if not host.rules:
        return [("policy", None, "", "no rules in this minion's policy")]
    cases: list[tuple[str, str | None, str, str]] = []
    for rule in host.rules:
        found = [v for v in host.violations if v.rule == rule]
        if found:
            text = "\n".join(describe(v) for v in found)
            if rule in host.pending:
                text += f"\n\nThe policy formula would: {host.pending[rule]}"
            cases.append((rule, "failure", f"{len(found)} violation(s)", text))
        else:
            cases.append((rule, None, "", host.pending.get(rule, "")))
    return cases


def render(report: FleetReport, elapsed: float = 0.0) -> str:
    """The JUnit XML document (UTF-8 text with an XML declaration)."""
    root = ET.Element("testsuites", {"name": "iSCSI policy compliance"})
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for host in report.hosts:
        cases = _cases(host)
        counts = {
            "tests": len(cases),
            "failures": sum(1 for c in cases if c[1] == "failure"),
            "errors": sum(1 for c in cases if c[1] == "error"),
        }
        for key, value in counts.items():
            totals[key] += value
        suite = _element(
            root,
            "testsuite",
            name=host.minion,
            skipped=0,
            timestamp=report.generated,
            hostname=host.minion,
            **counts,
        )
        properties = _element(suite, "properties")
        _element(properties, "property", name="status", value=host.status)
        _element(properties, "property", name="target", value=report.target)
        for name, outcome, message, text in cases:
            case = _element(suite, "testcase", name=name, classname=host.minion)
            if outcome is not None:
                _element(case, outcome, text, message=message, type=outcome)
            elif text:
                _element(case, "system-out", text)
        runs = report.remediation_of(host.minion)
        if runs:
            lines = [
                f"{r.time} {r.started_by} run {r.jid}: "
                f"{'ok' if r.result else 'FAILED'}; changed {r.changed or 'nothing'}"
                + (f"; {r.comment}" if r.comment else "")
                for r in runs
            ]
            _element(suite, "system-out", "Remediation runs:\n" + "\n".join(lines))
    duplicates = report.duplicate_initiators
    if duplicates:
        suite = _element(
            root,
            "testsuite",
            name=DUPLICATES_SUITE,
            skipped=0,
            timestamp=report.generated,
            hostname="master",
            tests=len(duplicates),
            failures=len(duplicates),
            errors=0,
        )
        for name, minions in duplicates:
            case = _element(suite, "testcase", name=name, classname=DUPLICATES_SUITE)
            message = f"{len(minions)} minions share this initiator name"
            _element(case, "failure", "\n".join(minions), message=message, type="failure")
        totals["tests"] += len(duplicates)
        totals["failures"] += len(duplicates)
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{elapsed:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
