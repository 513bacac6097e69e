"""Every real answer checked against the simulator (test code).

``Twin.request`` mirrors the real host into a ``SimulatedHost`` (its sessions, connections
and persistent logins as the fixed script reports them), sends the same request to both and
asserts the same response shape (keys and JSON types, recursively), the same status per
item (ok, category, status code, error id up to its comma) and, afterwards, the same
``IsPersistent`` per session and the same persistent-login list. A mismatch is recorded in
the observations file before the assertion fails.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from saltext_win_iscsi.windows.wire import PROTOCOL_VERSION
from tests.support.simhost.model import (
    INITIATOR_ADDRESS,
    INITIATOR_INSTANCE,
    SESSION_FIELDS,
    SimulatedHost,
)


def shape(value: Any) -> Any:
    """Keys and JSON types, not values: what the module's code relies on."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def status(error: dict | None) -> tuple | None:
    if not error:
        return None
    return (
        error.get("category"),
        error.get("hresult"),
        str(error.get("error_id") or "").split(",")[0],
    )


def statuses(answer: dict) -> list[tuple]:
    if not answer.get("ok"):
        return [("request", False, status(answer.get("error")))]
    return [
        (item.get("id", n), item.get("ok"), status(item.get("error")))
        for n, item in enumerate(answer.get("results") or [])
    ]


def _same_portal(login: dict, session: dict) -> bool:
    connections = session.get("Connections") or []
    if not login["TargetPortalAddress"] or not connections:
        return True
    return any(
        str(c.get("TargetAddress")).lower() == login["TargetPortalAddress"].lower()
        and c.get("TargetPortNumber") == login["TargetPortalPort"]
        for c in connections
    )


def mirror_state(host: SimulatedHost, sessions: list[dict], logins: list[dict]) -> None:
    """Make ``host`` show exactly ``sessions`` (with Connections) and ``logins``."""
    with host.edit() as state:
        if sessions:
            connections = sessions[0].get("Connections") or [{}]
            state["initiator"] = {
                "node_address": sessions[0]["InitiatorNodeAddress"],
                "instance_name": sessions[0]["InitiatorInstanceName"] or INITIATOR_INSTANCE,
                "local_address": connections[0].get("InitiatorAddress") or INITIATOR_ADDRESS,
            }
        state["sessions"] = [
            {
                **{f: s.get(f) for f in SESSION_FIELDS if f != "IsPersistent"},
                "Connections": copy.deepcopy(s.get("Connections") or []),
                "Disks": copy.deepcopy(s.get("Disks") or []),
            }
            for s in sessions
        ]
        state["persistent_logins"] = []
        for n, login in enumerate(logins, start=1):
            owners = [
                s["SessionIdentifier"]
                for s in sessions
                if s["IsPersistent"]
                and str(s["TargetNodeAddress"]).lower() == str(login["TargetName"]).lower()
                and _same_portal(login, s)
            ]
            state["persistent_logins"].append(
                {
                    "id": n,
                    "session": owners[0] if owners else None,
                    "TargetName": login["TargetName"],
                    "InitiatorInstance": login["InitiatorInstance"],
                    "InitiatorPortNumber": login["InitiatorPortNumber"],
                    "TargetPortal": {
                        "Address": login["TargetPortalAddress"],
                        "Port": login["TargetPortalPort"],
                    },
                    # How it reconnects, as Windows reported it (LoginOptions).
                    "IsMultipathEnabled": bool(login.get("IsMultipathEnabled")),
                    "AuthenticationType": login.get("AuthenticationType") or "NONE",
                    "chap_username": login.get("ChapUsername") or None,
                }
            )
        state["next_login"] = len(logins) + 1
        state["next_session"] = len(sessions) + 1
        owned = {lg["session"] for lg in state["persistent_logins"]}
        # Windows said persistent, but no login of its target and portal: say so too.
        state["behaviour"]["misreport_persistent"] = [
            s["SessionIdentifier"]
            for s in sessions
            if s["IsPersistent"] and s["SessionIdentifier"] not in owned
        ]


class Twin:
    """The real host through ``channel`` and its simulated mirror, side by side."""

    def __init__(self, channel, kind: str, recorder, folder: Path, test: str) -> None:
        self.channel, self.kind, self.recorder = channel, kind, recorder
        self.folder, self.test = folder, test
        self.count = 0

    def real(self, request: dict, secrets: dict | None = None) -> dict:
        answer = self.channel.request(request, secrets)
        assert answer.get("v") == PROTOCOL_VERSION, answer
        return answer

    def persistence(self, answer_of) -> tuple[dict, list]:
        """IsPersistent per session and the sorted persistent-login list, as ``answer_of``
        (a request function) reports them."""
        sessions = answer_of({"op": "get_sessions"})
        logins = answer_of({"op": "get_persistent_logins"})
        assert sessions["ok"] and logins["ok"], (sessions, logins)
        return (
            {s["SessionIdentifier"]: s["IsPersistent"] for s in sessions["sessions"]},
            sorted(logins["logins"], key=lambda lg: json.dumps(lg, sort_keys=True)),
        )

    def mirror(self) -> SimulatedHost:
        """A simulated host showing what the real one shows now."""
        self.count += 1
        observed = {"format": 1, "behaviour": self.recorder.observed_behaviour()}
        host = SimulatedHost(self.folder / f"mirror-{self.count}.json", observations=observed)
        host.reset()
        sessions = self.real({"op": "get_sessions", "connections": True})
        logins = self.real({"op": "get_persistent_logins"})
        assert sessions["ok"] and logins["ok"], (sessions, logins)
        mirror_state(host, sessions["sessions"], logins["logins"])
        return host

    def check(self, *comparisons: tuple[str, Any, Any]) -> None:
        """``(what, real, simulated)`` each: record every difference, then fail on any."""
        differ = [(what, r, s) for what, r, s in comparisons if r != s]
        mismatches = self.recorder.document["facts"].setdefault("simulator_mismatches", [])
        for what, r, s in differ:
            mismatches.append(
                {"test": self.test, "channel": self.kind, "what": what, "real": r, "sim": s}
            )
        if not mismatches:
            del self.recorder.document["facts"]["simulator_mismatches"]
        self.recorder.save()
        assert not differ, "the real host and the simulator differ: " + "; ".join(
            what for what, _, _ in differ
        )

    def request(
        self,
        request: dict,
        secrets: dict | None = None,
        *,
        behaviour=None,
        faults: dict | None = None,
        sim: SimulatedHost | None = None,
        after: bool = True,
    ) -> dict:
        """Send ``request`` to the real host and to its mirror, compare, return the real answer.

        ``behaviour``: switches for the mirror, or a function of the real answer giving them
        (how a test turns what it saw into the simulator's switch); ``faults``: faults for
        the mirror; ``sim``: a mirror taken earlier (before the test broke the host);
        ``after``: also compare persistence afterwards.
        """
        sim = sim or self.mirror()
        real = self.real(request, secrets)
        chosen = behaviour(real) if callable(behaviour) else (behaviour or {})
        for name, value in chosen.items():
            sim.set_behaviour(name, value)
        for name, value in (faults or {}).items():
            sim.set_fault(name, value)
        simulated = {"v": PROTOCOL_VERSION, **sim.handle(request, secrets)}
        op = request.get("op")
        comparisons = [
            (f"{op}: response shape", shape(real), shape(simulated)),
            (f"{op}: status per item", statuses(real), statuses(simulated)),
        ]
        if after:
            comparisons.append(
                (
                    f"{op}: persistence afterwards",
                    self.persistence(self.real),
                    self.persistence(sim.handle),
                )
            )
        self.check(*comparisons)
        return real
