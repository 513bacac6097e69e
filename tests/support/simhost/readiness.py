"""The host's readiness on the simulated Windows host (test code): what the main script's
``diagnose`` and ``ready`` ops read and write.

Modelled facts and their sources (GUESS where no source says it):

- the MSiSCSI service: running unless the fault ``service_stopped`` is set (the model's
  one fact for it, which every cmdlet also obeys); its start type ``Auto`` on a host in use
  (Microsoft's iSCSI initiator documentation: the service is not running until first
  started, and starting it from the control panel makes it start automatically; GUESS that
  it is ``Manual`` until then). ``Start-Service`` on a ``Disabled`` service fails as
  PowerShell's ``Start-Service`` does (CouldNotStartService);
- the "iSCSI Service" firewall group: two rules, inbound and outbound (GUESS: the names
  ``MsiScsi-In-TCP``/``MsiScsi-Out-TCP`` of Windows Server's built-in rules), enabled;
- the Multipath-IO feature (``Get-WindowsFeature``): not installed; without it the MPIO
  PowerShell module and MPIO's registry key do not exist;
- MSDSM's automatic claim (``Get-MSDSMAutomaticClaimSettings``: a hashtable of bus type to
  claimed, GUESS of its shape) off for iSCSI and SAS, as a new MPIO install has it (its
  documentation); the global load-balance policy ``None`` (not set: MSDSM's default);
- registry values: the initiator driver's timers present with their documented defaults
  (GUESS that they are written at install rather than absent), the disk class driver's
  TimeOutValue 60 (GUESS), MPIO's PDORemovePeriod 20 once the feature is installed (GUESS);
- fault ``unreadable_facts``: fact names whose read fails with Access denied;
- ``observe`` (read-only observations): the host's Windows version (GUESS: Server 2022,
  build 20348.2762) and iscsicli's ListPersistentTargets, one entry per persistent login
  whatever WMI lists (``behaviour.wmi_persistent_logins``).

Drift with ``set_readiness(...)`` / ``set_registry(...)`` / ``set_fault(...)``.
"""

from __future__ import annotations

import copy
from typing import Any

ADAPTER_KEY = (
    "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Class\\"
    "{4D36E97B-E325-11CE-BFC1-08002BE10318}\\0001\\Parameters"
)
DISK_KEY = "HKLM:\\SYSTEM\\CurrentControlSet\\Services\\Disk"
MPIO_KEY = "HKLM:\\SYSTEM\\CurrentControlSet\\Services\\mpio\\Parameters"
# The main script's $TimerNames.
TIMERS = {
    "LinkDownTime": 15,
    "MaxRequestHoldTime": 60,
    "SrbTimeoutDelta": 15,
    "TCPConnectTime": 15,
    "TCPDisconnectTime": 15,
    "WMIRequestTimeout": 30,
    "DelayBetweenReconnect": 1,
    "EnableNOPOut": 0,
}


def empty_readiness() -> dict:
    return {
        "powershell_version": "5.1.20348.2849",
        "msiscsi_start_mode": "Auto",
        "firewall_iscsi_service": [
            {"Name": "MsiScsi-In-TCP", "Enabled": True, "Direction": "Inbound"},
            {"Name": "MsiScsi-Out-TCP", "Enabled": True, "Direction": "Outbound"},
        ],
        "mpio_feature": "Available",
        "msdsm_claim": {"iSCSI": False, "SAS": False},
        "msdsm_load_balance_policy": "None",
        "registry": {ADAPTER_KEY: dict(TIMERS), DISK_KEY: {"TimeOutValue": 60}, MPIO_KEY: {}},
    }


class ReadinessMixin:
    """``diagnose`` and ``ready`` for SimulatedHost (which provides edit/_error/...)."""

    # -- set-up helpers --------------------------------------------------------------------

    def set_readiness(self, **facts: Any) -> None:
        """Change modelled facts (keys of ``empty_readiness``)."""
        with self.edit() as state:  # type: ignore[attr-defined]
            ready = state["readiness"]
            for name, value in facts.items():
                if name not in ready:
                    raise KeyError(f"unknown readiness fact {name!r}; known: {sorted(ready)}")
                ready[name] = copy.deepcopy(value)
                if name == "mpio_feature" and value == "Installed":
                    ready["registry"][MPIO_KEY].setdefault("PDORemovePeriod", 20)

    def set_registry(self, key: str, name: str, value: int | None) -> None:
        """Set (or with None remove) a registry value, as an admin's regedit would."""
        with self.edit() as state:  # type: ignore[attr-defined]
            values = state["readiness"]["registry"].setdefault(key, {})
            if value is None:
                values.pop(name, None)
            else:
                values[name] = value

    # -- the ops ---------------------------------------------------------------------------

    def _diagnose(self, state: dict) -> dict:
        ready = state["readiness"]
        faults = state["faults"]
        edition = faults["edition"]
        mpio = ready["mpio_feature"] == "Installed"
        facts: dict[str, dict] = {}

        def fact(name: str, read) -> None:
            try:
                if name in faults.get("unreadable_facts", []):
                    raise self._error(  # type: ignore[attr-defined]
                        "Access denied", "PermissionDenied", f"Windows System Error 5,{name}"
                    )
                facts[name] = {"value": read()}
            except self.WindowsError as err:  # type: ignore[attr-defined]
                facts[name] = {"error": err.record}

        def module(name: str) -> None:
            if (name == "iSCSI" and faults["iscsi_module_missing"]) or (
                name == "MPIO" and not mpio
            ):
                raise self._module_missing(name)  # type: ignore[attr-defined]

        fact("powershell.edition", lambda: edition)
        fact(
            "powershell.version",
            lambda: "7.4.6" if edition == "Core" else ready["powershell_version"],
        )
        fact("powershell.language_mode", lambda: faults["language_mode"])
        fact("iscsi.module", lambda: module("iSCSI") or "1.0.0.0")
        fact("service.state", lambda: "Stopped" if faults["service_stopped"] else "Running")
        fact("service.start_type", lambda: ready["msiscsi_start_mode"])
        fact("firewall.iscsi_service", lambda: copy.deepcopy(ready["firewall_iscsi_service"]))
        fact("mpio.feature", lambda: ready["mpio_feature"])
        fact("mpio.msdsm_claim", lambda: module("MPIO") or dict(ready["msdsm_claim"]))
        fact(
            "mpio.load_balance_policy",
            lambda: module("MPIO") or ready["msdsm_load_balance_policy"],
        )
        fact("initiator.names", lambda: [state["initiator"]["node_address"]])
        for timer in TIMERS:
            fact(f"timer.{timer}", lambda t=timer: self._registry(state, ADAPTER_KEY, t))
        fact("disk.timeout", lambda: self._registry(state, DISK_KEY, "TimeOutValue"))
        fact("mpio.pdo_remove_period", lambda: self._registry(state, MPIO_KEY, "PDORemovePeriod"))
        return {"facts": facts}

    def _observe(self, state: dict) -> dict:
        facts: dict[str, dict] = {}

        def fact(name: str, read) -> None:
            try:
                facts[name] = {"value": read()}
            except self.WindowsError as err:  # type: ignore[attr-defined]
                facts[name] = {"error": err.record}

        def sessions() -> dict:
            self._check_service(state, "Get-IscsiSession")  # type: ignore[attr-defined]
            views = [self._session_view(state, s, True) for s in state["sessions"]]  # type: ignore[attr-defined]
            nulls: dict[str, int] = {}
            for view in views:
                for field, value in view.items():
                    if value is None:
                        nulls[field] = nulls.get(field, 0) + 1
            connections = {
                f"{c['InitiatorAddress']} -> {c['TargetAddress']}"
                for view in views
                for c in view["Connections"]
            }
            return {
                "count": len(views),
                "null_fields": nulls,
                "initiator_portal_address": sorted({v["InitiatorPortalAddress"] for v in views}),
                "connection_addresses": sorted(connections),
            }

        def logins() -> dict:
            self._check_service(state, "Get-CimInstance")  # type: ignore[attr-defined]
            listed = [lg["TargetName"] for lg in self._listed_logins(state)]  # type: ignore[attr-defined]
            return {
                "wmi_instances": len(listed),
                "wmi_distinct_targets": len(set(listed)),
                "iscsicli_entries": len(state["persistent_logins"]),
            }

        def not_found() -> dict:
            return self._not_found("saltext-iscsi-probe", "Get-IscsiSession").record  # type: ignore[attr-defined]

        fact(
            "windows",
            lambda: {
                "Caption": "Microsoft Windows Server 2022 Datacenter",
                "Version": "10.0.20348",
                "UBR": 2762,
            },
        )
        fact("sessions", sessions)
        fact("persistent_logins", logins)
        fact("not_found_error", not_found)
        return {"facts": facts}

    def _registry(self, state: dict, key: str, name: str) -> Any:
        """Read-RegistryValue: null when not set; Get-Item's error for a missing key."""
        if key == MPIO_KEY and state["readiness"]["mpio_feature"] != "Installed":
            raise self._error(  # type: ignore[attr-defined]
                f"Cannot find path '{key}' because it does not exist.",
                "ObjectNotFound",
                "PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand",
            )
        return state["readiness"]["registry"].get(key, {}).get(name)

    def _ready(self, state: dict, request: dict) -> dict:
        ready = state["readiness"]
        results = []

        def fix(name: str, action) -> None:
            item: dict[str, Any] = {"item": name, "ok": True}
            try:
                action()
            except self.WindowsError as err:  # type: ignore[attr-defined]
                item.update(ok=False, error=err.record)
            results.append(item)

        def start_type() -> None:
            ready["msiscsi_start_mode"] = "Auto"

        def start() -> None:
            if ready["msiscsi_start_mode"] == "Disabled":
                raise self._error(  # type: ignore[attr-defined]
                    "Service 'Microsoft iSCSI Initiator Service (MSiSCSI)' cannot be started due "
                    "to the following error: Cannot start service MSiSCSI on computer '.'.",
                    "OpenError",
                    "CouldNotStartService,Microsoft.PowerShell.Commands.StartServiceCommand",
                )
            state["faults"]["service_stopped"] = False

        def claim() -> None:
            if ready["mpio_feature"] != "Installed":
                raise self._module_missing("MPIO")  # type: ignore[attr-defined]
            ready["msdsm_claim"]["iSCSI"] = True

        def write(key: str, name: str, value: Any) -> None:
            self._registry(state, key, name)  # the key must exist
            ready["registry"].setdefault(key, {})[name] = int(value) & 0xFFFFFFFF

        def timer(name: str, value: Any) -> None:
            if name not in TIMERS:
                raise self._error(  # type: ignore[attr-defined]
                    f"not an iSCSI timer: '{name}'", "InvalidArgument", "IscsiUnknownTimer"
                )
            write(ADAPTER_KEY, name, value)

        if request.get("start_type"):
            fix("service.start_type", start_type)
        if request.get("start_service"):
            fix("service.state", start)
        if request.get("msdsm_claim"):
            fix("mpio.msdsm_claim", claim)
        for name, value in (request.get("timers") or {}).items():
            fix(f"timer.{name}", lambda n=name, v=value: timer(n, v))
        if request.get("disk_timeout") is not None:
            fix("disk.timeout", lambda: write(DISK_KEY, "TimeOutValue", request["disk_timeout"]))
        if request.get("pdo_remove_period") is not None:
            fix(
                "mpio.pdo_remove_period",
                lambda: write(MPIO_KEY, "PDORemovePeriod", request["pdo_remove_period"]),
            )
        return {"results": results}
