"""Desired states of a target: connected (over given paths, with the wanted persistence,
MPIO flag and authentication) or absent (in the order that keeps it from coming back).

Each ``ensure_*`` reads the host, acts, and reads again to verify, all in one HostCall (one
PowerShell process). With ``test`` it only reports what it would change. The result is
``{"changes": {...}, "comments": [...], "errors": [...]}``; the states turn it into their
return, the module returns it as is.
"""

from __future__ import annotations

from saltext_win_iscsi import luns, outcome
from saltext_win_iscsi.errors import IscsiError
from saltext_win_iscsi.model import Portal, login_portal
from saltext_win_iscsi.outcome import Outcome
from saltext_win_iscsi.selection import Selector, login_selector
from saltext_win_iscsi.spec import (
    PortalSpec,
    TargetSpec,
    logins_on,
    on_portal,
    path_problems,
    same_target,
)
from saltext_win_iscsi.windows import lifecycle, volumes
from saltext_win_iscsi.windows.hostcall import HostCall
from saltext_win_iscsi.windows.persistence import remove_logins
from saltext_win_iscsi.windows.protocol import describe_windows_error


def ensure_portal(host: HostCall, spec: PortalSpec, present: bool, test: bool) -> dict:
    """A target portal configured (which discovers its targets) or not. Sessions stay."""
    found = lifecycle.find_portal(lifecycle.target_portals(host), spec.portal) is not None

    def change() -> None:
        if test:
            return
        if present:
            lifecycle.add_portal(host, spec)
        else:
            lifecycle.remove_portal(host, spec.portal)

    return outcome.portal(spec, found, present, test, change)


def ensure_connected(host: HostCall, spec: TargetSpec, test: bool, disk_timeout: float) -> dict:
    """Add missing portals, discover, connect each missing path, fix persistence where it
    differs; then read again and report what still differs as errors, and wait up to
    ``disk_timeout`` seconds for the disks of a session it made."""
    report = Outcome(spec.secrets)
    nothing = f"{spec.node_address} is connected as wanted."
    portals = lifecycle.target_portals(host)
    for portal in spec.portals:
        if lifecycle.find_portal(portals, portal) is None:
            report.changes[f"portal {portal.label}"] = {"old": "absent", "new": "present"}
            if not test:
                lifecycle.add_portal(host, PortalSpec(portal))
    if not _offered(host, spec):
        if test:
            report.comments.append(f"{spec.node_address} is not discovered yet.")
        else:
            for portal in spec.portals:
                lifecycle.refresh_portal(host, portal)
            if not _offered(host, spec):
                offered = ", ".join(p.label for p in spec.portals) or "the configured portals"
                report.error(f"{spec.node_address} is not offered by {offered}")
                return report.summary(test, "connect", nothing)
    sessions = host.sessions(connections=True)
    logins = host.logins()
    _converge_paths(host, spec, sessions, logins, test, report)
    if not test and host.done:
        after_sessions = host.sessions(connections=True)
        for problem in path_problems(spec, after_sessions, host.logins()):
            report.error(f"after the changes, {problem}")
        if not report.errors and luns.made_a_session(report):
            luns.wait_for_disks(lambda: host.sessions(disks=True), spec, disk_timeout, report)
    return report.summary(test, "connect", nothing)


def _offered(host: HostCall, spec: TargetSpec) -> bool:
    """Whether the target is among the discovered ones."""
    return any(
        same_target({"TargetName": t.get("NodeAddress")}, spec.node_address)
        for t in lifecycle.targets(host)
    )


def _converge_paths(
    host: HostCall, spec: TargetSpec, sessions: list, logins: list, test: bool, report: Outcome
) -> None:
    mine = [s for s in sessions if same_target(s, spec.node_address)]
    secret_set = False
    for portal in spec.portals or (None,):
        where = f" via {portal.label}" if portal else ""
        label = f"{spec.node_address}{where}"
        session = next((s for s in mine if on_portal(s, portal)), None)
        if session is None:
            report.changes[f"session {label}"] = {
                "old": "disconnected",
                "new": "connected" + (", persistent" if spec.persistent else ""),
            }
            if test:
                continue
            if (
                spec.authentication == "MUTUALCHAP"
                and spec.initiator_chap_secret
                and not secret_set
            ):
                lifecycle.set_chap_secret(host, spec.initiator_chap_secret)
                secret_set = True
            try:
                lifecycle.connect(host, spec, portal)
            except IscsiError as exc:  # reported per path, the others go on
                del report.changes[f"session {label}"]
                report.error(f"cannot connect {label}: {exc}")
            continue
        _converge_persistence(
            host, spec, session, logins_on(logins, spec, portal), label, test, report
        )


def _converge_persistence(
    host: HostCall,
    spec: TargetSpec,
    session: dict,
    path_logins: list[dict],
    label: str,
    test: bool,
    report: Outcome,
) -> None:
    sid = session["SessionIdentifier"]
    wrong = [lg for lg in path_logins if not spec.login_ok(lg)]
    if spec.persistent and path_logins and not wrong:
        return
    if not spec.persistent and not path_logins and not session.get("IsPersistent"):
        return
    steps = []
    if path_logins or session.get("IsPersistent"):
        steps.append("unregister")
    if spec.persistent:
        steps.append("register")
    change = {"session": sid, "steps": steps}
    if wrong and spec.persistent:
        old = wrong[0]
        change["old"] = {
            "IsMultipathEnabled": bool(old.get("IsMultipathEnabled")),
            "AuthenticationType": old.get("AuthenticationType"),
        }
        change["new"] = {
            "IsMultipathEnabled": spec.multipath,
            "AuthenticationType": spec.authentication,
        }
    else:
        change["old"] = {"IsPersistent": bool(path_logins or session.get("IsPersistent"))}
        change["new"] = {"IsPersistent": spec.persistent}
    report.changes[f"persistence {label}"] = change
    if test:
        return
    if "unregister" in steps:
        error = host.per_session("unregister", [sid]).get(sid)
        if error:
            report.error(f"cannot unregister {sid} ({label}): {describe_windows_error(error)}")
            return
        # Entries the session no longer owns (older registrations of this path).
        portal_glob = [login_portal(lg) for lg in path_logins if lg.get("TargetPortalAddress")]
        select = login_selector([spec.node_address], portal_glob or None, None)
        for entry in remove_logins(host, select, test=False):
            if entry["status"] == "failed":
                report.error(f"cannot remove a persistent login of {label}: {entry['error']}")
    if spec.persistent:
        fields = {"is_multipath_enabled": spec.multipath, "chap_username": spec.chap_username}
        error = host.per_session("register", [sid], spec.secrets, **fields).get(sid)
        if error:
            report.error(f"cannot register {sid} ({label}): {describe_windows_error(error)}")


# -- absent ---------------------------------------------------------------------------------


def _risks(session: dict) -> list[str]:
    """Why disconnecting this session would hurt: boot/system/clustered disks, online volumes."""
    found = []
    if session.get("DisksUnknown"):
        found.append(luns.DISKS_UNKNOWN)
    for disk in session.get("Disks") or []:
        name = f"disk {disk.get('Number')} ({disk.get('FriendlyName')})"
        for flag, what in (
            ("IsBoot", "boot"),
            ("IsSystem", "system"),
            ("IsClustered", "clustered"),
        ):
            if disk.get(flag):
                found.append(f"{name} is a {what} disk")
        volumes = [
            v.get("DriveLetter") or (v.get("AccessPaths") or ["?"])[0]
            for v in disk.get("Volumes") or []
        ]
        if not disk.get("IsOffline") and volumes:
            found.append(f"{name} is online with volume(s) {', '.join(map(str, volumes))}")
    return found


def ensure_absent(
    host: HostCall, target: list[str], force: bool, keep_portals: list[Portal], test: bool
) -> dict:
    """Unregister, disconnect, remove leftover persistent logins, then the portals nothing
    else uses. Refuses, changing nothing, when a session carries a boot, system or clustered
    disk or an online volume, unless ``force``."""
    report = Outcome()
    nothing = f"No session, persistent login or portal of {', '.join(target)} is left."
    select = Selector(target_node_address=target)
    sessions = host.sessions(connections=True, disks=True)
    mine = [s for s in sessions if select(s)]
    risks = [
        f"{s['SessionIdentifier']} ({s['TargetNodeAddress']}): {r}" for s in mine for r in _risks(s)
    ]
    if risks and not force:
        report.error(
            "refusing to disconnect (set force: True to do it anyway): " + "; ".join(risks)
        )
        return report.summary(test, "remove", nothing)
    _unbind_volumes(host, mine, test, report)
    logins = host.logins()
    portals = lifecycle.target_portals(host)
    used = _portals_of(mine, [lg for lg in logins if select.selects_login(lg)])
    for session in mine:
        sid, name = session["SessionIdentifier"], session["TargetNodeAddress"]
        change = {"old": "connected" + (", persistent" if session.get("IsPersistent") else "")}
        change["new"] = "disconnected"
        report.changes[f"session {sid} ({name})"] = change
    if not test and mine:
        persistent = [s["SessionIdentifier"] for s in mine if s.get("IsPersistent")]
        for sid, error in host.per_session("unregister", persistent).items():
            if error:
                report.error(f"cannot unregister {sid}: {describe_windows_error(error)}")
        for sid, error in lifecycle.disconnect(host, mine).items():
            if error:
                report.error(f"cannot disconnect {sid}: {describe_windows_error(error)}")
    # Every persistent login of the targets goes: most with their sessions' unregister,
    # the rest (targets that are down, older registrations) explicitly. Reported from
    # what is there now, so that test mode shows exactly what a real run changes.
    targets_logins = [lg for lg in logins if select.selects_login(lg)]
    for login in targets_logins:
        label = (
            f"persistent login {login['TargetName']} @ "
            f"{login['TargetPortalAddress']}:{login['TargetPortalPort']}"
        )
        entry = report.changes.setdefault(label, {"entries": 0, "old": "present", "new": "removed"})
        entry["entries"] += 1
    if not test:
        for entry in remove_logins(host, login_selector(target, None, None), test=False):
            if entry["status"] == "failed":
                report.error(
                    f"cannot remove a persistent login of {entry['TargetName']}: {entry['error']}"
                )
    _remove_unused_portals(
        host, portals, used, sessions, mine, logins, select, keep_portals, test, report
    )
    if not test and host.done:
        left = [s for s in host.sessions() if select(s)]
        left_logins = [lg for lg in host.logins() if select.selects_login(lg)]
        if left or left_logins:
            report.error(
                f"after the changes, {len(left)} session(s) and {len(left_logins)} "
                "persistent login(s) of the target remain"
            )
    return report.summary(test, "remove", nothing)


def _unbind_volumes(host: HostCall, sessions: list[dict], test: bool, report: Outcome) -> None:
    """The sessions' volumes off the persistently bound list: they will not come back at
    boot, and the iSCSI service would wait for them at every start."""
    for entry in volumes.unbind_volumes(host, volumes.bound_sessions(sessions), test):
        if entry["status"] == "failed":
            report.error(f"cannot take a volume off the bound list: {entry['error']}")
        else:
            report.changes[f"bound volume {entry['path']}"] = {"old": "bound", "new": "unbound"}


def _portals_of(sessions: list[dict], logins: list[dict]) -> set[tuple[str, int]]:
    found = set()
    for session in sessions:
        for c in session.get("Connections") or []:
            found.add((str(c.get("TargetAddress")).lower(), int(c.get("TargetPortNumber") or 0)))
    for login in logins:
        if login.get("TargetPortalAddress"):
            found.add(
                (str(login["TargetPortalAddress"]).lower(), int(login.get("TargetPortalPort") or 0))
            )
    return found


def _remove_unused_portals(host, portals, used, sessions, mine, logins, select, keep, test, report):
    others = _portals_of(
        [s for s in sessions if s not in mine],
        [lg for lg in logins if not select.selects_login(lg)],
    )
    kept = {(p.address.lower(), p.port) for p in keep}
    for portal in portals:
        key = (str(portal["TargetPortalAddress"]).lower(), int(portal["TargetPortalPortNumber"]))
        if key not in used or key in others or key in kept:
            continue
        target_portal = Portal(portal["TargetPortalAddress"], key[1])
        report.changes[f"portal {target_portal.label}"] = {"old": "present", "new": "absent"}
        if not test:
            try:
                lifecycle.remove_portal(host, target_portal)
            except IscsiError as exc:  # reported, the rest is done
                report.error(f"cannot remove portal {target_portal.label}: {exc}")
