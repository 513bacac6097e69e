"""``iscsi.ready`` on Windows, in one host call: diagnose, one ``ready`` request with every
fix, diagnose again to verify."""

from __future__ import annotations

from saltext_win_iscsi import diagnosis
from saltext_win_iscsi.windows.hostcall import HostCall
from saltext_win_iscsi.windows.protocol import describe_windows_error

# What the main script's op ready can change, by item.
FIXABLE = {
    "service.state",
    "service.start_type",
    "mpio.msdsm_claim",
    "disk.timeout",
    "mpio.pdo_remove_period",
    *(f"timer.{name}" for name in diagnosis.WINDOWS_TIMERS),
}
TAKES_EFFECT = (
    "The initiator's timers take effect after a restart (or the initiator driver disabled "
    "and enabled again); the disk TimeOutValue and MSDSM's claim after a restart."
)


def items(host: HostCall) -> dict[str, dict]:
    return diagnosis.windows(host.request("diagnose")["facts"]).items


def ensure_ready(host: HostCall, wanted: dict, test: bool) -> dict:
    def fix(changes: dict) -> dict[str, str]:
        request: dict = {"timers": {}}
        for name, change in changes.items():
            if name == "service.start_type":
                request["start_type"] = True
            elif name == "service.state":
                request["start_service"] = True
            elif name == "mpio.msdsm_claim":
                request["msdsm_claim"] = True
            elif name == "disk.timeout":
                request["disk_timeout"] = change["new"]
            elif name == "mpio.pdo_remove_period":
                request["pdo_remove_period"] = change["new"]
            else:
                request["timers"][name.split(".", 1)[1]] = change["new"]
        results = host.request("ready", **request)["results"]
        host.done.extend(r["item"] for r in results if r.get("ok"))
        return {
            r["item"]: describe_windows_error(r.get("error") or {})
            for r in results
            if not r.get("ok")
        }

    before = diagnosis.breaches(items(host), wanted)
    outcome = diagnosis.settle(wanted, before, fix, lambda: items(host), FIXABLE, test)
    if outcome["changes"].keys() - {"service.state", "service.start_type"}:
        outcome["comments"].append(TAKES_EFFECT)
    return outcome
