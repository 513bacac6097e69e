"""
Fire an event when an iSCSI session becomes persistent (a new persistent registration).

Pair it with the reactor ``salt://reactor/iscsi_enforce.sls`` to undo registrations that
the minion's pillar policy forbids. Configure it in the minion config, or in pillar (if
pillar defines ``beacons``, beacons in the minion config are not run):

.. code-block:: yaml

    beacons:
      iscsi:
        - interval: 5                     # seconds between checks
        - disable_during_state_run: True  # do not watch our own remediation
        - targets: 'iqn.1991-05.com.contoso:*'          # optional globs
        - exclude_targets: 'iqn.1991-05.com.contoso:db-*'  # optional globs
        - report_existing: False          # True: report every persistent session at start
        - timeout: 10                     # seconds a check may take

Events: ``salt/beacon/<minion id>/iscsi/registered``, one per new registration: with
``kind: session`` and the session's ``Get-IscsiSession`` fields when a session became
persistent, or ``kind: persistent_login`` and the entry's fields when a persistent login was
added without such a session (a second MPIO registration, or a target that is down).

How it stays cheap: one PowerShell is kept open between ticks (``iscsi.watch``); a tick
asks it only for a digest of the persistent sessions, and reads the sessions only when
the digest changed.

What counts as new: a session that is persistent now and was not before. A persistent
login that reconnects (after a restart or a network drop) comes back under a new session
id while its old session is gone: each vanished persistent session excuses one newcomer of
the same (target IQN, initiator IQN), so reconnects fire nothing. What the beacon knows
is kept in the minion's cache directory, so neither a minion restart nor a beacon refresh
floods the master or misses what happened meanwhile. The very first run only takes a
baseline unless ``report_existing`` is set.

Faults (PowerShell missing, hanging, answering garbage, Windows errors) are logged once
and retried on the next tick; the beacon never raises and the minion keeps running.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter

import salt.utils.beacons

log = logging.getLogger(__name__)

__virtualname__ = "iscsi"

DEFAULTS = {"targets": None, "exclude_targets": None, "report_existing": False, "timeout": 10}
CACHE_FILE = "iscsi_beacon.json"
_MEMORY = "iscsi.beacon.memory"
_FAULT = "iscsi.beacon.fault"


def __virtual__():
    return __virtualname__


def _globs_ok(value) -> bool:
    if value is None:
        return True
    items = [value] if isinstance(value, str) else value
    return (
        isinstance(items, list)
        and bool(items)
        and all(isinstance(i, str) and i.strip() for i in items)
    )


def validate(config):
    """Check the beacon configuration (a list of one-key dicts)."""
    if not isinstance(config, list) or not all(isinstance(item, dict) for item in config):
        return False, "iscsi beacon: configuration must be a list of single-key mappings"
    merged = salt.utils.beacons.list_to_dict(config)
    for key in ("targets", "exclude_targets"):
        if not _globs_ok(merged.get(key)):
            return False, f"iscsi beacon: {key} must be a glob or a non-empty list of globs"
    if not isinstance(merged.get("report_existing", False), bool):
        return False, "iscsi beacon: report_existing must be True or False"
    timeout = merged.get("timeout", DEFAULTS["timeout"])
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        return False, "iscsi beacon: timeout must be a positive number of seconds"
    return True, "Valid beacon configuration"


def _group(session: dict) -> str:
    target = str(session.get("TargetNodeAddress") or "").lower()
    initiator = str(session.get("InitiatorNodeAddress") or "").lower()
    return f"{target}|{initiator}"


def _new_registrations(known: dict, sessions: list[dict]) -> list[dict]:
    """Sessions persistent now that are new registrations rather than reconnects.

    A session id that was not persistent before is new, except that each persistent
    session which vanished altogether (logged out) excuses one never-seen newcomer of the
    same (target, initiator): that is a persistent login reconnecting under a new id. A
    session that existed before, not persistent, and is persistent now was registered.
    """
    before: dict[str, str] = known.get("persistent", {})
    seen = set(known.get("others", []))
    present = {s["SessionIdentifier"] for s in sessions}
    reconnects = Counter(group for sid, group in before.items() if sid not in present)
    new = []
    for session in sorted(sessions, key=lambda s: s["SessionIdentifier"]):
        sid = session["SessionIdentifier"]
        if not session.get("IsPersistent") or sid in before:
            continue
        group = _group(session)
        if sid not in seen and reconnects[group] > 0:
            reconnects[group] -= 1
        else:
            new.append(session)
    return new


def _login_key(login: dict) -> str:
    return "|".join(
        str(login.get(field)).lower()
        for field in (
            "TargetName",
            "InitiatorInstance",
            "InitiatorPortNumber",
            "TargetPortalAddress",
            "TargetPortalPort",
        )
    )


def _new_logins(known: dict, logins: list[dict], new_sessions: list[dict]) -> list[dict]:
    """Persistent-login entries added since ``known``, except those that come with a
    session reported as newly persistent in the same check (one registration, one event)."""
    if "logins" not in known:
        return []  # knowledge from before logins were watched: baseline them silently
    before = Counter(known["logins"])
    claimed = Counter(str(s.get("TargetNodeAddress")).lower() for s in new_sessions)
    grouped: dict[str, list[dict]] = {}
    for login in logins:
        grouped.setdefault(_login_key(login), []).append(login)
    new = []
    for key, members in sorted(grouped.items()):
        target = str(members[0].get("TargetName")).lower()
        for login in members[before.get(key, 0) :]:
            if claimed[target] > 0:
                claimed[target] -= 1
            else:
                new.append(login)
    return new


def _knowledge(digest: str, sessions: list[dict], logins: list[dict]) -> dict:
    return {
        "digest": digest,
        "persistent": {
            s["SessionIdentifier"]: _group(s) for s in sessions if s.get("IsPersistent")
        },
        "others": sorted(s["SessionIdentifier"] for s in sessions if not s.get("IsPersistent")),
        "logins": dict(Counter(_login_key(login) for login in logins)),
    }


def _cache_path() -> str:
    return os.path.join(__opts__["cachedir"], CACHE_FILE)


def _load_known() -> dict | None:
    try:
        with open(_cache_path(), encoding="utf-8") as handle:
            known = json.load(handle)
        valid = isinstance(known, dict) and isinstance(known.get("persistent"), dict)
        return known if valid else None
    except (OSError, ValueError):
        return None


def _save_known(known: dict) -> None:
    path = _cache_path()
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(known, handle)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("iscsi beacon: cannot save what it knows to %s: %s", path, exc)


def _fault(exc: Exception) -> None:
    text = f"{type(exc).__name__}: {exc}"
    if __context__.get(_FAULT) != text:
        log.error("iscsi beacon: check failed, retrying next tick: %s", text)
    else:
        log.debug("iscsi beacon: still failing: %s", text)
    __context__[_FAULT] = text


def beacon(config):
    """Return one event per new persistent registration since the last check."""
    cfg = {**DEFAULTS, **salt.utils.beacons.list_to_dict(config)}
    starting = _MEMORY not in __context__
    known = __context__.get(_MEMORY) or _load_known()
    try:
        snapshot = __salt__["iscsi.watch"](
            previous_digest=None if starting else known and known["digest"],
            target_node_address=cfg["targets"],
            exclude_target_node_address=cfg["exclude_targets"],
            keep_open=True,
            timeout=cfg["timeout"],
        )
    except Exception as exc:  # pylint: disable=broad-except
        # A beacon must never take the minion down: log once, retry next tick.
        _fault(exc)
        return []
    if __context__.pop(_FAULT, None):
        log.info("iscsi beacon: checks work again")
    if not snapshot["changed"]:
        return []
    sessions = snapshot["sessions"]
    logins = snapshot.get("logins", [])
    selected = set(snapshot["selected"])
    if starting and cfg["report_existing"]:
        fire = [s for s in sessions if s.get("IsPersistent")]
        fire_logins = [lg for lg in logins if not any(_same_target(lg, s) for s in fire)]
    elif known is None:
        fire, fire_logins = [], []  # first run ever: baseline only
    else:
        fire = _new_registrations(known, sessions)
        fire_logins = _new_logins(known, logins, fire)
    now = _knowledge(snapshot["digest"], sessions, logins)
    __context__[_MEMORY] = now
    if known != now:
        _save_known(now)
    events = [
        {"tag": "registered", "kind": "session", **session}
        for session in fire
        if session["SessionIdentifier"] in selected
    ]
    events += [
        {
            "tag": "registered",
            "kind": "persistent_login",
            "TargetNodeAddress": login["TargetName"],
            **{k: v for k, v in login.items() if k != "selected"},
        }
        for login in fire_logins
        if login.get("selected")
    ]
    return events


def _same_target(login: dict, session: dict) -> bool:
    return str(login.get("TargetName")).lower() == str(session.get("TargetNodeAddress")).lower()
