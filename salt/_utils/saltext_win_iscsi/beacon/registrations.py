"""New persistent registrations since the last look: what the beacon reports as
``registered`` (for people and audit trails; enforcement does not depend on it).

A session id that was not persistent before is new, except that each persistent session
which vanished altogether (logged out) excuses one never-seen newcomer of the same
(target, initiator): that is a persistent login reconnecting under a new id after a restart
or a network drop. A persistent login entry that appears without such a session (a second
MPIO registration, a registration for a target that is down) is new as well.
"""

from __future__ import annotations

from collections import Counter

from saltext_win_iscsi.model import login_key


def _group(session: dict) -> str:
    target = str(session.get("TargetNodeAddress") or "").lower()
    initiator = str(session.get("InitiatorNodeAddress") or "").lower()
    return f"{target}|{initiator}"


def _key(login: dict) -> str:
    return "|".join(login_key(login))


def knowledge(sessions: list[dict], logins: list[dict]) -> dict:
    """What is remembered between looks (JSON-serialisable, kept in the minion's cache)."""
    return {
        "persistent": {
            s["SessionIdentifier"]: _group(s) for s in sessions if s.get("IsPersistent")
        },
        "others": sorted(s["SessionIdentifier"] for s in sessions if not s.get("IsPersistent")),
        "logins": dict(Counter(_key(login) for login in logins)),
    }


def valid_knowledge(known: object) -> bool:
    return (
        isinstance(known, dict)
        and isinstance(known.get("persistent"), dict)
        and isinstance(known.get("others"), list)
        and isinstance(known.get("logins"), dict)
    )


def new_sessions(known: dict, sessions: list[dict]) -> list[dict]:
    """Sessions persistent now that are new registrations rather than reconnects."""
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


def new_logins(known: dict, logins: list[dict], with_sessions: list[dict]) -> list[dict]:
    """Persistent-login entries added since ``known``, except those that come with a
    session reported as newly persistent in the same look (one registration, one event)."""
    before = Counter(known.get("logins", {}))
    claimed = Counter(str(s.get("TargetNodeAddress")).lower() for s in with_sessions)
    grouped: dict[str, list[dict]] = {}
    for login in logins:
        grouped.setdefault(_key(login), []).append(login)
    new = []
    for key, members in sorted(grouped.items()):
        target = str(members[0].get("TargetName")).lower()
        for login in members[before.get(key, 0) :]:
            if claimed[target] > 0:
                claimed[target] -= 1
            else:
                new.append(login)
    return new
