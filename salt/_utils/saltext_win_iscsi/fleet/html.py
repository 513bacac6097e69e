"""The fleet report as one self-contained HTML page: a summary read at a glance, the hosts
sorted by violations, then the details of each host.

No external assets (styles and the small script are inline). Every value from the fleet
(minion ids, IQNs, portals, error texts) is data and goes through ``html.escape``; on top
of that the page's Content-Security-Policy allows no script but its own (by hash), so even
a value that slipped through could not run code. The page reads fully without JavaScript;
the script only adds the filters (by status, and a box filtering hosts by name) and a count
of the rows the browser rendered. At fleet scale (10,000 hosts) the page stays one static
file: the summary, any duplicate initiator names and the filters come first.
"""

from __future__ import annotations

import base64
import hashlib
from html import escape

from saltext_win_iscsi.fleet.report import (
    COMPLIANT,
    ERROR,
    NO_ANSWER,
    STATUSES,
    VIOLATING,
    FleetReport,
    HostReport,
    Remediation,
)

STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2430;background:#f4f6f9}
main{max-width:1200px;margin:0 auto;padding:24px 32px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 10px}
.meta{color:#5b6575;margin:0 0 18px}code{font:13px ui-monospace,Consolas,monospace}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:14px}
.card{background:#fff;border-radius:8px;padding:10px 16px;min-width:110px;box-shadow:0 1px 2px #0002;border-top:4px solid #8a94a6}
.card b{display:block;font-size:26px}.card span{color:#5b6575;font-size:13px}
.card.violating,.badge.violating{border-color:#c62828}.card.error,.badge.error{border-color:#ef6c00}
.card.compliant,.badge.compliant{border-color:#2e7d32}.card.no-answer,.badge.no-answer{border-color:#6d6d6d}
.verdict{font-size:17px;font-weight:600;margin:8px 0 14px}.verdict.bad{color:#b71c1c}.verdict.good{color:#1b5e20}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px #0002;margin-bottom:8px}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #e3e7ee;vertical-align:top}
th{background:#e9edf3;font-size:13px}.num{text-align:right}
#hosts td:nth-child(-n+2),details td:first-child{white-space:nowrap}
.badge{display:inline-block;white-space:nowrap;border-left:4px solid;padding:0 6px;background:#f4f6f9;border-radius:3px}
details{background:#fff;border-radius:8px;box-shadow:0 1px 2px #0002;margin:10px 0;padding:8px 14px}
summary{cursor:pointer;font-weight:600}.error-text{white-space:pre-wrap;color:#8d3b00}
#search{margin:0 10px 10px 0;padding:4px 10px;border:1px solid #c3cad6;border-radius:14px;min-width:220px}
#filters button{margin:0 6px 10px 0;padding:4px 10px;border:1px solid #c3cad6;border-radius:14px;background:#fff;cursor:pointer}
#rendered{color:#5b6575;font-size:13px}footer{color:#5b6575;font-size:13px;margin-top:24px}
""".strip()

# Runs in the browser: counts the host rows it rendered and adds the status filter.
SCRIPT = """
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll("#hosts tbody tr"));
  var order = ["violating", "error", "no answer", "compliant"], counts = {};
  rows.forEach(function (r) { counts[r.dataset.status] = (counts[r.dataset.status] || 0) + 1; });
  var out = document.getElementById("rendered");
  out.textContent = rows.length + " hosts rendered: " +
    order.map(function (s) { return (counts[s] || 0) + " " + s; }).join(", ");
  var nav = document.getElementById("filters"), box = document.getElementById("search");
  var status = "all";
  function apply() {
    var wanted = box.value.trim().toLowerCase();
    rows.forEach(function (r) {
      r.hidden = (status !== "all" && r.dataset.status !== status) ||
        (wanted !== "" && r.cells[0].textContent.toLowerCase().indexOf(wanted) < 0);
    });
  }
  ["all"].concat(order).forEach(function (s) {
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = s === "all" ? "All hosts" : s + " (" + (counts[s] || 0) + ")";
    b.addEventListener("click", function () { status = s; apply(); });
    nav.appendChild(b);
  });
  box.hidden = false;
  box.addEventListener("input", apply);
})();
""".strip()


def _hash(script: str) -> str:
    return base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")


CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; "
    f"script-src 'sha256-{_hash(SCRIPT)}'; base-uri 'none'; form-action 'none'"
)


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _css(status: str) -> str:
    return status.replace(" ", "-")


def _cell(tag: str, css: str, html: str) -> str:
    return f'<{tag} class="{css}">{html}</{tag}>' if css else f"<{tag}>{html}</{tag}>"


def _head(headers: list[str], numeric: frozenset[str]) -> str:
    """The header row: a number column's heading aligned as its numbers (right)."""
    return "".join(_cell("th", "num" if h in numeric else "", _e(h)) for h in headers)


def _table(headers: list[str], rows: list[list[str]], numeric: frozenset[str] = frozenset()) -> str:
    """A table; ``rows`` hold already-escaped cell HTML, the ``numeric`` columns
    right-aligned, heading and cells alike."""
    css = ["num" if h in numeric else "" for h in headers]
    body = "".join(
        "<tr>" + "".join(_cell("td", c, cell) for c, cell in zip(css, row, strict=True)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{_head(headers, numeric)}</tr></thead><tbody>{body}</tbody></table>"


def _cards(report: FleetReport) -> str:
    totals = report.totals
    cards = [("hosts", totals["hosts"], "")]
    cards += [(status, totals[status], _css(status)) for status in STATUSES]
    cards += [
        ("violations", totals["violations"], ""),
        ("remediation runs", totals["remediation runs"], ""),
    ]
    return "".join(
        f'<div class="card {css}"><b>{count}</b><span>{_e(label)}</span></div>'
        for label, count, css in cards
    )


def _duplicates(report: FleetReport) -> str:
    """The initiator names several minions share: cloned hosts the targets' ACLs cannot
    tell apart."""
    duplicates = report.duplicate_initiators
    if not duplicates:
        return ""
    table = _table(
        ["initiator name", "minions", "shared by"],
        [
            [f"<code>{_e(name)}</code>", _e(", ".join(minions)), str(len(minions))]
            for name, minions in duplicates
        ],
        numeric=frozenset({"shared by"}),
    )
    return (
        '<section id="duplicates"><h2>Duplicate initiator names</h2><p>Several minions '
        "log in with the same initiator IQN: a target's ACL cannot tell them apart (give "
        f"each host its own name).</p>{table}</section>"
    )


def _verdict(report: FleetReport) -> str:
    totals = report.totals
    attention = totals["hosts"] - totals[COMPLIANT]
    if not totals["hosts"]:
        return '<p class="verdict">No minion matched the target.</p>'
    if not attention:
        return f'<p class="verdict good">All {totals["hosts"]} hosts comply with their policy.</p>'
    return (
        f'<p class="verdict bad">{attention} of {totals["hosts"]} hosts need attention: '
        f"{totals[VIOLATING]} violating, {totals[ERROR]} could not be checked, "
        f"{totals[NO_ANSWER]} did not answer.</p>"
    )


def _count(value: int | None) -> str:
    return "–" if value is None else str(value)


# The hosts table's number columns: right-aligned, heading and cells.
HOST_NUMBERS = frozenset(
    {"violations", "persistent sessions", "persistent logins", "remediation runs"}
)


def _host_columns(inventory: bool) -> list[str]:
    """The hosts table's headings (the inventory's two with ``iscsi.report inventory=True``)."""
    counted = ["persistent sessions", "persistent logins"] if inventory else []
    return ["host", "status", "violations", *counted, "remediation runs", "error"]


def _host_row(index: int, host: HostReport, runs: int, inventory: bool) -> str:
    cells = {
        "host": f'<a href="#host-{index}">{_e(host.minion)}</a>',
        "status": f'<span class="badge {_css(host.status)}">{_e(host.status)}</span>',
        "violations": str(len(host.violations)),
        "persistent sessions": _count(host.persistent_sessions),
        "persistent logins": _count(host.persistent_logins),
        "remediation runs": str(runs),
        "error": _e(host.error),
    }
    html = "".join(
        _cell("td", "num" if h in HOST_NUMBERS else "error-text" if h == "error" else "", cells[h])
        for h in _host_columns(inventory)
    )
    return f'<tr data-status="{_e(host.status)}">{html}</tr>'


def _runs_table(runs: list[Remediation]) -> str:
    return _table(
        ["time", "job", "started by", "result", "changed"],
        [
            [
                _e(r.time),
                f"<code>{_e(r.jid)}</code>",
                _e(r.started_by),
                "ok" if r.result else f'<span class="error-text">failed: {_e(r.comment)}</span>',
                _e(r.changed or "nothing"),
            ]
            for r in runs
        ],
    )


def _details(index: int, host: HostReport, runs: list[Remediation]) -> str:
    parts = []
    if host.error:
        parts.append(f'<p class="error-text">{_e(host.error)}</p>')
    if host.violations:
        parts.append(
            _table(
                ["rule", "kind", "target", "session", "portal", "detail"],
                [
                    [
                        _e(v.rule),
                        _e(v.kind.replace("_", " ")),
                        f"<code>{_e(v.target)}</code>",
                        f"<code>{_e(v.session)}</code>",
                        _e(v.portal),
                        _e(v.detail),
                    ]
                    for v in host.violations
                ],
            )
        )
    if host.risks:
        items = "".join(f"<li>{_e(risk)}</li>" for risk in host.risks)
        parts.append(f"<p>Risks (compliant now, may not stay so):</p><ul>{items}</ul>")
    if host.pending:
        items = "".join(
            f"<li><code>{_e(rule)}</code>: {_e(comment)}</li>"
            for rule, comment in host.pending.items()
        )
        parts.append(f"<p>What <code>iscsi.enforce</code> would change:</p><ul>{items}</ul>")
    if host.rules:
        parts.append("<p>Rules: " + ", ".join(f"<code>{_e(r)}</code>" for r in host.rules) + "</p>")
    elif host.status == COMPLIANT:
        parts.append("<p>No rules in this minion's policy.</p>")
    if runs:
        parts.append("<p>Remediation runs:</p>" + _runs_table(runs))
    is_open = " open" if host.status != COMPLIANT else ""
    return (
        f'<details id="host-{index}"{is_open}><summary>{_e(host.minion)} — '
        f'<span class="badge {_css(host.status)}">{_e(host.status)}</span>, '
        f"{len(host.violations)} violation(s)</summary>{''.join(parts)}</details>"
    )


def _readiness(report: FleetReport) -> str:
    """The readiness section: each host's readiness problems (iscsi:policy:readiness)."""
    rows = [[_e(h.minion), _e(v.detail)] for h in report.hosts for v in h.readiness]
    if not rows:
        return ""
    return "<h2>Readiness</h2>" + _table(["host", "problem"], rows)


def render(report: FleetReport) -> str:
    hosts = report.hosts  # sorted: most violations first
    rows = "".join(
        _host_row(i, h, len(report.remediation_of(h.minion)), report.inventory)
        for i, h in enumerate(hosts)
    )
    head = _head(_host_columns(report.inventory), HOST_NUMBERS)
    table = f'<table id="hosts"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'

    details = "".join(_details(i, h, report.remediation_of(h.minion)) for i, h in enumerate(hosts))
    notes = "".join(f"<p>{_e(n)}</p>" for n in report.notes)
    history = (
        _runs_table(report.remediation)
        if report.remediation
        else f"<p>No policy runs by the reactor or <code>iscsi.enforce</code> in the last {report.days:g} days.</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>iSCSI policy compliance: {_e(report.target)}</title>
<style>{STYLE}</style>
</head>
<body>
<main>
<h1>iSCSI policy compliance</h1>
<p class="meta">Target <code>{_e(report.target)}</code> · generated {_e(report.generated)} · remediation history: last {report.days:g} days</p>
<section class="cards">{_cards(report)}</section>
{_verdict(report)}
{_duplicates(report)}
<nav id="filters"><input id="search" type="search" placeholder="Filter hosts by name" aria-label="Filter hosts by name" hidden></nav>
{table}
<p id="rendered"></p>
{_readiness(report)}
<h2>Hosts</h2>
{details}
<h2>Remediation in the last {report.days:g} days</h2>
{history}
<footer>{notes}<p>Made by <code>salt-run iscsi.report</code>.</p></footer>
</main>
<script>{SCRIPT}</script>
</body>
</html>
"""
