"""The fleet compliance report: what each minion answered, as rows people and tools read.

``fleet.ask`` gathers the minions' answers to the report's questions (the policy check,
the persistent sessions and logins, the policy formula in test mode); this module turns
them into one ``HostReport`` per expected minion, fleet totals, and the runner's return:
lists of uniform rows (``hosts``, ``violations``, ``remediation``, ``totals``), so Salt's
``yaml``, ``json`` and ``table`` outputters all show them well.

Nothing here talks to Salt: the answers come in as plain data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# What a host can be, worst first for people reading the report.
COMPLIANT, VIOLATING, ERROR, NO_ANSWER = "compliant", "violating", "error", "no answer"
STATUSES = (VIOLATING, ERROR, NO_ANSWER, COMPLIANT)

READINESS = "readiness"  # the kind of a readiness rule's violation

# Ids the formula renders when there is nothing to enforce or the policy is malformed.
FORMULA_EMPTY, FORMULA_MALFORMED = "iscsi-policy-empty", "iscsi-policy-malformed"

# The last exception line of a traceback a minion returned for a failed function.
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit)\w*)(?:: (.*))?$")
# How a minion words a function's failure before the error's own message.
_ERROR_PREFIX = re.compile(r"^(?:ERROR executing '[^']*': |ERROR: )")
_NOT_AVAILABLE = re.compile(r"^'([\w.]+)' is not available\.?$")


@dataclass(frozen=True)
class Violation:
    """One thing on a host that breaks its policy."""

    rule: str
    kind: str  # session | persistent_login | connection | default | readiness
    target: str
    session: str = ""  # the session id (kind session)
    portal: str = ""  # address:port of the session's connections, or of the login
    detail: str = ""  # "2 entries" (persistent_login), the problem (connection, readiness)


@dataclass
class HostReport:
    """What one expected minion answered (or that it did not)."""

    minion: str
    status: str = NO_ANSWER
    violations: list[Violation] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)  # the policy's rules, by state id
    pending: dict[str, str] = field(default_factory=dict)  # rule -> what test mode would do
    error: str = ""
    persistent_sessions: int | None = None
    persistent_logins: int | None = None
    risks: list[str] = field(default_factory=list)  # what may break the policy later
    initiators: list[str] = field(default_factory=list)  # the IQNs its sessions go out as

    @property
    def compliant(self) -> bool:
        """True only for a host that answered and was found compliant."""
        return self.status == COMPLIANT

    @property
    def readiness(self) -> list[Violation]:
        """The violations of its readiness rules (the host itself, not its sessions)."""
        return [v for v in self.violations if v.kind == READINESS]


@dataclass(frozen=True)
class Remediation:
    """One policy run on one minion, from the master's job cache."""

    minion: str
    jid: str
    time: str
    started_by: str  # reactor | enforce
    result: bool
    changes: dict[str, list[str]]  # rule -> what it changed (session ids, logins, ...)
    comment: str = ""

    @property
    def changed(self) -> str:
        return "; ".join(f"{rule}: {', '.join(keys)}" for rule, keys in self.changes.items())


@dataclass
class FleetReport:
    target: str
    generated: str  # when the report was made, for people
    hosts: list[HostReport]
    remediation: list[Remediation] = field(default_factory=list)
    days: int = 7
    jobs: list[dict] = field(default_factory=list)  # the jobs the report published
    notes: list[str] = field(default_factory=list)
    inventory: bool = False  # whether the persistent sessions and logins were listed

    def __post_init__(self) -> None:
        self.hosts = sorted(self.hosts, key=_host_order)
        self.remediation = sorted(self.remediation, key=lambda r: (r.jid, r.minion), reverse=True)

    @property
    def totals(self) -> dict[str, int]:
        counts = {"hosts": len(self.hosts), **{status: 0 for status in STATUSES}}
        for host in self.hosts:
            counts[host.status] += 1
        counts["violations"] = sum(len(host.violations) for host in self.hosts)
        counts["remediation runs"] = len(self.remediation)
        counts["hosts remediated"] = len({r.minion for r in self.remediation if r.changes})
        return counts

    @property
    def duplicate_initiators(self) -> list[tuple[str, list[str]]]:
        """``(IQN, minions)`` for each initiator name several minions report (IQNs compare
        case-insensitively, RFC 3722), most minions first."""
        seen: dict[str, tuple[str, list[str]]] = {}
        for host in sorted(self.hosts, key=lambda h: h.minion):
            for name in host.initiators:
                minions = seen.setdefault(name.lower(), (name, []))[1]
                if host.minion not in minions:
                    minions.append(host.minion)
        shared = [entry for entry in seen.values() if len(entry[1]) > 1]
        return sorted(shared, key=lambda e: (-len(e[1]), e[0].lower()))

    def remediation_of(self, minion: str) -> list[Remediation]:
        return [r for r in self.remediation if r.minion == minion]

    def as_return(self) -> dict[str, Any]:
        """The runner's return: lists of uniform rows (see the module docstring)."""
        hosts = []
        for h in self.hosts:
            row: dict[str, Any] = {
                "minion": h.minion,
                "status": h.status,
                "compliant": h.compliant,
                "violations": len(h.violations),
            }
            if self.inventory:
                row["persistent sessions"] = h.persistent_sessions
                row["persistent logins"] = h.persistent_logins
            row["remediations"] = len(self.remediation_of(h.minion))
            row["error"] = h.error
            hosts.append(row)
        ret: dict[str, Any] = {
            "hosts": hosts,
            "violations": [
                {"minion": h.minion, **vars(v)} for h in self.hosts for v in h.violations
            ],
            "remediation": [
                {
                    "minion": r.minion,
                    "time": r.time,
                    "jid": r.jid,
                    "started by": r.started_by,
                    "result": r.result,
                    "changed": r.changed or "nothing",
                }
                for r in self.remediation
            ],
            "totals": [self.totals],
        }
        readiness = [
            {"minion": h.minion, "problem": v.detail} for h in self.hosts for v in h.readiness
        ]
        if readiness:
            ret["readiness"] = readiness
        risks = [{"minion": h.minion, "risk": r} for h in self.hosts for r in h.risks]
        if risks:
            ret["risks"] = risks
        duplicates = self.duplicate_initiators
        if duplicates:
            ret["duplicate initiators"] = [
                {"initiator": name, "minions": ", ".join(minions), "count": len(minions)}
                for name, minions in duplicates
            ]
        if self.notes:
            ret["notes"] = list(self.notes)
        return ret


def _host_order(host: HostReport) -> tuple:
    return (-len(host.violations), STATUSES.index(host.status), host.minion)


# --------------------------------------------------------------------------------------
# Reading the minions' answers
# --------------------------------------------------------------------------------------


def error_text(value: Any) -> str:
    """What went wrong, in the words of the error, from a failed function's return: the
    minion prefixes it (``ERROR: ``, ``ERROR executing 'fun': ``) or returns a traceback
    whose last exception carries the message."""
    text = str(value).strip()
    if "Traceback (most recent call last)" in text:
        lines = text.splitlines()
        starts = [i for i, line in enumerate(lines) if _EXCEPTION_LINE.match(line)]
        first = _EXCEPTION_LINE.match(lines[starts[-1]]) if starts else None
        if first:
            rest = [first.group(2) or first.group(1), *lines[starts[-1] + 1 :]]
            return "\n".join(rest).strip()
    text = _ERROR_PREFIX.sub("", text, count=1)
    missing = _NOT_AVAILABLE.match(text)
    if missing:
        return (
            f"{missing.group(1)} is not available on this minion: the extension is not "
            "loaded there (saltutil.sync_all, or install the wheel)"
        )
    return text


def _violation(raw: dict) -> Violation:
    kind = str(raw.get("kind", ""))
    if kind == "persistent_login":
        entries = raw.get("entries", 1)
        detail = f"{entries} entr{'y' if entries == 1 else 'ies'}"
    else:
        detail = str(raw.get("problem") or "")
    return Violation(
        rule=str(raw.get("rule", "")),
        kind=kind,
        target=str(raw.get("target", "")),
        session=str(raw.get("session") or ""),
        portal=str(raw.get("portal") or ""),
        detail=detail,
    )


def read_check(host: HostReport, answer: Any) -> list[str]:
    """``iscsi.check_policy``: the violations. Returns what went wrong."""
    if not isinstance(answer, dict) or not isinstance(answer.get("violations"), list):
        return [error_text(answer) or "the policy check returned nothing"]
    host.violations = [_violation(v) for v in answer["violations"] if isinstance(v, dict)]
    host.risks = [str(r.get("detail")) for r in answer.get("risks") or [] if isinstance(r, dict)]
    host.initiators = [str(name) for name in answer.get("initiators") or [] if name]
    if answer.get("unchecked"):  # readiness violations only: the sessions were not readable
        host.risks.append(f"sessions not checked: {answer['unchecked']}")
    for v in host.violations:
        if v.rule and v.rule not in host.rules:
            host.rules.append(v.rule)
    return []


def read_sessions(host: HostReport, answer: Any) -> list[str]:
    """``iscsi.get_sessions is_persistent=True``: how many sessions reconnect at boot.
    (Violations name their portals themselves, as the policy check found them.)"""
    if not isinstance(answer, list):
        return [error_text(answer) or "the session list returned nothing"]
    host.persistent_sessions = len(answer)
    return []


def read_logins(host: HostReport, answer: Any) -> list[str]:
    """``iscsi.get_persistent_logins``: how many entries reconnect at boot."""
    if not isinstance(answer, list):
        return [error_text(answer) or "the persistent-login list returned nothing"]
    host.persistent_logins = len(answer)
    return []


def read_test_run(host: HostReport, answer: Any) -> list[str]:
    """Fill ``host`` from the policy formula's test-mode run; return what went wrong."""
    if isinstance(answer, list):  # the formula did not render
        return ["the iscsi.policy formula did not render: " + "; ".join(map(error_text, answer))]
    if not isinstance(answer, dict):
        return [error_text(answer) or "the minion returned nothing"]
    errors = []
    chunks = sorted(
        (c for c in answer.values() if isinstance(c, dict)),
        key=lambda c: c.get("__run_num__", 0),
    )
    rules = []
    for chunk in chunks:
        rule = str(chunk.get("__id__", ""))
        comment = str(chunk.get("comment", "")).strip()
        if rule == FORMULA_EMPTY:
            continue
        if chunk.get("result") is False:
            errors.append(comment if rule == FORMULA_MALFORMED else f"{rule}: {comment}")
            if rule == FORMULA_MALFORMED:
                continue
        elif chunk.get("result") is None:
            host.pending[rule] = comment
        rules.append(rule)
    host.rules = rules + [r for r in host.rules if r not in rules]
    return errors


READERS = {
    "check": (read_check, "the policy check"),
    "sessions": (read_sessions, "the session list"),
    "logins": (read_logins, "the persistent-login list"),
    "test": (read_test_run, "the test-mode run"),
}


def host_report(minion: str, answers: dict[str, dict[str, Any]]) -> HostReport:
    """One minion's report from the answers (question -> minion -> return) to the questions
    asked (``check`` always; ``sessions``, ``logins`` and ``test`` for the full report).
    Presence is what counts as an answer: a return can legitimately be None."""
    host = HostReport(minion)
    if not any(minion in returns for returns in answers.values()):
        host.error = "no answer: the minion did not return within the timeout"
        return host
    problems: dict[str, list[str]] = {}
    for question, (read, what) in READERS.items():
        if question not in answers:
            continue
        if minion in answers[question]:
            problems[question] = read(host, answers[question][minion])
        else:
            problems[question] = [f"no answer to {what}"]
    # A host that cannot run PowerShell fails every question in nearly the same words:
    # when the policy check failed, its message alone says why.
    messages = problems.get("check") or [m for found in problems.values() for m in found]
    errors: list[str] = []
    for message in messages:
        if message and message not in errors:
            errors.append(message)
    host.error = "; ".join(errors)
    if host.error:
        host.status = ERROR
    else:
        host.status = VIOLATING if host.violations else COMPLIANT
    return host


def build(
    target: str,
    generated: str,
    expected: list[str],
    answers: dict[str, dict[str, Any]],
    **extra: Any,
) -> FleetReport:
    """The report of every expected minion, from the answers (question -> minion -> return)."""
    hosts = [host_report(minion, answers) for minion in expected]
    return FleetReport(target=target, generated=generated, hosts=hosts, **extra)
