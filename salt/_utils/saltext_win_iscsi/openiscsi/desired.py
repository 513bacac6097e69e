"""Desired states of a target on Linux, with the Windows semantics: a portal configured or
not, a target connected over given paths with the wanted persistence and CHAP, a target
gone for good. Each reads the host, acts, and reads again to verify; with ``test`` it only
reports. The outcome is ``{"changes", "comments", "errors"}`` (``outcome.Outcome``).
"""

from __future__ import annotations

from saltext_win_iscsi import luns, outcome
from saltext_win_iscsi.errors import IscsiError
from saltext_win_iscsi.model import Portal
from saltext_win_iscsi.openiscsi import lifecycle, records
from saltext_win_iscsi.openiscsi.disks import mounts, risks
from saltext_win_iscsi.openiscsi.lifecycle import Host
from saltext_win_iscsi.openiscsi.persistence import (
    NOT_PERSISTENT,
    PERSISTENT,
    at_boot,
    authentication_of,
    logins_of,
    read_records,
    read_sessions,
)
from saltext_win_iscsi.outcome import Outcome, login_label
from saltext_win_iscsi.selection import Selector
from saltext_win_iscsi.spec import PortalSpec, TargetSpec, on_portal, path_problems, same_target


def ensure_portal(host: Host, spec: PortalSpec, present: bool, test: bool) -> dict:
    """A discovery record there or not. Removing one is refused while targets found through
    it are in use (iscsiadm would delete their records too), in test mode as well."""
    found = lifecycle.find_portal(lifecycle.portals(host), spec.portal) is not None

    def change() -> None:
        if present:
            if not test:
                lifecycle.add_portal(host, spec)
            return
        kept = lifecycle.kept_by(host, spec.portal)
        if kept:
            raise IscsiError(
                "open-iscsi would delete the node records found through it, and these "
                f"are in use: {'; '.join(kept)}"
            )
        if not test:
            lifecycle.remove_portal(host, spec.portal)

    return outcome.portal(spec, found, present, test, change)


def ensure_connected(host: Host, spec: TargetSpec, test: bool, disk_timeout: float) -> dict:
    """Discover through missing portals, log in over each missing path, fix the startup
    mode and CHAP of each path's record where they differ; then read again and report what
    still differs as errors, and wait up to ``disk_timeout`` seconds for the disks of a
    session it made."""
    report = Outcome(spec.secrets)
    nothing = f"{spec.node_address} is connected as wanted."
    known = lifecycle.portals(host)
    for missing in [p for p in spec.portals if lifecycle.find_portal(known, p) is None]:
        report.changes[f"portal {missing.label}"] = {"old": "absent", "new": "present"}
        if not test:
            try:
                lifecycle.add_portal(host, PortalSpec(missing))
            except IscsiError as exc:
                del report.changes[f"portal {missing.label}"]
                report.error(f"cannot discover through {missing.label}: {exc}")
    sessions = read_sessions(host.adm)
    mine = [s for s in sessions if same_target(s, spec.node_address)]
    for portal in spec.portals or (None,):
        label = spec.node_address + (f" via {portal.label}" if portal else "")
        if any(on_portal(s, portal) for s in mine):
            _converge_record(host, spec, portal, label, test, report)
            continue
        report.changes[f"session {label}"] = {
            "old": "disconnected",
            "new": "connected" + (", persistent" if spec.persistent else ""),
        }
        if test:
            continue
        try:
            lifecycle.connect(host, spec, portal)
        except IscsiError as exc:  # reported per path, the others go on
            del report.changes[f"session {label}"]
            report.error(f"cannot connect {label}: {exc}")
    if not test and report.changes:
        now = read_records(host.adm)
        for problem in path_problems(spec, read_sessions(host.adm, now), logins_of(now)):
            report.error(f"after the changes, {problem}")
        if not report.errors and luns.made_a_session(report):
            luns.wait_for_disks(lambda: read_sessions(host.adm), spec, disk_timeout, report)
    return report.summary(test, "connect", nothing)


def _converge_record(
    host: Host, spec: TargetSpec, portal: Portal | None, label: str, test: bool, report: Outcome
) -> None:
    """A connected path whose record does not come back at boot as wanted, or has other
    CHAP settings (used from the next login on: the session stays as it is)."""
    record = lifecycle.record_for(host, spec, portal)
    change: dict = {}
    if at_boot(record) != spec.persistent:
        change["old"] = {"IsPersistent": at_boot(record)}
        change["new"] = {"IsPersistent": spec.persistent}
    wrong_chap = authentication_of(record) != spec.authentication or (
        spec.chap_username is not None and record.get("username") != spec.chap_username
    )
    if wrong_chap:
        change.setdefault("old", {})["AuthenticationType"] = authentication_of(record)
        change.setdefault("new", {})["AuthenticationType"] = spec.authentication
    if not change:
        return
    report.changes[f"persistence {label}"] = change
    if test:
        return
    target, address, port, iface = lifecycle.key_of(record)
    try:
        if wrong_chap:
            records.set_auth(
                records.record_file(host.node_dirs, target, address, port, iface),
                lifecycle.node_chap(spec),
            )
        mode = PERSISTENT if spec.persistent else NOT_PERSISTENT
        host.adm.set_startup(target, address, port, iface, mode)
    except IscsiError as exc:
        report.error(f"cannot change the record of {label}: {exc}")


def ensure_absent(
    host: Host,
    targets: list[str],
    force: bool,
    keep_portals: list[Portal],
    lsblk: str | None,
    test: bool,
) -> dict:
    """No session, no record, and no discovery record only they used: records set to
    ``manual`` first (nothing comes back at boot even if a logout fails), then logged out,
    then deleted. Refuses, changing nothing, while a session carries the root file system
    or a mounted one, unless ``force``."""
    report = Outcome()
    nothing = f"No session, persistent login or portal of {', '.join(targets)} is left."
    select = Selector(target_node_address=targets)
    found_records = read_records(host.adm)
    sessions = read_sessions(host.adm, found_records)
    mine = [s for s in sessions if select(s)]
    disks = [d for s in mine for d in s.get("AttachedDisks") or []]
    mounted = mounts(lsblk, disks, host.adm.timeout)
    found = [
        f"{s['SessionIdentifier']} ({s['TargetNodeAddress']}): {r}"
        for s in mine
        for r in risks(s, mounted)
    ]
    if found and not force:
        report.error("refusing to log out (set force: True to do it anyway): " + "; ".join(found))
        return report.summary(test, "remove", nothing)
    doomed = [r for r in found_records.values() if select({"TargetNodeAddress": r["target"]})]
    for session in mine:
        old = "connected" + (", persistent" if session.get("IsPersistent") else "")
        report.changes[
            f"session {session['SessionIdentifier']} ({session['TargetNodeAddress']})"
        ] = {
            "old": old,
            "new": "disconnected",
        }
    for record in doomed:
        if at_boot(record):
            report.changes.setdefault(
                login_label(_as_login(record)), {"entries": 0, "old": "present", "new": "removed"}
            )["entries"] += 1
    unused = _unused_portals(host, found_records, select, keep_portals)
    for portal in unused:
        report.changes[f"portal {portal.label}"] = {"old": "present", "new": "absent"}
    if test:
        return report.summary(test, "remove", nothing)
    for record in doomed:
        target, address, port, iface = lifecycle.key_of(record)
        _step(
            report,
            f"set {target} at {address}:{port} manual",
            host.adm.set_startup,
            target,
            address,
            port,
            iface,
            NOT_PERSISTENT,
        )
    for sid, error in lifecycle.disconnect(host, mine).items():
        if error:
            report.error(f"cannot log out of {sid}: {error}")
    for record in doomed:
        _step(
            report,
            f"delete the record of {record['target']}",
            host.adm.delete_record,
            *lifecycle.key_of(record),
        )
    for portal in unused:
        _step(
            report,
            f"remove portal {portal.label}",
            host.adm.delete_discovery_record,
            portal.address,
            portal.port,
        )
    left_records = [
        r for r in read_records(host.adm).values() if select({"TargetNodeAddress": r["target"]})
    ]
    left = [s for s in read_sessions(host.adm) if select(s)]
    if left or left_records:
        report.error(
            f"after the changes, {len(left)} session(s) and {len(left_records)} node "
            "record(s) of the target remain"
        )
    return report.summary(test, "remove", nothing)


def _as_login(record: dict) -> dict:
    return {
        "TargetName": record["target"],
        "TargetPortalAddress": record["address"],
        "TargetPortalPort": record["port"],
    }


def _step(report: Outcome, what: str, action, *args) -> None:
    try:
        action(*args)
    except IscsiError as exc:
        report.error(f"cannot {what}: {exc}")


def _unused_portals(host: Host, known: dict, select: Selector, keep: list[Portal]) -> list[Portal]:
    """Discovery records through which only the doomed targets were found (deleting one
    deletes every record found through it) and that ``keep`` does not name."""
    unused = []
    for found in lifecycle.portals(host):
        portal = Portal.of(found["TargetPortalAddress"], found["TargetPortalPortNumber"])
        through = [
            r
            for r in known.values()
            if portal.same_as(r.get("discovery_address"), r.get("discovery_port"))
        ]
        kept = any(p.same_as(portal.address, portal.port) for p in keep)
        if (
            through
            and not kept
            and all(select({"TargetNodeAddress": r["target"]}) for r in through)
        ):
            unused.append(portal)
    return unused
