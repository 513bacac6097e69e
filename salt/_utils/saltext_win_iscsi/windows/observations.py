"""What ``iscsi.diagnose observations=True`` adds on Windows: read-only observations in the
format the simulated host loads (``ISCSI_SIM_OBSERVATIONS``, format 1: ``windows``,
``behaviour``, ``facts``), so that any admin's host can settle the simulator's guesses.
Nothing is changed on the host to get them.
"""

from __future__ import annotations

from saltext_win_iscsi.windows.hostcall import HostCall

FORMAT = 1


def _value(facts: dict, name: str) -> object:
    """A fact's value, or ``{"error": ...}`` when it could not be read."""
    raw = facts.get(name) or {}
    return raw["value"] if "error" not in raw else {"error": raw["error"]}


def wmi_persistent_logins(logins: object) -> str | None:
    """The ``wmi_persistent_logins`` switch these counts settle, or None: WMI listing a
    target twice shows it lists ``each`` login; fewer instances than iscsicli's entries,
    ``one_per_target``."""
    if not isinstance(logins, dict) or "error" in logins:
        return None
    if logins["iscsicli_entries"] > logins["wmi_instances"]:
        return "one_per_target"
    if logins["wmi_instances"] > logins["wmi_distinct_targets"]:
        return "each"
    return None


def observe(host: HostCall) -> dict:
    """One ``observe`` request: the observations document."""
    facts = host.request("observe")["facts"]
    logins = _value(facts, "persistent_logins")
    windows = _value(facts, "windows")
    return {
        "format": FORMAT,
        "windows": windows if isinstance(windows, dict) and "error" not in windows else {},
        "behaviour": {"wmi_persistent_logins": wmi_persistent_logins(logins)},
        "facts": {
            "sessions": _value(facts, "sessions"),
            "persistent_logins": logins,
            "not_found_error": _value(facts, "not_found_error"),
        },
    }
