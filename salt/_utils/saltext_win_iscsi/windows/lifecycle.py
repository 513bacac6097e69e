"""The initiator's lifecycle: target portals, discovery, connect, disconnect, mutual CHAP.

Each function works through one HostCall (one PowerShell process). Values reach Windows as
request data; secrets travel outside the request JSON (see protocol.encode_request).
"""

from __future__ import annotations

from saltext_win_iscsi.errors import IscsiError
from saltext_win_iscsi.selection import Selector
from saltext_win_iscsi.spec import Portal
from saltext_win_iscsi.windows.hostcall import HostCall
from saltext_win_iscsi.windows.persistence import Opener, scrub
from saltext_win_iscsi.windows.protocol import describe_windows_error


def _done(host: HostCall, op: str, what: str, secrets: dict | None = None, **fields) -> None:
    try:
        host.request(op, secrets, **fields)
    except IscsiError as exc:
        raise IscsiError(scrub(str(exc), secrets)) from None
    host.done.append(what)


# -- portals ----------------------------------------------------------------------------


def get_target_portals(opener: Opener) -> list[dict]:
    with HostCall(opener) as host:
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


def add_target_portal(
    host: HostCall,
    portal: Portal,
    authentication_type: str | None = None,
    chap_username: str | None = None,
    secrets: dict | None = None,
) -> None:
    """New-IscsiTargetPortal: add the portal and discover its targets."""
    _done(
        host,
        "add_target_portal",
        f"add portal {portal.label}",
        secrets,
        **portal.request(),
        authentication_type=authentication_type,
        chap_username=chap_username,
    )


def remove_target_portal(host: HostCall, portal: Portal) -> None:
    _done(host, "remove_target_portal", f"remove portal {portal.label}", **portal.request())


def update_target_portal(host: HostCall, portal: Portal) -> None:
    """Update-IscsiTargetPortal: discover again what the portal offers."""
    _done(host, "update_target_portal", f"refresh portal {portal.label}", **portal.request())


# -- targets and sessions -----------------------------------------------------------------


def get_targets(opener: Opener, select: Selector) -> list[dict]:
    """Get-IscsiTarget: discovered targets (``NodeAddress``, ``IsConnected``)."""
    with HostCall(opener) as host:
        targets = host.request("get_targets")["targets"]
    return [t for t in targets if select({"TargetNodeAddress": t.get("NodeAddress")})]


def connect(
    host: HostCall,
    node_address: str,
    portal: Portal | None,
    *,
    persistent: bool,
    multipath: bool,
    authentication_type: str | None,
    chap_username: str | None,
    secrets: dict | None,
) -> None:
    """Connect-IscsiTarget (MSFT_iSCSITarget.Connect) over one path."""
    where = f" via {portal.label}" if portal else ""
    _done(
        host,
        "connect_target",
        f"connect {node_address}{where}",
        secrets,
        node_address=node_address,
        **(portal.request() if portal else {}),
        is_persistent=bool(persistent),
        is_multipath_enabled=bool(multipath),
        authentication_type=authentication_type,
        chap_username=chap_username,
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


def describe(error: dict | None) -> str:
    return describe_windows_error(error or {})
