"""The iSCSI policy from pillar (``iscsi:policy``): parsed once, used everywhere.

The formula turns the rules into states, the beacon and ``iscsi.check_policy`` evaluate
them against what the host reports, the fleet report lists their violations: all through
this one parser and the same selectors, so they cannot disagree about what a rule means.

.. code-block:: yaml

    iscsi:
      policy:
        connected:                   # targets that must be connected (and how)
          - target: 'iqn.1991-05.com.contoso:db-01'
            portals: ['10.0.1.5', '10.0.2.5']   # one session per path
            persistent: True
            multipath: True          # refused where MPIO does not claim iSCSI disks, unless
            allow_unclaimed_multipath: False  # True: connect with MPIO all the same
            authentication: one-way  # none | one-way | mutual
            chap_username: host1
            chap_secret: sdb://vault/iscsi/db-01
        not_persistent:              # sessions to these targets must not reconnect at boot
          - target: 'iqn.1991-05.com.contoso:backup-*'
            portal: '10.0.9.*'       # optional: narrows the rule
            initiator: '*:host-1'    # optional: narrows the rule (sessions only)
        absent:                      # targets that must be gone, for good
          - target: 'iqn.1991-05.com.contoso:old-*'
            force: False             # True: even with a boot/system/clustered disk or online volume
        exceptions:                  # optional: targets the not_persistent rules leave alone
          - 'iqn.1991-05.com.contoso:backup-keep'
        defaults:                    # Linux (open-iscsi): settings of new node records
          node_startup: manual       # a rediscovery must not make targets persistent again
        readiness:                   # the host itself (iscsi.diagnose's items), iscsi.ready
          service: True              # MSiSCSI / iscsid running and starting at boot
          mpio_claims_iscsi: True    # Windows: MSDSM claims iSCSI devices
          timers: {LinkDownTime: 35, MaxRequestHoldTime: 90}  # Windows initiator timers
          disk_timeout: 60           # Windows: the disk TimeOutValue
          pdo_remove_period: 90      # Windows: MPIO's PDORemovePeriod
          initiator_name: 'iqn.1991-05.com.contoso:*'   # a glob; checked, never changed
          iscsid_conf:               # Linux: iscsid.conf values
            node.session.timeo.replacement_timeout: 120

Rules that contradict each other (a target both connected and matched by a
``not_persistent`` or ``absent`` rule) are an error naming both, before anything changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import salt.utils.data

from saltext_win_iscsi import diagnosis
from saltext_win_iscsi.errors import IscsiInputError
from saltext_win_iscsi.model import Portal, authentication, login_portal, session_portals
from saltext_win_iscsi.selection import Selector, as_list, glob, login_selector
from saltext_win_iscsi.spec import TargetSpec, missing_paths, path_problems

try:  # Salt 3008 wraps pillar in MaskedDict/MaskedList: plain values, masked repr
    from salt.utils.secret import expose
except ImportError:  # Salt 3007

    def expose(value):
        return value


PILLAR_KEY = "iscsi:policy"
# Order matters: the formula connects first, then enforces persistence, then removes.
RULE_KINDS = ("connected", "not_persistent", "absent")
RULE_KEYS = {
    "connected": {
        "target",
        "portals",
        "persistent",
        "multipath",
        "authentication",
        "chap_username",
        "chap_secret",
        "initiator_chap_secret",
        "allow_unclaimed_multipath",
    },
    "not_persistent": {"target", "portal", "initiator"},
    "absent": {"target", "force"},
}


class PolicyError(IscsiInputError):
    """The pillar policy is malformed; the message names the pillar key."""


def _describe(value: object) -> str:
    """A rule for an error message; secrets are not repeated."""
    if isinstance(value, dict):
        value = {k: ("********" if "secret" in str(k) else v) for k, v in value.items()}
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def _globs(value: object, where: str) -> list[str] | None:
    try:
        return as_list(value, where)
    except IscsiInputError as exc:
        raise PolicyError(f"pillar {where} must be a glob or a list of globs ({exc})") from None


def _flag(item: dict, key: str, default: bool, where: str) -> bool:
    value = item.get(key, default)
    if not isinstance(value, bool):
        raise PolicyError(f"pillar {where}:{key} must be True or False, not {_describe(value)}")
    return value


@dataclass(frozen=True)
class Rule:
    """One rule of the policy, with the selectors that decide what it covers."""

    kind: str
    index: int  # 1-based, within its kind
    target: list[str]
    portal: list[str] | None = None
    initiator: list[str] | None = None
    exceptions: list[str] | None = None
    options: dict = field(default_factory=dict)  # connected: how; absent: force

    @property
    def where(self) -> str:
        return f"{PILLAR_KEY}:{self.kind} item {self.index}"

    @property
    def state_id(self) -> str:
        return f"iscsi-policy-{self.kind.replace('_', '-')}-{self.index}"

    @property
    def state_args(self) -> dict:
        """The arguments of the state that enforces this rule."""
        if self.kind != "not_persistent":
            return {"name": self.target[0], **self.options}
        args = {"target_node_address": self.target}
        if self.portal is not None:
            args["target_portal"] = self.portal
        if self.initiator is not None:
            args["initiator_node_address"] = self.initiator
        if self.exceptions:
            args["exclude_target_node_address"] = self.exceptions
        return args

    def sessions(self) -> Selector:
        if self.kind == "not_persistent":
            return Selector(**self.state_args)
        return Selector(target_node_address=self.target)

    def logins(self) -> Selector:
        return login_selector(self.target, self.portal, self.exceptions)

    def spec(self) -> TargetSpec:
        """A connected rule as the desired state (secrets are not needed to compare)."""
        return TargetSpec(
            node_address=self.target[0],
            portals=tuple(Portal.parse(p) for p in self.options.get("portals") or ()),
            persistent=self.options.get("persistent", True),
            multipath=self.options.get("multipath", False),
            authentication=authentication(self.options.get("authentication")) or "NONE",
            chap_username=self.options.get("chap_username"),
        )


DEFAULTS_KEY = "defaults"
# The initiator's defaults for new node records (open-iscsi's iscsid.conf), by pillar key.
DEFAULT_SETTINGS = {"node_startup": ("manual", "automatic")}
DEFAULTS_STATE = "iscsi-policy-defaults"


def _defaults(raw: object) -> dict[str, str]:
    where = f"{PILLAR_KEY}:{DEFAULTS_KEY}"
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PolicyError(f"pillar {where} must be a mapping, not: {_describe(raw)}")
    unknown = set(raw) - set(DEFAULT_SETTINGS)
    if unknown:
        raise PolicyError(
            f"pillar {where} has unknown keys {', '.join(sorted(map(str, unknown)))} "
            f"(known: {', '.join(DEFAULT_SETTINGS)})"
        )
    for key, value in raw.items():
        if value not in DEFAULT_SETTINGS[key]:
            raise PolicyError(
                f"pillar {where}:{key} must be one of {', '.join(DEFAULT_SETTINGS[key])}, "
                f"not {_describe(value)}"
            )
    return dict(raw)


READINESS_KEY = "readiness"
READINESS_STATE = "iscsi-policy-readiness"
# Rules that want an item's verdict ok, by pillar key: the diagnose items they stand for.
READINESS_FLAGS = {
    "service": ("service.state", "service.start_type", "iscsid.running", "iscsid.enabled"),
    "mpio_claims_iscsi": ("mpio.msdsm_claim",),
}
# Rules that want an item's value, by pillar key (the timers and iscsid_conf by name).
READINESS_NUMBERS = {"disk_timeout": "disk.timeout", "pdo_remove_period": "mpio.pdo_remove_period"}
READINESS_KEYS = (*READINESS_FLAGS, "timers", *READINESS_NUMBERS, "initiator_name", "iscsid_conf")
# node.startup of new records is iscsi:policy:defaults' (one rule for one fact).
READINESS_CONF_KEYS = tuple(k for k in diagnosis.ISCSID_CONF_DEFAULTS if k != "node.startup")


def _seconds(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
        raise PolicyError(
            f"pillar {where} must be a whole number of seconds, not {_describe(value)}"
        )
    return value


def readiness_wanted(raw: object) -> dict:
    """``iscsi:policy:readiness`` (checked; PolicyError names the key) as diagnose item
    name -> wanted: True (the item's verdict must be ok), a value, or a glob
    (``initiator.names``)."""
    where = f"{PILLAR_KEY}:{READINESS_KEY}"
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PolicyError(f"pillar {where} must be a mapping, not: {_describe(raw)}")
    unknown = set(raw) - set(READINESS_KEYS)
    if unknown:
        raise PolicyError(
            f"pillar {where} has unknown keys {', '.join(sorted(map(str, unknown)))} "
            f"(known: {', '.join(READINESS_KEYS)})"
        )
    wanted: dict = {}
    for key, items in READINESS_FLAGS.items():
        if _flag(raw, key, False, where):
            wanted.update(dict.fromkeys(items, True))
    timers = raw.get("timers") or {}
    if not isinstance(timers, dict):
        raise PolicyError(f"pillar {where}:timers must be a mapping of timer name to seconds")
    for name, value in timers.items():
        if name not in diagnosis.WINDOWS_TIMERS:
            raise PolicyError(
                f"pillar {where}:timers has unknown timer {_describe(name)} "
                f"(known: {', '.join(diagnosis.WINDOWS_TIMERS)})"
            )
        wanted[f"timer.{name}"] = _seconds(value, f"{where}:timers:{name}")
    for key, item in READINESS_NUMBERS.items():
        if raw.get(key) is not None:
            wanted[item] = _seconds(raw[key], f"{where}:{key}")
    name = raw.get("initiator_name")
    if name is not None:
        if not isinstance(name, str) or not name.strip():
            raise PolicyError(
                f"pillar {where}:initiator_name must be a glob, not {_describe(name)}"
            )
        wanted["initiator.names"] = name
    conf = raw.get("iscsid_conf") or {}
    if not isinstance(conf, dict):
        raise PolicyError(f"pillar {where}:iscsid_conf must be a mapping of setting to value")
    for key, value in conf.items():
        if key not in READINESS_CONF_KEYS:
            hint = (
                " (node.startup: iscsi:policy:defaults:node_startup)"
                if key == "node.startup"
                else ""
            )
            raise PolicyError(
                f"pillar {where}:iscsid_conf has unknown setting {_describe(key)}{hint} "
                f"(known: {', '.join(READINESS_CONF_KEYS)})"
            )
        if isinstance(value, bool) or not isinstance(value, (int, str)) or str(value).strip() == "":
            raise PolicyError(f"pillar {where}:iscsid_conf:{key} must be a number or a word")
        wanted[f"iscsid_conf.{key}"] = str(value)
    return wanted


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...] = ()
    # The initiator's defaults for new records (``defaults``); applies where the host has
    # such defaults (open-iscsi), a no-op elsewhere.
    defaults: dict[str, str] = field(default_factory=dict)
    # The host's readiness rules (``readiness``, as in pillar): what ``iscsi.ready`` takes.
    readiness: dict = field(default_factory=dict)

    @property
    def readiness_items(self) -> dict:
        """The readiness rules as diagnose item name -> what is wanted."""
        return readiness_wanted(self.readiness)

    @property
    def rule_count(self) -> int:
        return len(self.rules) + bool(self.defaults) + bool(self.readiness)

    def check(
        self,
        sessions: list[dict],
        logins: list[dict],
        defaults: dict | None,
        readiness: dict | None = None,
    ) -> dict:
        """What ``iscsi.check_policy`` returns for what a host reported (``readiness``:
        diagnose's items, where the policy has readiness rules)."""
        violations = self.violations(sessions, logins, defaults, readiness)
        return {
            "compliant": not violations,
            "rules": self.rule_count,
            "violations": violations,
            "risks": self.risks(defaults),
            # The initiator names the sessions go out as: the fleet report flags names
            # several minions share (cloned hosts break the targets' ACLs).
            "initiators": sorted(
                {str(s["InitiatorNodeAddress"]) for s in sessions if s.get("InitiatorNodeAddress")}
            ),
        }

    @property
    def needs_sessions(self) -> bool:
        """Whether sessions as such matter, not only what reconnects at boot."""
        return any(rule.kind in ("connected", "absent") for rule in self.rules)

    @property
    def needs_connections(self) -> bool:
        """Whether sessions are read with their connections: every rule needs them, to
        match portals or to name the portal of a session it reports."""
        return bool(self.rules)

    def of_kind(self, kind: str) -> list[Rule]:
        return [rule for rule in self.rules if rule.kind == kind]

    @classmethod
    def from_pillar(cls, pillar: dict) -> Policy:
        """The policy in a minion's pillar. Read from the pillar itself: Salt 3008's
        ``pillar.get`` masks values outside templates (every string is ``**********``)."""
        return cls.parse(expose(salt.utils.data.traverse_dict_and_list(pillar, PILLAR_KEY, {})))

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
        known = (*RULE_KINDS, "exceptions", DEFAULTS_KEY, READINESS_KEY)
        unknown = set(raw) - set(known)
        if unknown:
            raise PolicyError(
                f"pillar {PILLAR_KEY} has unknown keys: {', '.join(sorted(map(str, unknown)))}"
                f" (known: {', '.join(known)})"
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
        readiness = raw.get(READINESS_KEY) or {}
        readiness_wanted(readiness)  # checked before anything uses it
        policy = cls(tuple(rules), _defaults(raw.get(DEFAULTS_KEY)), dict(readiness))
        policy._check_contradictions()
        return policy

    def _check_contradictions(self) -> None:
        for wanted in self.of_kind("connected"):
            target = wanted.target[0]
            probe = {"TargetNodeAddress": target, "Connections": []}
            for other in self.rules:
                if other.kind == "absent" and any(glob(g).fullmatch(target) for g in other.target):
                    clash = "removes it"
                elif (
                    other.kind == "not_persistent"
                    and wanted.options.get("persistent", True)
                    and other.portal is None
                    and other.initiator is None
                    and other.sessions()(probe)
                ):
                    clash = "forbids its persistence"
                else:
                    continue
                raise PolicyError(
                    f"pillar {wanted.where} connects {target} persistently or keeps it, but "
                    f"{other.where} {clash}: the rules contradict each other"
                )

    def _default_violations(self, defaults: dict) -> list[dict]:
        return [
            {
                "rule": DEFAULTS_STATE,
                "kind": "default",
                "target": "",
                "problem": f"new node records get {key} = {defaults[key]}, not {wanted}",
            }
            for key, wanted in self.defaults.items()
            if key in defaults and defaults[key] != wanted
        ]

    def readiness_violations(self, items: dict | None) -> list[dict]:
        if not self.readiness or items is None:
            return []
        return [
            {"rule": READINESS_STATE, "kind": "readiness", "target": "", **breach}
            for breach in diagnosis.breaches(items, self.readiness_items)
        ]

    def unchecked(self, items: dict | None, why: str) -> dict:
        """``check``'s answer when the host's sessions could not be read but its readiness
        could: its readiness violations, and why the rest is unknown."""
        return {
            "compliant": False,
            "rules": self.rule_count,
            "violations": self.readiness_violations(items),
            "risks": [],
            "unchecked": why,
        }

    def risks(self, defaults: dict | None) -> list[dict]:
        """What may break the policy later without breaking it now: new records (a
        rediscovery) getting node.startup automatic while rules forbid persistence."""
        if "node_startup" in self.defaults or not self.of_kind("not_persistent"):
            return []
        if (defaults or {}).get("node_startup") != "automatic":
            return []
        return [
            {
                "kind": "default",
                "detail": "new node records get node.startup = automatic (iscsid.conf): a "
                "rediscovery makes the targets the not_persistent rules forbid persistent "
                "again; set iscsi:policy:defaults:node_startup: manual",
            }
        ]

    def states(self) -> list[dict]:
        """The states the formula renders, in order: ``{"id", "function", "args"}``."""
        # Portals of connected targets stay when an absent target used them too.
        keep = [
            p if isinstance(p, str) else p["address"]
            for rule in self.of_kind("connected")
            for p in rule.options.get("portals") or ()
        ]
        states = []
        if self.defaults:  # first: what the other rules change must not be undone by it
            states.append(
                {
                    "id": DEFAULTS_STATE,
                    "function": "iscsi.initiator_defaults",
                    "args": self.defaults,
                }
            )
        if self.readiness:  # the host before its sessions
            states.append(
                {
                    "id": READINESS_STATE,
                    "function": "iscsi.ready",
                    "args": dict(self.readiness),
                }
            )
        for rule in self.rules:
            args = dict(rule.state_args)
            if rule.kind == "absent" and keep:
                args["keep_portals"] = keep
            states.append({"id": rule.state_id, "function": f"iscsi.{rule.kind}", "args": args})
        return states

    def violations(
        self,
        sessions: list[dict],
        logins: list[dict],
        defaults: dict | None = None,
        readiness: dict | None = None,
    ) -> list[dict]:
        """What on the host breaks the policy: one entry per session, login, path,
        default or readiness item. ``defaults``: the host's defaults for new records (None
        where it has none); ``readiness``: diagnose's items (None: not read)."""
        found = self._default_violations(defaults or {})
        found += self.readiness_violations(readiness)
        for rule in self.rules:
            if rule.kind == "connected":
                found += _connected(rule, sessions, logins)
            else:
                found += _forbidden(rule, sessions, logins)
        return found


def _connected(rule: Rule, sessions: list[dict], logins: list[dict]) -> list[dict]:
    """A connected rule: a ``path`` violation per wanted portal without a live session
    (naming it), then a ``connection`` violation per other difference (persistence, MPIO
    flag, authentication; "not connected" where the rule names no portals)."""
    spec = rule.spec()
    missing = missing_paths(spec, sessions)
    live = len(spec.portals) - len(missing)
    found = [
        {
            "rule": rule.state_id,
            "kind": "path",
            "target": spec.node_address,
            "portal": portal.label,
            "problem": f"{live} of {len(spec.portals)} paths live: none via {portal.label}",
        }
        for portal in missing
    ]
    if missing and not live:
        return found  # nothing else can be judged on paths that are not there
    present = replace(spec, portals=tuple(p for p in spec.portals if p not in missing))
    found += [
        {"rule": rule.state_id, "kind": "connection", "target": spec.node_address, "problem": p}
        for p in path_problems(present, sessions, logins)
    ]
    return found


def _forbidden(rule: Rule, sessions: list[dict], logins: list[dict]) -> list[dict]:
    """not_persistent: persistent sessions and logins the rule selects; absent: any session
    or login. A login is not listed again when a listed session of its target stands for
    it (its own login goes with the session)."""
    found = []
    select = rule.sessions()
    covered = set()
    for session in sessions:
        if (rule.kind == "absent" or session.get("IsPersistent")) and select(session):
            target = str(session.get("TargetNodeAddress"))
            covered.add(target.lower())
            found.append(
                {
                    "rule": rule.state_id,
                    "kind": "session",
                    "target": target,
                    "session": session.get("SessionIdentifier"),
                    "portal": session_portals(session),
                }
            )
    logins_of_rule = rule.logins()
    seen: dict[tuple, dict] = {}
    for login in logins:
        target = str(login.get("TargetName"))
        if target.lower() in covered or not logins_of_rule.selects_login(login):
            continue
        portal = login_portal(login)
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
    keys = RULE_KEYS[kind]
    if not isinstance(item, dict) or "target" not in item:
        raise PolicyError(
            f"pillar {where} must be a mapping with 'target' and optionally "
            f"{', '.join(repr(k) for k in sorted(keys - {'target'}))}; got: {_describe(item)}"
        )
    unknown = set(item) - keys
    if unknown:
        raise PolicyError(
            f"pillar {where} has unknown keys {', '.join(sorted(map(str, unknown)))} "
            f"(known: {', '.join(sorted(keys))}); got: {_describe(item)}"
        )
    target = _globs(item["target"], f"{where}:target")
    if not target:
        raise PolicyError(f"pillar {where}:target must be a glob or a list of globs")
    if kind == "not_persistent":
        return Rule(
            kind=kind,
            index=index,
            target=target,
            portal=_globs(item.get("portal"), f"{where}:portal"),
            initiator=_globs(item.get("initiator"), f"{where}:initiator"),
            exceptions=exceptions,
        )
    if kind == "absent":
        return Rule(kind, index, target, options={"force": _flag(item, "force", False, where)})
    if len(target) != 1 or "*" in target[0] or "?" in target[0]:
        raise PolicyError(f"pillar {where}:target must be one target IQN, not a glob or a list")
    return Rule(kind, index, target, options=_connected_options(item, where))


def _connected_options(item: dict, where: str) -> dict:
    options: dict[str, object] = {
        "persistent": _flag(item, "persistent", True, where),
        "multipath": _flag(item, "multipath", False, where),
    }
    if item.get("allow_unclaimed_multipath") is not None:
        options["allow_unclaimed_multipath"] = _flag(
            item, "allow_unclaimed_multipath", False, where
        )
    portals = item.get("portals")
    if portals is not None:
        if isinstance(portals, (str, dict)):
            portals = [portals]
        if not isinstance(portals, list):
            raise PolicyError(f"pillar {where}:portals must be a list of portals")
        try:
            parsed = [Portal.parse(p) for p in portals]
        except IscsiInputError as exc:
            raise PolicyError(f"pillar {where}:portals: {exc}") from None
        options["portals"] = [
            {
                "address": p.address,
                "port": p.port,
                "initiator_portal_address": p.initiator_portal_address,
            }
            if p.initiator_portal_address
            else p.label
            for p in parsed
        ]
    try:
        auth = authentication(item.get("authentication"))
    except IscsiInputError as exc:
        raise PolicyError(f"pillar {where}:{exc}") from None
    if auth is not None:
        options["authentication"] = item["authentication"]
    for key in ("chap_username", "chap_secret", "initiator_chap_secret"):
        if item.get(key) is not None:
            if not isinstance(item[key], str):
                raise PolicyError(f"pillar {where}:{key} must be a string")
            options[key] = item[key]
    return options
