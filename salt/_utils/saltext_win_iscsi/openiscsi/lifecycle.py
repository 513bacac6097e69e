"""The initiator's lifecycle on Linux, as the Windows one: target portals are SendTargets
discovery records, targets are node records, connecting is a login from a record (its
``node.startup`` says whether it comes back at boot), disconnecting a logout.

Values reach iscsiadm as checked argv items; CHAP secrets never do (``ps`` would show
them): they are written into the record's file (``records.py``). A failed login puts the
record's previous settings back, so a wrong secret changes nothing.
"""

from __future__ import annotations

from saltext_win_iscsi.errors import IscsiError, IscsiInputError, safe_text
from saltext_win_iscsi.model import Portal
from saltext_win_iscsi.openiscsi import records
from saltext_win_iscsi.openiscsi.iscsiadm import Iscsiadm
from saltext_win_iscsi.openiscsi.parse import parse_discovery_records, parse_ifaces
from saltext_win_iscsi.openiscsi.persistence import (
    NOT_PERSISTENT,
    PERSISTENT,
    RecordKey,
    at_boot,
    read_records,
    read_sessions,
)
from saltext_win_iscsi.outcome import scrub
from saltext_win_iscsi.selection import Selector
from saltext_win_iscsi.spec import PortalSpec, TargetSpec

DEFAULT_IFACE = "default"


class Host:
    """What the Linux lifecycle works with: iscsiadm and where the node database is."""

    def __init__(self, adm: Iscsiadm, node_dirs: tuple[str, ...]) -> None:
        self.adm = adm
        self.node_dirs = node_dirs


# -- reads ------------------------------------------------------------------------------


def portals(host: Host) -> list[dict]:
    """The discovery records, with the portal fields Windows' target portals have."""
    return [
        {
            "TargetPortalAddress": address,
            "TargetPortalPortNumber": port,
            "InitiatorPortalAddress": None,
            "InitiatorInstanceName": None,
            "IsDataDigest": None,
            "IsHeaderDigest": None,
        }
        for address, port in parse_discovery_records(host.adm.discovery_records())
    ]


def find_portal(found: list[dict], portal: Portal) -> dict | None:
    return next(
        (p for p in found if portal.same_as(p["TargetPortalAddress"], p["TargetPortalPortNumber"])),
        None,
    )


def targets(host: Host, select: Selector) -> list[dict]:
    """The node records' targets (``NodeAddress``, ``IsConnected``)."""
    connected = {str(s["TargetNodeAddress"]).lower() for s in read_sessions(host.adm)}
    names = dict.fromkeys(r["target"] for r in read_records(host.adm).values())
    return [
        {"NodeAddress": name, "IsConnected": name.lower() in connected}
        for name in names
        if select({"TargetNodeAddress": name})
    ]


def iface_for(host: Host, local_address: str | None) -> str:
    """The iface bound to ``local_address`` (Windows' initiator portal), or ``default``."""
    if local_address is None:
        return DEFAULT_IFACE
    ifaces = parse_ifaces(host.adm.ifaces())
    found = [name for name, address in ifaces.items() if address == local_address]
    if not found:
        bound = ", ".join(f"{n} ({a})" for n, a in ifaces.items() if a) or "none"
        raise IscsiInputError(
            f"iSCSI: no open-iscsi iface is bound to {safe_text(local_address)} (bound: "
            f"{bound}); create one with iscsiadm -m iface -o new and iface.ipaddress"
        )
    return found[0]


# -- portals ----------------------------------------------------------------------------


def _discovery_chap(spec: PortalSpec) -> dict[str, str]:
    if not spec.chap_secret:
        return {}
    prefix = "discovery.sendtargets.auth"
    return {
        f"{prefix}.authmethod": "CHAP",
        f"{prefix}.username": spec.chap_username or "",
        f"{prefix}.password": spec.chap_secret,
    }


def add_portal(host: Host, spec: PortalSpec) -> None:
    """SendTargets discovery through the portal (new records only: existing ones keep
    their startup mode). Discovery CHAP is written into the discovery record's file."""
    portal = spec.portal
    iface = iface_for(host, portal.initiator_portal_address)
    chap = _discovery_chap(spec)
    existed = find_portal(portals(host), portal) is not None
    try:
        if chap:
            host.adm.new_discovery_record(portal.address, portal.port)
            path = records.discovery_file(host.node_dirs, portal.address, portal.port)
            records.set_auth(path, chap, records.DISCOVERY_AUTH_KEYS)
        host.adm.discover(portal.address, portal.port, iface)
    except IscsiError as exc:
        # iscsiadm keeps the discovery record of a portal that did not answer: a portal
        # that was not there before must not be left half-added.
        if not existed and find_portal(portals(host), portal) is not None:
            host.adm.delete_discovery_record(portal.address, portal.port)
        raise IscsiError(
            f"iSCSI: cannot discover through {portal.label}: {scrub(str(exc), spec.secrets)}"
        ) from None


def kept_by(host: Host, portal: Portal) -> list[str]:
    """Why a discovery record may not go: iscsiadm deletes the node records found through
    it, and a record logged in at boot or with a live session is what the user keeps."""
    live = {(str(s["TargetNodeAddress"]).lower()) for s in read_sessions(host.adm)}
    return [
        f"{r['target']} at {r['address']}:{r['port']}"
        + (" (logged in at boot)" if at_boot(r) else " (logged in)")
        for r in read_records(host.adm).values()
        if portal.same_as(r.get("discovery_address"), r.get("discovery_port"))
        and (at_boot(r) or r["target"].lower() in live)
    ]


def remove_portal(host: Host, portal: Portal) -> None:
    kept = kept_by(host, portal)
    if kept:
        raise IscsiError(
            f"iSCSI: not removing portal {portal.label}: open-iscsi would delete the node "
            f"records found through it, and these are in use: {'; '.join(kept)}"
        )
    host.adm.delete_discovery_record(portal.address, portal.port)


# -- connections --------------------------------------------------------------------------


def node_chap(spec: TargetSpec) -> dict[str, str]:
    """The node record's authentication settings for ``spec``. In mutual CHAP the target
    authenticates as its own name with the initiator's secret."""
    prefix = "node.session.auth"
    if spec.authentication == "NONE":
        return {f"{prefix}.authmethod": "None"}
    settings = {
        f"{prefix}.authmethod": "CHAP",
        f"{prefix}.username": spec.chap_username or "",
        f"{prefix}.password": spec.chap_secret or "",
    }
    if spec.authentication == "MUTUALCHAP":
        settings[f"{prefix}.username_in"] = spec.node_address
        settings[f"{prefix}.password_in"] = spec.initiator_chap_secret or ""
    return settings


def record_for(host: Host, spec: TargetSpec, portal: Portal | None) -> dict:
    """The node record a connection logs in from (the first one when no portal is given)."""
    iface = iface_for(host, portal.initiator_portal_address if portal else None)
    for record in read_records(host.adm).values():
        if record["target"].lower() != spec.node_address.lower() or record["iface"] != iface:
            continue
        if portal is None or portal.same_as(record["address"], record["port"]):
            return record
    where = f" at {portal.label}" if portal else ""
    raise IscsiError(
        f"iSCSI: {spec.node_address} is not discovered{where} (iface {iface}): add its "
        "portal first (iscsi.add_target_portal)"
    )


def key_of(record: dict) -> RecordKey:
    return (record["target"], record["address"], record["port"], record["iface"])


def connect(host: Host, spec: TargetSpec, portal: Portal | None) -> None:
    """Log in over one path with the wanted startup mode and CHAP; on failure the record's
    settings are put back and the error names the target."""
    record = record_for(host, spec, portal)
    target, address, port, iface = key_of(record)
    path = records.record_file(host.node_dirs, target, address, port, iface)
    saved = records.auth_lines(path)
    node_was, conn_was = (
        record["startup"] or NOT_PERSISTENT,
        record["conn_startup"] or NOT_PERSISTENT,
    )
    records.set_auth(path, node_chap(spec))
    host.adm.set_startup(
        target, address, port, iface, PERSISTENT if spec.persistent else NOT_PERSISTENT
    )
    try:
        host.adm.login(target, address, port, iface)
    except IscsiError as exc:
        records.set_auth(path, saved)
        host.adm.set_startup(target, address, port, iface, node_was, conn_was)
        raise IscsiError(
            f"iSCSI: cannot log in to {target} at {address}:{port}: "
            f"{scrub(str(exc), spec.secrets)}; its record is as it was"
        ) from None


def disconnect(host: Host, sessions: list[dict]) -> dict[str, str | None]:
    """Log out of each session: ``{id: None}`` when done, else the error."""
    outcome: dict[str, str | None] = {}
    for session in sessions:
        sid = str(session["SessionIdentifier"])
        try:
            host.adm.logout(sid)
            outcome[sid] = None
        except IscsiError as exc:
            outcome[sid] = str(exc)
    return outcome


# -- operations: what the execution module reports ----------------------------------------


def add_target_portal(host: Host, spec: PortalSpec, test: bool) -> dict:
    if not test:
        add_portal(host, spec)
    return {"portal": spec.portal.label, "status": "would_add" if test else "added"}


def remove_target_portal(host: Host, portal: Portal, test: bool) -> dict:
    if test:
        kept = kept_by(host, portal)
        if kept:
            raise IscsiError(f"iSCSI: portal {portal.label} is in use: {'; '.join(kept)}")
        return {"portal": portal.label, "status": "would_remove"}
    remove_portal(host, portal)
    return {"portal": portal.label, "status": "removed"}


def update_target_portal(host: Host, portal: Portal) -> dict:
    host.adm.discover(portal.address, portal.port, iface_for(host, portal.initiator_portal_address))
    return {"portal": portal.label, "status": "refreshed"}


def connect_target(host: Host, spec: TargetSpec, test: bool) -> dict:
    portal = spec.portals[0] if spec.portals else None
    if test:
        record_for(host, spec, portal)  # refuse an undiscovered target now, as a run would
    else:
        connect(host, spec, portal)
    return {
        "target": spec.node_address,
        "portal": portal.label if portal else None,
        "status": "would_connect" if test else "connected",
    }


def disconnect_target(host: Host, select: Selector, test: bool) -> dict:
    chosen = [s for s in read_sessions(host.adm) if select(s)]
    report: dict[str, dict] = {
        str(s["SessionIdentifier"]): {"TargetNodeAddress": s["TargetNodeAddress"]} for s in chosen
    }
    for sid in select.missing_ids(chosen):
        report[sid] = {"status": "not_found"}
    if test:
        for s in chosen:
            report[str(s["SessionIdentifier"])]["status"] = "would_disconnect"
        return report
    for sid, error in disconnect(host, chosen).items():
        report[sid]["status"] = "disconnected" if error is None else "failed"
        if error is not None:
            report[sid]["error"] = error
    return report
