"""Which sessions and persistent logins a call or a policy rule selects.

Globs know ``*`` (any run of characters) and ``?`` (one character); everything else, ``[``
included (IPv6 portals), matches itself. Matching is case-insensitive, as IQNs are (RFC 3722
folds them to lower case).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

from saltext_win_iscsi.errors import IscsiInputError
from saltext_win_iscsi.model import portal_label


def as_list(value: Any, name: str) -> list[str] | None:
    """A CLI/state value as a list of non-empty strings ('a,b' splits), or None."""
    if value is None:
        return None
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise IscsiInputError(
            f"{name} must be a string or a list of strings, not {type(value).__name__}"
        )
    result = []
    for item in items:
        if not isinstance(item, str):
            raise IscsiInputError(f"{name} must hold strings, not {type(item).__name__}")
        if not item.strip():
            raise IscsiInputError(f"{name} holds an empty value")
        result.append(item.strip())
    if not result:
        raise IscsiInputError(f"{name} is empty")
    return result


@functools.lru_cache(maxsize=256)
def glob(pattern: str) -> re.Pattern:
    """Compile a glob where only ``*`` and ``?`` are special."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def matches_any(values: Iterable[str], patterns: list[str]) -> bool:
    return any(glob(pattern).fullmatch(value) for value in values for pattern in patterns)


def _id_text(value: Any) -> Any:
    """Session ids as text: Linux ids are numbers, which Salt's CLI parses into ints."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_id_text(item) for item in value]
    return value


def ids_from_sessions(sessions: Any) -> list[str]:
    """Session ids of ``-InputObject``-style session dicts."""
    if isinstance(sessions, dict):
        sessions = [sessions]
    if not isinstance(sessions, (list, tuple)) or not sessions:
        raise IscsiInputError("sessions must be a non-empty list of session dicts")
    ids = []
    for session in sessions:
        sid = session.get("SessionIdentifier") if isinstance(session, dict) else None
        if not isinstance(sid, str) or not sid.strip():
            raise IscsiInputError(
                "each item of sessions needs a SessionIdentifier (as iscsi.get_sessions returns)"
            )
        ids.append(sid.strip())
    return ids


def portal_forms(session: dict) -> list[str]:
    """'address' and 'address:port' forms of each connection's target portal."""
    forms = []
    for connection in session.get("Connections") or []:
        label = portal_label(connection.get("TargetAddress"), connection.get("TargetPortNumber"))
        forms += [label.rpartition(":")[0], label]
    return forms


def login_as_session(login: dict) -> dict:
    """A persistent login seen through the session selector's eyes (target and portal)."""
    return {
        "TargetNodeAddress": login.get("TargetName"),
        "Connections": [
            {
                "TargetAddress": login.get("TargetPortalAddress"),
                "TargetPortNumber": login.get("TargetPortalPort"),
            }
        ],
    }


class Selector:
    """What a call selects: ids (exact) and/or globs on target, initiator and portal."""

    def __init__(
        self,
        session_identifier: Any = None,
        sessions: Any = None,
        target_node_address: Any = None,
        initiator_node_address: Any = None,
        target_portal: Any = None,
        is_persistent: Any = None,
        exclude_target_node_address: Any = None,
    ) -> None:
        ids = as_list(_id_text(session_identifier), "session_identifier")
        if sessions is not None:
            ids = (ids or []) + ids_from_sessions(sessions)
        self.ids = ids
        self._id_set = {i.lower() for i in ids} if ids is not None else None
        self.targets = as_list(target_node_address, "target_node_address")
        self.initiators = as_list(initiator_node_address, "initiator_node_address")
        self.portals = as_list(target_portal, "target_portal")
        self.excluded_targets = as_list(exclude_target_node_address, "exclude_target_node_address")
        if is_persistent is not None and not isinstance(is_persistent, bool):
            raise IscsiInputError(f"is_persistent must be True or False, not {is_persistent!r}")
        self.is_persistent = is_persistent

    @property
    def empty(self) -> bool:
        return not (self.ids or self.targets or self.initiators or self.portals)

    @property
    def needs_connections(self) -> bool:
        return bool(self.portals)

    def require(self) -> None:
        """Refuse an empty selection: never "all sessions" by omission."""
        if self.empty:
            raise IscsiInputError(
                "no session selected: give session_identifier, sessions, target_node_address, "
                "initiator_node_address or target_portal"
            )

    def __call__(self, session: dict) -> bool:
        target = session.get("TargetNodeAddress") or ""
        return (
            (
                self._id_set is None
                or str(session.get("SessionIdentifier", "")).lower() in self._id_set
            )
            and (not self.targets or matches_any([target], self.targets))
            and (
                not self.initiators
                or matches_any([session.get("InitiatorNodeAddress") or ""], self.initiators)
            )
            and (not self.portals or matches_any(portal_forms(session), self.portals))
            and not (self.excluded_targets and matches_any([target], self.excluded_targets))
            and (
                self.is_persistent is None
                or bool(session.get("IsPersistent")) == self.is_persistent
            )
        )

    def selects_login(self, login: dict) -> bool:
        """Whether a persistent login falls under this selection (target and portal)."""
        return self(login_as_session(login))

    def missing_ids(self, sessions: list[dict]) -> list[str]:
        """Requested ids that no session on the host has."""
        present = {str(s.get("SessionIdentifier", "")).lower() for s in sessions}
        return [i for i in self.ids or [] if i.lower() not in present]


def login_selector(
    target_node_address: Any, target_portal: Any, exclude_target_node_address: Any
) -> Selector:
    """The selection of persistent logins: logins carry a target and a portal only."""
    return Selector(
        target_node_address=target_node_address,
        target_portal=target_portal,
        exclude_target_node_address=exclude_target_node_address,
    )
