"""The persistence policy from pillar (``iscsi:policy``): parsed once, used everywhere.

The formula turns the rules into states, the beacon and ``iscsi.check_policy`` evaluate
them against what the host reports, the fleet report lists their violations: all through
this one parser and the same selectors, so they cannot disagree about what a rule means.

.. code-block:: yaml

    iscsi:
      policy:
        not_persistent:              # sessions to these targets must not reconnect at boot
          - target: 'iqn.1991-05.com.contoso:backup-*'
            portal: '10.0.9.*'       # optional: narrows the rule
            initiator: '*:host-1'    # optional: narrows the rule (sessions only)
        exceptions:                  # optional: targets every rule leaves alone
          - 'iqn.1991-05.com.contoso:backup-keep'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from saltext_win_iscsi.errors import IscsiInputError
from saltext_win_iscsi.selection import Selector, as_list, login_selector

PILLAR_KEY = "iscsi:policy"
RULE_KINDS = ("not_persistent",)
RULE_KEYS = {"target", "portal", "initiator"}


class PolicyError(IscsiInputError):
    """The pillar policy is malformed; the message names the pillar key."""


def _describe(value: object) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def _globs(value: object, where: str) -> list[str] | None:
    try:
        return as_list(value, where)
    except IscsiInputError as exc:
        raise PolicyError(f"pillar {where} must be a glob or a list of globs ({exc})") from None


@dataclass(frozen=True)
class Rule:
    """One rule of the policy, with the selectors that decide what it covers."""

    kind: str
    index: int  # 1-based, within its kind
    target: list[str]
    portal: list[str] | None = None
    initiator: list[str] | None = None
    exceptions: list[str] | None = field(default=None)

    @property
    def state_id(self) -> str:
        return f"iscsi-policy-{self.kind.replace('_', '-')}-{self.index}"

    @property
    def state_args(self) -> dict:
        """The arguments of the state that enforces this rule."""
        args = {"target_node_address": self.target}
        if self.portal is not None:
            args["target_portal"] = self.portal
        if self.initiator is not None:
            args["initiator_node_address"] = self.initiator
        if self.exceptions:
            args["exclude_target_node_address"] = self.exceptions
        return args

    def sessions(self) -> Selector:
        return Selector(**self.state_args)

    def logins(self) -> Selector:
        return login_selector(self.target, self.portal, self.exceptions)


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...] = ()

    @property
    def needs_connections(self) -> bool:
        return any(rule.portal for rule in self.rules)

    @classmethod
    def parse(cls, raw: object) -> Policy:
        """The policy from the pillar value at ``iscsi:policy``; PolicyError if malformed."""
        if raw is None or raw == {}:
            return cls()
        if not isinstance(raw, dict):
            raise PolicyError(
                f"pillar {PILLAR_KEY} must be a mapping (keys: "
                f"{', '.join(RULE_KINDS)}, exceptions), not: {_describe(raw)}"
            )
        unknown = set(raw) - {*RULE_KINDS, "exceptions"}
        if unknown:
            raise PolicyError(
                f"pillar {PILLAR_KEY} has unknown keys: {', '.join(sorted(map(str, unknown)))}"
                f" (known: {', '.join(RULE_KINDS)}, exceptions)"
            )
        exceptions = _globs(raw.get("exceptions"), f"{PILLAR_KEY}:exceptions")
        rules = []
        for kind in RULE_KINDS:
            items = raw.get(kind)
            if items is None:
                continue
            where = f"{PILLAR_KEY}:{kind}"
            if not isinstance(items, list):
                raise PolicyError(
                    f"pillar {where} must be a list of rules, not: {_describe(items)}"
                )
            for index, item in enumerate(items, start=1):
                rules.append(_rule(kind, index, item, exceptions, f"{where} item {index}"))
        return cls(tuple(rules))

    def violations(self, sessions: list[dict], logins: list[dict]) -> list[dict]:
        """What on the host breaks the policy: one entry per session or distinct login.

        A persistent session the rule selects is a violation; so is each persistent login
        it selects, unless a violating session of the same target already stands for it
        (its own login goes with it when it is unregistered).
        """
        found = []
        for rule in self.rules:
            sessions_of_rule = rule.sessions()
            covered = set()
            for session in sessions:
                if session.get("IsPersistent") and sessions_of_rule(session):
                    target = str(session.get("TargetNodeAddress"))
                    covered.add(target.lower())
                    found.append(
                        {
                            "rule": rule.state_id,
                            "kind": "session",
                            "target": target,
                            "session": session.get("SessionIdentifier"),
                        }
                    )
            logins_of_rule = rule.logins()
            seen: dict[tuple, dict] = {}
            for login in logins:
                target = str(login.get("TargetName"))
                if target.lower() in covered or not logins_of_rule.selects_login(login):
                    continue
                portal = f"{login.get('TargetPortalAddress')}:{login.get('TargetPortalPort')}"
                key = (target.lower(), portal.lower())
                if key in seen:
                    seen[key]["entries"] += 1
                    continue
                seen[key] = {
                    "rule": rule.state_id,
                    "kind": "persistent_login",
                    "target": target,
                    "portal": portal,
                    "entries": 1,
                }
                found.append(seen[key])
        return found


def _rule(kind: str, index: int, item: object, exceptions: list[str] | None, where: str) -> Rule:
    if not isinstance(item, dict) or "target" not in item:
        raise PolicyError(
            f"pillar {where} must be a mapping with 'target' and optionally "
            f"'portal', 'initiator'; got: {_describe(item)}"
        )
    unknown = set(item) - RULE_KEYS
    if unknown:
        raise PolicyError(
            f"pillar {where} has unknown keys {', '.join(sorted(map(str, unknown)))} "
            f"(known: target, portal, initiator); got: {_describe(item)}"
        )
    return Rule(
        kind=kind,
        index=index,
        target=_globs(item["target"], f"{where}:target"),
        portal=_globs(item.get("portal"), f"{where}:portal"),
        initiator=_globs(item.get("initiator"), f"{where}:initiator"),
        exceptions=exceptions,
    )
