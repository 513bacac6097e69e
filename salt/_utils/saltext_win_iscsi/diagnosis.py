"""What ``iscsi.diagnose`` answers: a host's readiness facts, each with a verdict.

A backend reads raw facts (Windows: one ``diagnose`` request to the fixed script; Linux:
files and ``systemctl``/``pidof``), each in its own try, so an unreadable fact is one
``unknown`` item that says why, never a failed call. This module turns the facts into
items ``{"value", "verdict", "why"}`` (verdict ``ok``, ``warn``, ``fail`` or ``unknown``;
``why`` for anything but ``ok``) and, given the policy's readiness rules, decides which
items break them.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

OK, WARN, FAIL, UNKNOWN = "ok", "warn", "fail", "unknown"
VERDICTS = (OK, WARN, FAIL, UNKNOWN)

# The Microsoft iSCSI initiator driver's timers (its device class key's instance
# Parameters), with their documented defaults in seconds: "Microsoft iSCSI Software
# Initiator and iSNS Server timers quick reference" (learn.microsoft.com, archive/blogs/san).
WINDOWS_TIMERS = {
    "LinkDownTime": 15,
    "MaxRequestHoldTime": 60,
    "SrbTimeoutDelta": 15,
    "TCPConnectTime": 15,
    "TCPDisconnectTime": 15,
    "WMIRequestTimeout": 30,
    "DelayBetweenReconnect": 1,
    "EnableNOPOut": 0,
}
# iscsid.conf settings diagnose shows, with what open-iscsi uses when the file has none
# (the values upstream's iscsid.conf documents as defaults).
ISCSID_CONF_DEFAULTS = {
    "node.startup": "manual",
    "node.session.timeo.replacement_timeout": "120",
    "node.conn[0].timeo.noop_out_interval": "5",
    "node.conn[0].timeo.noop_out_timeout": "5",
}


def item(value: Any, verdict: str = OK, why: str = "") -> dict:
    entry: dict[str, Any] = {"value": value, "verdict": verdict}
    if why:
        entry["why"] = why
    return entry


def unreadable(error: str) -> dict:
    return item(None, UNKNOWN, f"cannot be read: {error}")


@dataclass
class Diagnosis:
    """Items by name, in the order they were added."""

    platform: str
    items: dict[str, dict] = field(default_factory=dict)

    def add(self, name: str, entry: dict) -> None:
        self.items[name] = entry

    def fact(self, name: str, facts: dict, judge: Callable[[Any], dict]) -> None:
        """Item ``name`` from raw ``facts[name]`` (``{"value"}`` or ``{"error"}``)."""
        raw = facts.get(name)
        if not isinstance(raw, dict):
            self.add(name, item(None, UNKNOWN, "not reported"))
        elif raw.get("error") is not None:
            self.add(name, unreadable(_error_text(raw["error"])))
        else:
            self.add(name, judge(raw.get("value")))

    def result(self) -> dict:
        counts = {v: 0 for v in VERDICTS}
        for entry in self.items.values():
            counts[entry["verdict"]] += 1
        return {"platform": self.platform, "verdicts": counts, "items": self.items}


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        message = str(error.get("message") or "unknown error").strip()
        return f"{message} ({error['error_id']})" if error.get("error_id") else message
    return str(error)


# -- Windows ---------------------------------------------------------------------------


def _edition(value: Any) -> dict:
    if value == "Desktop":
        return item(value)
    return item(value, FAIL, "the script needs Windows PowerShell 5.1 (Desktop edition)")


def _version(value: Any) -> dict:
    parts = str(value or "").split(".")
    try:
        major_minor = (int(parts[0]), int(parts[1]) if len(parts) > 1 else 0)
    except ValueError:
        return item(value, UNKNOWN, "not a version number")
    if major_minor >= (5, 1):
        return item(value)
    return item(value, FAIL, "Windows PowerShell 5.1 or newer is needed")


def _language(value: Any) -> dict:
    if value == "FullLanguage":
        return item(value)
    return item(value, FAIL, "a WDAC/AppLocker lockdown: the script cannot run (docs/security.md)")


def _module(value: Any) -> dict:
    return item(value)


def _service_state(value: Any) -> dict:
    if value == "Running":
        return item(value)
    return item(value, FAIL, "the Microsoft iSCSI Initiator Service (MSiSCSI) is not running")


def _start_type(value: Any) -> dict:
    if value == "Auto":
        return item(value)
    if value == "Disabled":
        return item(value, FAIL, "MSiSCSI cannot start: no persistent login reconnects")
    return item(value, WARN, "MSiSCSI does not start at boot: persistent logins wait for it")


def _firewall(value: Any) -> dict:
    rules = value if isinstance(value, list) else []
    if not rules:
        return item(value, WARN, "no rule of the 'iSCSI Service' group found")
    off = [str(r.get("Name")) for r in rules if not r.get("Enabled")]
    if off:
        return item(value, WARN, f"disabled: {', '.join(off)} (needed for iSNS, not for logins)")
    return item(value)


def _feature(value: Any) -> dict:
    if value == "Installed":
        return item(value)
    return item(value, WARN, "Multipath-IO is not installed: sessions are single-path only")


def _claim(value: Any) -> dict:
    if isinstance(value, dict) and value.get("iSCSI") is True:
        return item(value)
    return item(
        value,
        WARN,
        "MSDSM does not claim iSCSI devices: a multipath login then shows a disk per path, "
        "which can cause data corruption (Enable-MSDSMAutomaticClaim -BusType iSCSI)",
    )


def _names(value: Any) -> dict:
    names = [str(n) for n in value] if isinstance(value, list) else []
    if names:
        return item(names)
    return item(names, FAIL, "no iSCSI initiator node name")


# What applies where a registry value is not set: the timers' documented defaults; the
# disk TimeOutValue and MPIO's PDORemovePeriod as vendors' tables give them (GUESS:
# tests/windows records a real host's values).
UNSET_DEFAULTS = {
    **{f"timer.{name}": default for name, default in WINDOWS_TIMERS.items()},
    "disk.timeout": 60,
    "mpio.pdo_remove_period": 20,
}


def _dword(default: int) -> Callable[[Any], dict]:
    def judge(value: Any) -> dict:
        if value is None:
            return item(None, OK, f"not set: the default {default} applies")
        return item(value)

    return judge


def _plain(value: Any) -> dict:
    return item(value)


WINDOWS_FACTS: tuple[tuple[str, Callable[[Any], dict]], ...] = (
    ("powershell.edition", _edition),
    ("powershell.version", _version),
    ("powershell.language_mode", _language),
    ("iscsi.module", _module),
    ("service.state", _service_state),
    ("service.start_type", _start_type),
    ("firewall.iscsi_service", _firewall),
    ("mpio.feature", _feature),
    ("mpio.msdsm_claim", _claim),
    ("mpio.load_balance_policy", _plain),
    ("initiator.names", _names),
    *((name, _dword(default)) for name, default in UNSET_DEFAULTS.items()),
)


def windows(facts: dict) -> Diagnosis:
    """Items from the script's ``diagnose`` answer (``facts``: name -> value or error)."""
    diagnosis = Diagnosis("windows")
    for name, judge in WINDOWS_FACTS:
        diagnosis.fact(name, facts, judge)
    return diagnosis


def windows_unreachable(why: str, language_mode: str | None = None) -> Diagnosis:
    """When the script could not run at all: the language mode if that was why, and
    every other item unknown with the reason."""
    diagnosis = Diagnosis("windows")
    for name, _judge in WINDOWS_FACTS:
        if name == "powershell.language_mode" and language_mode is not None:
            diagnosis.add(name, _language(language_mode))
        else:
            diagnosis.add(name, item(None, UNKNOWN, why))
    return diagnosis


# -- Linux -----------------------------------------------------------------------------


def _running(value: Any) -> dict:
    if isinstance(value, dict) and value.get("running"):
        return item(value)
    return item(value, FAIL, "iscsid is not running and its socket is not listening")


def _enabled(value: Any) -> dict:
    units = value if isinstance(value, dict) else {}
    if any(state == "enabled" for state in units.values()):
        return item(value)
    if units and all(state is None for state in units.values()):
        return item(value, UNKNOWN, "systemctl does not answer here (no systemd, a chroot)")
    return item(value, WARN, "neither iscsid.service nor iscsid.socket is enabled")


def _multipathd(value: Any) -> dict:
    if isinstance(value, dict) and value.get("running"):
        return item(value)
    return item(value, WARN, "multipathd is not running: sessions are single-path only")


def _linux_name(value: Any) -> dict:
    if value:
        return item([value])
    return item([], FAIL, "no InitiatorName in the initiator name file")


def _conf(value: Any) -> dict:
    if isinstance(value, dict) and value.get("source") == "built-in":
        return item(value["value"], OK, "not set in iscsid.conf: open-iscsi's default")
    return item(value.get("value") if isinstance(value, dict) else value)


LINUX_FACTS: tuple[tuple[str, Callable[[Any], dict]], ...] = (
    ("iscsid.running", _running),
    ("iscsid.enabled", _enabled),
    ("initiator.names", _linux_name),
    *((f"iscsid_conf.{key}", _conf) for key in ISCSID_CONF_DEFAULTS),
    ("multipathd.running", _multipathd),
)


def linux(facts: dict) -> Diagnosis:
    diagnosis = Diagnosis("open-iscsi")
    for name, judge in LINUX_FACTS:
        diagnosis.fact(name, facts, judge)
    return diagnosis


# -- readiness rules against items -----------------------------------------------------


def _holds(name: str, wanted: Any, entry: dict) -> bool:
    """``wanted`` True: the item's verdict is ok; a glob for the initiator's names; else
    the (effective) value."""
    if wanted is True:
        return entry["verdict"] == OK
    value = effective(name, entry)
    if name == "initiator.names":
        return bool(value) and all(fnmatch.fnmatchcase(str(v), str(wanted)) for v in value)
    return str(value) == str(wanted)


def effective(name: str, entry: dict) -> Any:
    """An item's value as a rule compares it: an unset registry value has its default."""
    value = entry.get("value")
    return UNSET_DEFAULTS.get(name) if value is None else value


def breaches(items: dict[str, dict], wanted: dict[str, Any]) -> list[dict]:
    """``[{"item", "wanted", "value", "problem"}]`` for each wanted item not as wanted; an
    item the host does not have (another platform's) is skipped, one that could not be read
    is a breach (it cannot be shown to hold)."""
    found = []
    for name, want in wanted.items():
        entry = items.get(name)
        if entry is None or _holds(name, want, entry):
            continue
        if entry["verdict"] == UNKNOWN and entry.get("value") is None:
            problem = f"{name}: {entry.get('why', 'unknown')}"
        elif want is True:
            problem = f"{name} is {entry.get('value')!r}: {entry.get('why', entry['verdict'])}"
        elif name == "initiator.names":
            problem = f"{name} {entry.get('value')!r} do not all match {want!r}"
        else:
            problem = f"{name} is {effective(name, entry)!r}, not {want!r}"
        found.append(
            {"item": name, "wanted": want, "value": entry.get("value"), "problem": problem}
        )
    return found


# -- enforcing the rules (``iscsi.ready``) ---------------------------------------------

# Fixed by nobody: renaming the initiator changes every target's ACL match.
NOT_FIXED = {
    "initiator.names": "the initiator's name is not changed by this state: rename it by hand "
    "(iscsicli NodeName, /etc/iscsi/initiatorname.iscsi) and update the targets' ACLs",
}


def plan(breached: list[dict], fixable: set[str]) -> tuple[dict, list[str]]:
    """``(changes, errors)``: a change ``{"old", "new"}`` per breach a backend can fix
    (``fixable``: item names), an error for each one it cannot."""
    changes: dict[str, dict] = {}
    errors = []
    for breach in breached:
        name = breach["item"]
        if name in fixable:
            new = "ok" if breach["wanted"] is True else breach["wanted"]
            changes[name] = {"old": breach["value"], "new": new}
        else:
            errors.append(NOT_FIXED.get(name, f"{breach['problem']}: not fixed on this platform"))
    return changes, errors


def settle(
    wanted: dict[str, Any],
    before: list[dict],
    fix: Callable[[dict], dict[str, str]],
    after: Callable[[], dict[str, dict]],
    fixable: set[str],
    test: bool,
) -> dict:
    """The ``iscsi.ready`` outcome: what breaks the rules (``before``), fixed with one call
    of ``fix(changes)`` (item -> its error), verified with ``after()`` (the items again)."""
    changes, errors = plan(before, fixable)
    comments = []
    if not before:
        comments.append("The host is ready: every readiness rule holds.")
    elif test:
        comments += [
            f"Would fix {name}: {c['old']!r} -> {c['new']!r}." for name, c in changes.items()
        ]
    elif changes:
        failed = fix(changes)
        still = {b["item"]: b["problem"] for b in breaches(after(), wanted)}
        for name in list(changes):
            if name in failed:
                errors.append(f"{name}: {failed[name]}")
            elif name in still:
                errors.append(f"after the change, {still[name]}")
            else:
                continue
            changes.pop(name)
        if changes:
            comments.append(f"Fixed: {', '.join(changes)}.")
    if errors:
        comments.insert(0, "Failed: " + "; ".join(errors) + ".")
    return {"changes": changes, "comments": comments, "errors": errors}
