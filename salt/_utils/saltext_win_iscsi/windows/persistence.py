"""Reading and changing persistence on Windows: sessions (Register/Unregister) and the
persistent-login list. Each function works in an open ``HostCall``: one PowerShell process
serves it whatever the number of sessions or logins, and the backend may run several in
the same one.
"""

from __future__ import annotations

from saltext_win_iscsi.errors import IscsiError
from saltext_win_iscsi.model import login_key
from saltext_win_iscsi.outcome import failed, passthru_error, scrub
from saltext_win_iscsi.policy import Policy
from saltext_win_iscsi.selection import Selector
from saltext_win_iscsi.spec import PersistenceSpec
from saltext_win_iscsi.windows.hostcall import HostCall
from saltext_win_iscsi.windows.protocol import describe_windows_error, is_not_found

# Windows may remove one persistent login of several (MPIO) per Unregister: repeat for
# sessions still persistent, up to this many logins per session.
MAX_UNREGISTER_PASSES = 16


def check_policy(host: HostCall, policy: Policy) -> dict:
    """The policy's violations on the host now (sessions, then logins)."""
    sessions = host.sessions(connections=policy.needs_connections)
    return policy.check(sessions, host.logins(), None)  # no defaults for new targets


def change_persistence(
    host: HostCall, spec: PersistenceSpec, test: bool, passthru: bool
) -> dict | list:
    """Register or unregister the selected sessions, verify, report per session."""
    select, op, secrets = spec.select, spec.op, spec.secrets
    report: dict[str, dict] = {}
    before = host.sessions(connections=select.needs_connections)
    for sid in select.missing_ids(before):
        report[sid] = {"status": "not_found"}
    todo = []
    for session in (s for s in before if select(s)):
        sid = session["SessionIdentifier"]
        entry = report[sid] = {"TargetNodeAddress": session.get("TargetNodeAddress")}
        if bool(session.get("IsPersistent")) == spec.persistent and not spec.force:
            entry["status"] = spec.skip
        elif test:
            entry["status"] = f"would_{op}"
        else:
            todo.append(sid)
    errors = host.per_session(op, todo, secrets, **spec.options)
    after = {s["SessionIdentifier"]: s for s in host.sessions()} if todo else {}
    if not spec.persistent:
        for _ in range(MAX_UNREGISTER_PASSES - 1):
            again = [
                sid
                for sid in todo
                if errors.get(sid) is None and after.get(sid, {}).get("IsPersistent")
            ]
            if not again:
                break
            errors.update(host.per_session(op, again))
            after = {s["SessionIdentifier"]: s for s in host.sessions()}
    for sid in todo:
        entry = report[sid]
        error = errors.get(sid)
        now = after.get(sid)
        if error is not None:
            entry["status"] = "not_found" if is_not_found(error) else "failed"
            if entry["status"] == "failed":
                entry["error"] = scrub(describe_windows_error(error), secrets)
        elif now is None:
            entry.update(status="failed", error="the session disappeared during the change")
        elif bool(now.get("IsPersistent")) == spec.persistent:
            entry["status"] = spec.done
        else:
            entry.update(status="failed", error=f"IsPersistent is still {now.get('IsPersistent')}")
    if not passthru:
        return report
    if failed(report):
        raise passthru_error(report, spec.done)
    return [after[sid] for sid in todo if sid in after]


def remove_logins(host: HostCall, select: Selector, test: bool) -> list[dict]:
    """Remove every persistent login ``select`` matches; report one entry per login key."""
    current = host.logins()
    chosen: dict[tuple, dict] = {}
    for login in current:
        if select.selects_login(login):
            entry = chosen.setdefault(login_key(login), {**login, "entries": 0})
            entry["entries"] += 1
    if test:
        return [{**entry, "status": "would_remove"} for entry in chosen.values()]
    errors: dict[tuple, dict] = {}
    # iscsicli may remove one matching entry or all of them (MPIO registers several):
    # repeat for keys still listed, at most once per entry found.
    for _ in range(max((e["entries"] for e in chosen.values()), default=0)):
        todo = [
            login
            for key, login in {login_key(lg): lg for lg in current}.items()
            if key in chosen and key not in errors
        ]
        if not todo:
            break
        results = host.request("remove_persistent_logins", logins=todo)["results"]
        if len(results) != len(todo):
            raise IscsiError(
                f"iSCSI: PowerShell answered {len(results)} results for {len(todo)} logins"
            )
        for login, item in zip(todo, results, strict=True):
            if item.get("ok"):
                host.done.append(f"remove persistent login {login['TargetName']}")
            else:
                errors[login_key(login)] = item.get("error") or {}
        current = host.logins()
    left = {login_key(lg) for lg in current}
    report = []
    for key, entry in chosen.items():
        if key in errors:
            entry.update(status="failed", error=describe_windows_error(errors[key]))
        elif key in left:
            entry.update(status="failed", error="the persistent login is still listed")
        else:
            entry["status"] = "removed"
        report.append(entry)
    return report
