"""Reading and changing persistence on Windows: sessions (Register/Unregister) and the
persistent-login list. Each function works in an open ``HostCall``: one PowerShell process
serves it whatever the number of sessions or logins, and the backend may run several in
the same one.
"""

from __future__ import annotations

from saltext_win_iscsi.errors import IscsiError
from saltext_win_iscsi.model import login_key, login_portal
from saltext_win_iscsi.outcome import failed, passthru_error, scrub
from saltext_win_iscsi.policy import Policy
from saltext_win_iscsi.selection import Selector
from saltext_win_iscsi.spec import PersistenceSpec
from saltext_win_iscsi.windows.hostcall import HostCall
from saltext_win_iscsi.windows.protocol import describe_windows_error, is_not_found
from saltext_win_iscsi.windows.volumes import unbind_volumes

# Windows may remove one persistent login of several (MPIO) per Unregister: repeat for
# sessions still persistent, up to this many logins per session.
MAX_UNREGISTER_PASSES = 16
# The same for iscsicli RemovePersistentTarget, whose duplicates WMI may even list as one.
MAX_REMOVE_PASSES = 16


def check_policy(host: HostCall, policy: Policy, readiness: dict | None) -> dict:
    """The policy's violations on the host now (sessions, then logins; ``readiness``:
    diagnose's items). A host whose sessions cannot be read (its service stopped) but
    whose readiness breaks the policy answers with the readiness violations."""
    try:
        sessions = host.sessions(connections=policy.needs_connections)
        logins = host.logins()
    except IscsiError as exc:
        if not policy.readiness_violations(readiness):
            raise
        return policy.unchecked(readiness, str(exc))
    return policy.check(sessions, logins, None, readiness)  # no defaults for new targets


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
    unbound: dict[str, list[dict]] = {}
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
        unbound = _unbind_unregistered(
            host, [after[sid] for sid in todo if errors.get(sid) is None and sid in after]
        )
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
        if op == "unregister":
            _report_unbound(entry, unbound.get(sid, []))
    if not passthru:
        return report
    if failed(report):
        raise passthru_error(report, spec.done)
    return [after[sid] for sid in todo if sid in after]


def _unbind_unregistered(host: HostCall, sessions: list[dict]) -> dict[str, list[dict]]:
    """The volumes of unregistered sessions whose target nothing reconnects at boot, off
    the persistently bound list (or every boot waits for them); entries by session."""
    gone = [s["SessionIdentifier"] for s in sessions if not s.get("IsPersistent")]
    by_session: dict[str, list[dict]] = {}
    for entry in unbind_volumes(host, gone, test=False, keep_reconnecting=True):
        by_session.setdefault(entry["session"], []).append(entry)
    return by_session


def _report_unbound(entry: dict, unbound: list[dict]) -> None:
    for volume in unbound:
        if volume["status"] == "unbound":
            entry.setdefault("volumes_unbound", []).append(volume["path"])
        elif entry["status"] != "failed":
            entry.update(
                status="failed",
                error=f"unregistered, but a volume stays on the persistently bound list "
                f"(every boot waits for it): {volume['error']}",
            )


def remove_logins(host: HostCall, select: Selector, test: bool) -> list[dict]:
    """Remove every persistent login ``select`` matches; report one entry per login key,
    and every other login that vanished meanwhile (Windows removed it too)."""
    before = current = host.logins()
    chosen: dict[tuple, dict] = {}
    for login in current:
        if select.selects_login(login):
            entry = chosen.setdefault(login_key(login), {**login, "entries": 0})
            entry["entries"] += 1
    refused = _refusals(chosen, current)
    if test:
        return [
            {**entry, "status": "failed", "error": refused[key]}
            if key in refused
            else {**entry, "status": "would_remove"}
            for key, entry in chosen.items()
        ]
    errors: dict[tuple, dict] = {}
    # iscsicli may remove one matching entry or all of them (MPIO registers several), and
    # WMI may list duplicates as one: repeat for keys still listed.
    for _ in range(MAX_REMOVE_PASSES):
        todo = [
            login
            for key, login in {login_key(lg): lg for lg in current}.items()
            if key in chosen and key not in errors and key not in refused
        ]
        if not todo:
            break
        # Logins without a portal last: Windows removes the target's others with them.
        todo.sort(key=lambda login: not login.get("TargetPortalAddress"))
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
        if key in refused:
            entry.update(status="failed", error=refused[key])
        elif key not in left:
            entry["status"] = "removed"  # gone, even where a later call found it gone
        elif key in errors:
            entry.update(status="failed", error=describe_windows_error(errors[key]))
        else:
            entry.update(status="failed", error="the persistent login is still listed")
        report.append(entry)
    return report + _vanished(before, current, chosen)


def _refusals(chosen: dict[tuple, dict], logins: list[dict]) -> dict[tuple, str]:
    """Chosen logins without a portal whose target has other logins not chosen: Windows
    removes a login given no portal on every portal of its target
    (RemoveIScsiPersistentTargetW), so removing it would remove those too."""
    refused = {}
    for key, entry in chosen.items():
        if entry.get("TargetPortalAddress"):
            continue
        target = str(entry.get("TargetName")).lower()
        kept = [
            lg
            for lg in logins
            if str(lg.get("TargetName")).lower() == target and login_key(lg) not in chosen
        ]
        if kept:
            portals = ", ".join(sorted({login_portal(lg) for lg in kept}))
            refused[key] = (
                f"refused: Windows removes a persistent login without a portal together "
                f"with every other login of {entry.get('TargetName')}, and {len(kept)} of "
                f"them ({portals}) are not selected; select them too to remove them all"
            )
    return refused


def _vanished(before: list[dict], after: list[dict], chosen: dict[tuple, dict]) -> list[dict]:
    """Logins not chosen that are gone afterwards: Windows removed them with the chosen."""
    left = {login_key(lg) for lg in after}
    gone: dict[tuple, dict] = {}
    for login in before:
        key = login_key(login)
        if key in chosen or key in left:
            continue
        entry = gone.setdefault(key, {**login, "entries": 0})
        entry["entries"] += 1
        entry.update(
            status="failed",
            error=(
                f"not selected, but Windows removed it with the selected logins of "
                f"{login.get('TargetName')}; register it again if it is wanted"
            ),
        )
    return list(gone.values())
