"""The initiator's lifecycle on Windows: target portals, discovery, connect, disconnect,
mutual CHAP. Each function works in an open ``HostCall``. Values reach Windows as request
data; secrets travel outside the request JSON (see ``protocol.encode_request``).

The primitives (``add_portal``, ``connect``...) change the host and record it in the
call's journal; the operations (``add_target_portal``...) add what the execution module
reports, and honour ``test``.
"""

from __future__ import annotations

from saltext_win_iscsi.errors import IscsiError
from saltext_win_iscsi.model import Portal
from saltext_win_iscsi.outcome import scrub
from saltext_win_iscsi.selection import Selector
from saltext_win_iscsi.spec import PortalSpec, TargetSpec, refuse_unclaimed_multipath
from saltext_win_iscsi.windows.hostcall import HostCall
from saltext_win_iscsi.windows.protocol import describe_windows_error


def _done(host: HostCall, op: str, what: str, secrets: dict | None = None, **fields) -> None:
    try:
        host.request(op, secrets, **fields)
    except IscsiError as exc:
        raise IscsiError(scrub(str(exc), secrets)) from None
    host.done.append(what)


# -- primitives -----------------------------------------------------------------------------


def target_portals(host: HostCall) -> list[dict]:
    return host.request("get_target_portals")["portals"]


def find_portal(portals: list[dict], portal: Portal) -> dict | None:
    return next(
        (
            p
            for p in portals
            if portal.same_as(p.get("TargetPortalAddress"), p.get("TargetPortalPortNumber"))
        ),
        None,
    )


def add_portal(host: HostCall, spec: PortalSpec) -> None:
    """New-IscsiTargetPortal: add the portal and discover its targets."""
    _done(
        host,
        "add_target_portal",
        f"add portal {spec.portal.label}",
        spec.secrets,
        **spec.portal.request(),
        authentication_type=spec.authentication,
        chap_username=spec.chap_username,
    )


def remove_portal(host: HostCall, portal: Portal) -> None:
    _done(host, "remove_target_portal", f"remove portal {portal.label}", **portal.request())


def refresh_portal(host: HostCall, portal: Portal) -> None:
    """Update-IscsiTargetPortal: discover again what the portal offers."""
    _done(host, "update_target_portal", f"refresh portal {portal.label}", **portal.request())


def targets(host: HostCall) -> list[dict]:
    """Get-IscsiTarget: discovered targets (``NodeAddress``, ``IsConnected``)."""
    return host.request("get_targets")["targets"]


def connect(host: HostCall, spec: TargetSpec, portal: Portal | None) -> None:
    """Connect-IscsiTarget (MSFT_iSCSITarget.Connect) over one path."""
    where = f" via {portal.label}" if portal else ""
    _done(
        host,
        "connect_target",
        f"connect {spec.node_address}{where}",
        spec.secrets,
        node_address=spec.node_address,
        **(portal.request() if portal else {}),
        is_persistent=spec.persistent,
        is_multipath_enabled=spec.multipath,
        authentication_type=spec.authentication,
        chap_username=spec.chap_username,
    )


def disconnect(host: HostCall, sessions: list[dict]) -> dict[str, dict | None]:
    """Disconnect-IscsiTarget per session: ``{id: None}`` on success, else Windows' error."""
    if not sessions:
        return {}
    items = [
        {"id": s["SessionIdentifier"], "node_address": s["TargetNodeAddress"]} for s in sessions
    ]
    results = host.request("disconnect", sessions=items)["results"]
    outcome = {r["id"]: (None if r.get("ok") else r.get("error") or {}) for r in results}
    host.done.extend(f"disconnect {sid}" for sid, error in outcome.items() if error is None)
    return outcome


def set_chap_secret(host: HostCall, secret: str) -> None:
    """Set-IscsiChapSecret: the initiator's secret for mutual CHAP."""
    _done(host, "set_chap_secret", "set the initiator CHAP secret", {"chap_secret": secret})


# -- operations: what the execution module reports ----------------------------------------


def add_target_portal(host: HostCall, spec: PortalSpec, test: bool) -> dict:
    if not test:
        add_portal(host, spec)
    return {"portal": spec.portal.label, "status": "would_add" if test else "added"}


def remove_target_portal(host: HostCall, portal: Portal, test: bool) -> dict:
    if not test:
        remove_portal(host, portal)
    return {"portal": portal.label, "status": "would_remove" if test else "removed"}


def update_target_portal(host: HostCall, portal: Portal) -> dict:
    refresh_portal(host, portal)
    return {"portal": portal.label, "status": "refreshed"}


def get_targets(host: HostCall, select: Selector) -> list[dict]:
    return [t for t in targets(host) if select({"TargetNodeAddress": t.get("NodeAddress")})]


def connect_target(host: HostCall, spec: TargetSpec, test: bool) -> dict:
    portal = spec.portals[0] if spec.portals else None
    if not test:
        connect(host, spec, portal)
    return {
        "target": spec.node_address,
        "portal": portal.label if portal else None,
        "status": "would_connect" if test else "connected",
    }


def disconnect_target(host: HostCall, select: Selector, test: bool) -> dict:
    """Disconnect the selected sessions: a report per session id."""
    chosen = [s for s in host.sessions() if select(s)]
    report: dict[str, dict] = {
        s["SessionIdentifier"]: {"TargetNodeAddress": s["TargetNodeAddress"]} for s in chosen
    }
    for sid in select.missing_ids(chosen):
        report[sid] = {"status": "not_found"}
    if test:
        for s in chosen:
            report[s["SessionIdentifier"]]["status"] = "would_disconnect"
        return report
    for sid, error in disconnect(host, chosen).items():
        report[sid]["status"] = "disconnected" if error is None else "failed"
        if error is not None:
            report[sid]["error"] = describe_windows_error(error)
    return report


def check_multipath_claim(host: HostCall, multipath: bool) -> None:
    """Refuse the MPIO flag (before anything changes) unless MPIO's DSM claims iSCSI disks:
    ``mpio_claim`` reads the MPIO module's settings in this host call."""
    if not multipath:
        return
    claim = host.request("mpio_claim")["claim"]
    if not claim["mpio"]:
        raise refuse_unclaimed_multipath("the Multipath-IO feature is not installed")
    if not (claim["automatic"] or claim["hardware"]):
        raise refuse_unclaimed_multipath(
            "MPIO's Microsoft DSM does not claim iSCSI disks (no automatic claim for iSCSI, "
            "MSFT2005iSCSIBusType_0x9 not among its supported hardware)"
        )


def rescan(host: HostCall) -> dict:
    """Update-HostStorageCache: look again for disks (a LUN mapped after the login)."""
    _done(host, "rescan", "rescan the storage")
    return {"status": "rescanned"}


def set_initiator_chap_secret(host: HostCall, secret: str) -> dict:
    set_chap_secret(host, secret)
    return {"status": "changed"}
