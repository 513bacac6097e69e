"""Minion answers in the shapes Salt 3008.4 delivers them (seen in the integration tests),
and a fleet report built from them."""

from __future__ import annotations

from saltext_win_iscsi.fleet import report

T = "iqn.1991-05.com.contoso:testiscsi-deepcore-target"
OLD = "iqn.1991-05.com.contoso:old-archive"
NP, ABSENT = "iscsi-policy-not-persistent-1", "iscsi-policy-absent-1"
SID = "fffffa800d008430-40000137000000{:02x}"

SERVICE_STOPPED = (
    "ERROR: iSCSI: 'get_sessions' failed: The Microsoft iSCSI Initiator Service is not "
    "running. Please start the service and retry. (NotSpecified, HRESULT "
    "0xefff003e,Get-IscsiSession)"
)
MALFORMED = (
    "ERROR executing 'iscsi.check_policy': pillar iscsi:policy:not_persistent item 1 must "
    "be a mapping with 'target' and optionally 'initiator', 'portal'; got: \"oops\""
)


def check(*violations: dict) -> dict:
    return {"compliant": not violations, "rules": 2, "violations": list(violations)}


def session_violation(n: int, rule: str = NP, target: str = T, portal: str = "10.0.0.5") -> dict:
    return {
        "rule": rule,
        "kind": "session",
        "target": target,
        "session": SID.format(n),
        "portal": f"{portal}:3260",
    }


def login_violation(target: str, portal: str = "10.0.9.9:3260", entries: int = 1) -> dict:
    return {
        "rule": NP,
        "kind": "persistent_login",
        "target": target,
        "portal": portal,
        "entries": entries,
    }


def chunk(rule: str, result, comment: str, run: int, changes: dict | None = None) -> dict:
    return {
        "name": rule,
        "result": result,
        "changes": changes or {},
        "comment": comment,
        "__sls__": "iscsi.policy",
        "__run_num__": run,
        "__id__": rule,
    }


def state_run(*chunks: dict) -> dict:
    return {f"iscsi_|-{c['__id__']}_|-{c['name']}_|-fun": c for c in chunks}


def formula_clean() -> dict:
    return state_run(
        chunk(NP, True, "2 matching session(s) already non-persistent.", 0),
        chunk(ABSENT, True, f"No session, persistent login or portal of {OLD} is left.", 1),
    )


def formula_pending() -> dict:
    return state_run(
        chunk(NP, None, "Would make 3 session(s) non-persistent: ...", 0, {SID.format(1): {}}),
        chunk(ABSENT, None, f"Would remove {OLD}: unregister, disconnect", 1, {"x": {}}),
    )


def persistent_session(n: int, target: str = T, portal: str = "10.0.0.5") -> dict:
    return {
        "SessionIdentifier": SID.format(n),
        "TargetNodeAddress": target,
        "IsPersistent": True,
        "Connections": [{"TargetAddress": portal, "TargetPortNumber": 3260}],
    }


def answers(minions: dict[str, str]) -> dict:
    """question -> minion -> return, for minions in the roles compliant, violating,
    faulty, malformed (anything else: no answer)."""
    check_answers, formula_answers = {}, {}
    for minion, role in minions.items():
        if role == "compliant":
            check_answers[minion], formula_answers[minion] = check(), formula_clean()
        elif role == "violating":
            check_answers[minion] = check(
                *(session_violation(n) for n in (1, 2, 3)),
                login_violation("iqn.1991-05.com.contoso:testiscsi-offline"),
                session_violation(4, ABSENT, OLD),
            )
            formula_answers[minion] = formula_pending()
        elif role == "faulty":
            check_answers[minion] = SERVICE_STOPPED
            formula_answers[minion] = state_run(
                chunk(NP, False, SERVICE_STOPPED[len("ERROR: ") :], 0),
                chunk(ABSENT, False, SERVICE_STOPPED[len("ERROR: ") :], 1),
            )
        elif role == "malformed":
            check_answers[minion] = MALFORMED
            formula_answers[minion] = state_run(
                chunk("iscsi-policy-malformed", False, MALFORMED.split(": ", 1)[1], 0)
            )
    return {"check": check_answers, "test": formula_answers}


def remediation(minion: str, jid: str = "20251125101500123456", by: str = "reactor"):
    return report.Remediation(
        minion=minion,
        jid=jid,
        time=f"{jid[:4]}-{jid[4:6]}-{jid[6:8]} {jid[8:10]}:{jid[10:12]}:{jid[12:14]}",
        started_by=by,
        result=True,
        changes={NP: [SID.format(7)]},
    )


def fleet(minions: dict[str, str], **extra) -> report.FleetReport:
    extra.setdefault("remediation", [])
    return report.build(
        "*", "2025-11-25 10:30:00 +0000", sorted(minions), answers(minions), **extra
    )
