"""Parsers for iscsiadm's output, into the Windows backend's field names where they exist.

``iscsiadm -m session -P 3`` prints a tree (open-iscsi ``usr/session_info.c``)::

    Target: <name> (non-flash)          # "(non-flash)" since 2.0-874
        Current Portal: <addr>:<port>,<tpgt>      # IPv6 and dot-less names in [ ]
        Persistent Portal: <addr>:<port>,<tpgt>
            Iface Name: ... SID: ... iSCSI Session State: ... Attached scsi disk ...

A further session to the same target and the same portal gets an empty line instead of the
two portal lines, so a session starts at a portal line or at a second ``Iface Name``. The
parsers ignore indentation (tabs as printed, spaces where output was pasted into Markdown)
and lines they do not know.
"""

from __future__ import annotations

import re
from typing import Any

from saltext_win_iscsi.model import CONNECTION_FIELDS, SESSION_FIELDS

# Values iscsiadm prints for "not set" in address-like fields.
UNSET = {"", "<empty>", "default", "[default]", "Unknown", "<unknown>", "(null)"}
# node record keys the backend reads; nothing else (CHAP secrets above all) is kept.
RECORD_KEYS = {
    "node.name": "target",
    "node.tpgt": "tpgt",
    "node.startup": "startup",
    "node.conn[0].startup": "conn_startup",
    "node.conn[0].address": "address",
    "node.conn[0].port": "port",
    "iface.iscsi_ifacename": "iface",
    "iface.transport_name": "transport",
    "node.discovery_address": "discovery_address",
    "node.discovery_port": "discovery_port",
    "node.session.auth.authmethod": "authmethod",
    "node.session.auth.username": "username",
    "node.session.auth.username_in": "username_in",
}
# Fields this backend adds to Get-IscsiSession's, for what only Linux has.
LINUX_SESSION_FIELDS = (
    "TargetPortalGroupTag",
    "PersistentPortalAddress",
    "PersistentPortalPort",
    "Transport",
    "SessionState",
    "ConnectionState",
    "StartupMode",
    "AttachedDisks",
)

_PORTAL = re.compile(r"(?P<address>\[[^\]]*\]|[^\s,]*?):(?P<port>\d+)(?:,(?P<tpgt>-?\d+))?")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _tpgt(value: str | None) -> int | None:
    number = _int(value)
    # "-m node" prints the unset tpgt (-1) as an unsigned 32-bit number.
    return -1 if number == 0xFFFFFFFF else number


def parse_portal(text: str) -> tuple[str, int, int | None] | None:
    """``(address, port, tpgt)`` of ``addr:port[,tpgt]`` / ``[addr]:port[,tpgt]``."""
    match = _PORTAL.fullmatch(text.strip())
    if not match:
        return None
    address = match.group("address")
    if address.startswith("["):
        address = address[1:-1]
    return address, int(match.group("port")), _tpgt(match.group("tpgt"))


def _unset(value: str) -> str | None:
    value = value.strip()
    if value in UNSET:
        return None
    return value[1:-1] if value.startswith("[") and value.endswith("]") else value


def _new_session(target: str | None) -> dict:
    session: dict = dict.fromkeys(SESSION_FIELDS)
    session.update(dict.fromkeys(LINUX_SESSION_FIELDS))
    session.update(
        TargetNodeAddress=target,
        NumberOfConnections=1,  # open-iscsi does not do multiple connections per session
        AuthenticationType="NONE",
        IsConnected=False,
        AttachedDisks=[],
        Connections=[dict.fromkeys(CONNECTION_FIELDS)],
    )
    return session


def _same_portal(previous: dict, target: str | None) -> dict:
    session = _new_session(target)
    for key in ("TargetPortalGroupTag", "PersistentPortalAddress", "PersistentPortalPort"):
        session[key] = previous[key]
    for key in ("TargetAddress", "TargetPortNumber"):
        session["Connections"][0][key] = previous["Connections"][0][key]
    return session


def parse_session_tree(text: str) -> list[dict]:
    """Sessions from ``iscsiadm -m session -P 1|2|3`` (``IsPersistent`` left None)."""
    sessions: list[dict] = []
    target: str | None = None
    current: dict | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Attached scsi disk "):
            if current is not None:
                current["AttachedDisks"].append(line.split()[3])
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "Target":
            # "iqn... (non-flash)": iSCSI names hold no whitespace.
            target = value.split()[0] if value else None
            current = None
        elif key in ("Current Portal", "Persistent Portal"):
            portal = parse_portal(value)
            if key == "Current Portal" or current is None:
                current = _new_session(target)
                sessions.append(current)
            if portal is None:
                continue
            address, port, tpgt = portal
            current["TargetPortalGroupTag"] = tpgt
            if key == "Current Portal":
                current["Connections"][0].update(TargetAddress=address, TargetPortNumber=port)
            else:
                current.update(PersistentPortalAddress=address, PersistentPortalPort=port)
        elif key in ("Iface Name", "SID") and current is not None:
            field = "InitiatorInstanceName" if key == "Iface Name" else "SessionIdentifier"
            if current[field] is not None:
                current = _same_portal(current, target)
                sessions.append(current)
            current[field] = value
            if key == "SID":
                current["Connections"][0]["ConnectionIdentifier"] = f"connection{value}:0"
        elif current is not None:
            _session_field(current, key, value)
    return [s for s in sessions if s["SessionIdentifier"] is not None and s["TargetNodeAddress"]]


def _session_field(session: dict, key: str, value: str) -> None:
    if key == "Iface Transport":
        session["Transport"] = value
    elif key == "Iface Initiatorname":
        session["InitiatorNodeAddress"] = _unset(value)
    elif key == "Iface IPaddress":
        session["InitiatorPortalAddress"] = _unset(value)
        session["Connections"][0]["InitiatorAddress"] = _unset(value)
    elif key == "iSCSI Connection State":
        session["ConnectionState"] = value
    elif key == "iSCSI Session State":
        session["SessionState"] = value
        session["IsConnected"] = value == "LOGGED_IN"
    elif key in ("HeaderDigest", "DataDigest"):
        session[f"Is{key}"] = value.upper().startswith("CRC32C")
    elif key == "username" and _unset(value):
        if session["AuthenticationType"] == "NONE":
            session["AuthenticationType"] = "ONEWAYCHAP"
    elif key == "username_in" and _unset(value):
        session["AuthenticationType"] = "MUTUALCHAP"


def _record(raw: dict[str, str]) -> dict:
    record: dict[str, Any] = {name: _unset(raw.get(key, "")) for key, name in RECORD_KEYS.items()}
    # The iface name "default" is a name here, not "unset".
    record["iface"] = raw.get("iface.iscsi_ifacename", "").strip() or "default"
    record["port"] = _int(record["port"])
    record["tpgt"] = _tpgt(record["tpgt"])
    record["discovery_port"] = _int(record["discovery_port"])
    return record


def parse_node_records(text: str) -> list[dict]:
    """Node records from ``iscsiadm -m node -o show`` (or a record file's text).

    Each: ``target``, ``address``, ``port``, ``tpgt``, ``iface``, ``transport``,
    ``startup`` (``node.startup``) and ``conn_startup`` (``node.conn[0].startup``).
    """
    records: list[dict] = []
    raw: dict[str, str] | None = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("# BEGIN RECORD"):
            if raw:
                records.append(_record(raw))
            raw = {}
            continue
        if line.startswith("# END RECORD"):
            if raw:
                records.append(_record(raw))
            raw = None
            continue
        key, sep, value = line.partition(" = ")
        if sep and key in RECORD_KEYS:
            raw = {} if raw is None else raw
            raw[key] = value
    if raw:
        records.append(_record(raw))
    return [r for r in records if r["target"] and r["address"] and r["port"] is not None]


def parse_discovery_records(text: str) -> list[tuple[str, int]]:
    """``(address, port)`` of each SendTargets record in ``iscsiadm -m discoverydb``."""
    found = []
    for line in text.splitlines():
        portal, _, how = line.strip().partition(" via ")
        parsed = parse_portal(portal)
        if parsed and how.strip() == "sendtargets":
            found.append(parsed[:2])
    return found


def parse_ifaces(text: str) -> dict[str, str | None]:
    """iface name -> the local address it is bound to (None: any), from ``-m iface``."""
    ifaces = {}
    for line in text.splitlines():
        name, _, fields = line.strip().partition(" ")
        parts = fields.split(",")
        if name and len(parts) > 2:
            ifaces[name] = _unset(parts[2])
    return ifaces
