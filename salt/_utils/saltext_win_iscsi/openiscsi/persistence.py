"""Persistence on Linux: the same reports and statuses as on Windows.

A session is persistent when the node record it was logged in from (target, persistent
portal, iface) is logged in at boot: ``iscsiadm -m node --loginall=automatic`` (what the
boot service runs) takes a record whose ``node.startup`` **or** ``node.conn[0].startup``
is ``automatic`` (open-iscsi's ``match_startup_mode``; seen on a real reboot).
Unregistering a session sets both fields to ``manual``, registering both to
``automatic``; the persistent logins are the records logged in at boot, whether a session
exists or not. Records are never created or deleted here.

Each call reads the sessions and the records once (two iscsiadm runs), changes one record
per iscsiadm run, and reads the records again to report what really happened.
"""

from __future__ import annotations

import ipaddress

from saltext_win_iscsi.errors import IscsiError, IscsiInputError
from saltext_win_iscsi.model import ANY_PORT, login_key
from saltext_win_iscsi.openiscsi.iscsiadm import Iscsiadm
from saltext_win_iscsi.openiscsi.parse import parse_node_records, parse_session_tree
from saltext_win_iscsi.outcome import failed, passthru_error
from saltext_win_iscsi.selection import Selector
from saltext_win_iscsi.spec import PersistenceSpec

PERSISTENT = "automatic"
NOT_PERSISTENT = "manual"

RecordKey = tuple[str, str, int, str]


def at_boot(record: dict) -> bool:
    """Whether the boot service logs this record in (either startup field automatic)."""
    return PERSISTENT in (record.get("startup"), record.get("conn_startup"))


def _address(address: str | None) -> str:
    """An address as the records and the sessions can both be compared by."""
    text = (address or "").strip().strip("[]")
    try:
        return str(ipaddress.ip_address(text.partition("%")[0])) + (
            "%" + text.partition("%")[2] if "%" in text else ""
        )
    except ValueError:
        return text.lower()  # a host name


def record_key(record: dict) -> RecordKey:
    return (
        str(record.get("target") or ""),
        _address(record.get("address")),
        int(record.get("port") or 0),
        str(record.get("iface") or "default"),
    )


def session_key(session: dict) -> RecordKey:
    """The key of the record a session was logged in from (its persistent portal)."""
    connection = (session.get("Connections") or [{}])[0]
    address = session.get("PersistentPortalAddress") or connection.get("TargetAddress")
    port = session.get("PersistentPortalPort") or connection.get("TargetPortNumber")
    return (
        str(session.get("TargetNodeAddress") or ""),
        _address(address),
        int(port or 0),
        str(session.get("InitiatorInstanceName") or "default"),
    )


def read_records(adm: Iscsiadm) -> dict[RecordKey, dict]:
    """Every node record, by key; records differing only in tpgt collapse (iscsiadm's
    ``-T -p -I`` reaches them together)."""
    records: dict[RecordKey, dict] = {}
    for record in parse_node_records(adm.node_records()):
        key = record_key(record)
        if key in records:
            records[key]["entries"] += 1
        else:
            records[key] = {**record, "entries": 1}
    return records


def _find(records: dict[RecordKey, dict], key: RecordKey) -> dict | None:
    if key in records:
        return records[key]
    # Target names: iscsiadm compares exactly, but a session may show other case.
    folded = (key[0].lower(), *key[1:])
    return next((r for k, r in records.items() if (k[0].lower(), *k[1:]) == folded), None)


def _with_records(sessions: list[dict], records: dict[RecordKey, dict]) -> list[dict]:
    for session in sessions:
        record = _find(records, session_key(session))
        session["StartupMode"] = record["startup"] if record else None
        session["IsPersistent"] = bool(record and at_boot(record))
    return sessions


def read_sessions(adm: Iscsiadm, records: dict[RecordKey, dict] | None = None) -> list[dict]:
    """Every session, with ``IsPersistent`` and ``StartupMode`` from its node record."""
    sessions = parse_session_tree(adm.session_tree())
    if not sessions:
        return []  # no need to read the records
    return _with_records(sessions, read_records(adm) if records is None else records)


def authentication_of(record: dict) -> str:
    """A record's CHAP as Windows' AuthenticationType."""
    if str(record.get("authmethod") or "").upper() != "CHAP":
        return "NONE"
    return "MUTUALCHAP" if record.get("username_in") else "ONEWAYCHAP"


def as_login(record: dict) -> dict:
    """A persistent record as the Windows persistent-login fields (plus the tpgt). There is
    no MPIO flag: every path of a target is a session of its own (IsMultipathEnabled None)."""
    return {
        "TargetName": record["target"],
        "InitiatorInstance": record["iface"],
        "InitiatorPortNumber": ANY_PORT,
        "TargetPortalAddress": record["address"],
        "TargetPortalPort": record["port"],
        "TargetPortalGroupTag": record["tpgt"],
        "StartupMode": record["startup"],
        "IsMultipathEnabled": None,
        "AuthenticationType": authentication_of(record),
        "ChapUsername": record.get("username"),
    }


def logins_of(records: dict[RecordKey, dict]) -> list[dict]:
    return [as_login(r) for r in records.values() for _ in range(r["entries"]) if at_boot(r)]


def _set(adm: Iscsiadm, record: dict, mode: str) -> str | None:
    """Set a record's startup mode: None when done, "not_found", or an error text."""
    try:
        found = adm.set_startup(
            record["target"], record["address"], record["port"], record["iface"], mode
        )
    except (IscsiError, IscsiInputError) as exc:
        return str(exc)
    return None if found else "not_found"


def _still(record: dict | None, mode: str) -> str | None:
    """Why a re-read record is not in ``mode`` (None if it is)."""
    if record is None:
        return "the node record disappeared during the change"
    wrong = [
        f"{name} is {record[field]}"
        for field, name in (("startup", "node.startup"), ("conn_startup", "node.conn[0].startup"))
        if record[field] not in (mode, None)
    ]
    return f"the node record is unchanged: {', '.join(wrong)}" if wrong else None


def change_persistence(
    adm: Iscsiadm, spec: PersistenceSpec, test: bool, passthru: bool
) -> dict | list:
    """Unregister (``manual``) or register (``automatic``) the selected sessions' records.

    Report per session id: ``spec.done``, ``spec.skip`` (already so), ``would_<op>``
    (test), ``not_found`` or ``failed`` with ``error``. Sessions sharing a record are
    changed together, by one iscsiadm run.
    """
    select, op, want_persistent = spec.select, spec.op, spec.persistent
    unsupported = [k for k, v in {**spec.options, **(spec.secrets or {})}.items() if v]
    if unsupported:
        raise IscsiInputError(
            f"iSCSI: {', '.join(sorted(unsupported))} cannot be set on Linux (open-iscsi): "
            "set them on the node record with iscsiadm -m node -o update"
        )
    mode = PERSISTENT if want_persistent else NOT_PERSISTENT
    records = read_records(adm)
    before = read_sessions(adm, records)
    report: dict[str, dict] = {sid: {"status": "not_found"} for sid in select.missing_ids(before)}
    todo: dict[RecordKey, list[str]] = {}
    for session in (s for s in before if select(s)):
        sid = session["SessionIdentifier"]
        entry = report[sid] = {"TargetNodeAddress": session.get("TargetNodeAddress")}
        record = _find(records, session_key(session))
        if bool(session.get("IsPersistent")) == want_persistent and not spec.force:
            entry["status"] = spec.skip
        elif record is None:
            entry.update(
                status="failed",
                error="the session has no node record (iscsiadm -m node) whose startup mode "
                "could be set; it was logged in without one (iscsistart, firmware)",
            )
        elif test:
            entry["status"] = f"would_{op}"
        else:
            todo.setdefault(record_key(record), []).append(sid)
    errors = {key: _set(adm, records[key], mode) for key in todo}
    after = read_records(adm) if todo else records
    for key, sids in todo.items():
        error = errors[key] or _still(_find(after, key), mode)
        for sid in sids:
            if error is None:
                report[sid]["status"] = spec.done
            elif error == "not_found":
                report[sid]["status"] = "not_found"
            else:
                report[sid].update(status="failed", error=error)
    if not passthru:
        return report
    if failed(report):
        raise passthru_error(report, spec.done)
    changed = {sid for sids in todo.values() for sid in sids}
    return [
        s
        for s in _with_records(parse_session_tree(adm.session_tree()), after)
        if s["SessionIdentifier"] in changed
    ]


def remove_logins(adm: Iscsiadm, select: Selector, test: bool) -> list[dict]:
    """Set every ``automatic`` record ``select`` matches to ``manual``; one entry per login key.

    Statuses: ``removed``, ``would_remove`` (test), ``failed`` with ``error``. The records
    stay (``iscsiadm -m node`` still lists them); only their startup mode changes.
    """
    records = read_records(adm)
    chosen: dict[tuple, dict] = {}
    keys: dict[tuple, list[RecordKey]] = {}
    for key, record in records.items():
        if not at_boot(record):
            continue
        login = as_login(record)
        if select.selects_login(login):
            entry = chosen.setdefault(login_key(login), {**login, "entries": 0})
            entry["entries"] += record["entries"]
            keys.setdefault(login_key(login), []).append(key)
    if test:
        return [{**entry, "status": "would_remove"} for entry in chosen.values()]
    errors = {key: _set(adm, records[key], NOT_PERSISTENT) for ks in keys.values() for key in ks}
    after = read_records(adm) if errors else records
    report = []
    for lkey, entry in chosen.items():
        problems = []
        for key in keys[lkey]:
            error = errors[key]
            if error is None:
                now = after.get(key)
                error = None if now is None else _still(now, NOT_PERSISTENT)
            if error == "not_found":
                error = None  # gone meanwhile: not persistent any more either
            if error:
                problems.append(error)
        if problems:
            entry.update(status="failed", error="; ".join(problems))
        else:
            entry["status"] = "removed"
        report.append(entry)
    return report
