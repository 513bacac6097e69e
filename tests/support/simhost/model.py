"""A model of the Microsoft iSCSI initiator on one simulated Windows host (test code).

The host's state lives in one JSON file so that tests, the PowerShell stand-in, the WinRM
endpoint and a person with an editor all see and change the same host. Every change
happens under an exclusive lock on ``<state>.lock``.

What it models (``../shared/windows-iscsi-reference.md``, Microsoft's cmdlet docs):
- sessions with every Get-IscsiSession field and their connections (Get-IscsiConnection);
- the initiator's persistent-login list, which is what ``IsPersistent`` reflects: a
  session is persistent while at least one persistent login belongs to it;
- Register-IscsiSession adds a persistent login each time (registering twice = MPIO);
- Unregister-IscsiSession removes the session's logins: one or all of them
  (``behaviour.unregister_removes``, undocumented by Microsoft, so configurable); on a
  session that is not persistent it does nothing or fails with 0xEFFF0042
  (``behaviour.unregister_non_persistent``);
- an unknown session id fails the CDXML way ("No MSFT_iSCSISession objects found ...");
- fault switches: access denied, service stopped, per-session failures, hang, garbage
  output, stderr noise, non-zero exit, crash, PowerShell start-up delay, constrained
  language mode, PowerShell 7, the iSCSI module missing.

Error records have the shapes the main script reports on Windows (``error`` of a response):
CIM errors carry the iSCSI status in the error id (``HRESULT 0xefff0042,<cmdlet>``, category
``NotSpecified``; ``Exception.HResult`` is a meaningless 0x80131500 on Windows, so the script
reports the status it reads from the error id); the script's own failures are ErrorRecords
with ids of their own (``IscsicliFailed``, ``IscsiNotPlainName``, ...). Where a shape has not
been observed on a real host it says so (``GUESS``); tests/windows records the real ones.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.simhost.lifecycle import LifecycleMixin
from tests.support.simhost.readiness import ReadinessMixin, empty_readiness

try:
    import fcntl
except ImportError:  # Windows: tests/windows mirrors a real host into a SimulatedHost
    from tests.support.simhost import winlock as fcntl

# What Windows reports (a unit test holds these equal to the library's protocol facts).
# IsMultipathEnabled is asked for but is no property of the class: it is always null.
SESSION_FIELDS = (
    "SessionIdentifier",
    "InitiatorSideIdentifier",
    "TargetSideIdentifier",
    "NumberOfConnections",
    "TargetNodeAddress",
    "InitiatorPortalAddress",
    "InitiatorNodeAddress",
    "InitiatorInstanceName",
    "AuthenticationType",
    "IsConnected",
    "IsPersistent",
    "IsDiscovered",
    "IsDataDigest",
    "IsHeaderDigest",
    "IsMultipathEnabled",
)

INITIATOR_NODE = "iqn.1991-05.com.contoso:deepcore.contoso.com"
INITIATOR_INSTANCE = "ROOT\\ISCSIPRT\\0000_0"
INITIATOR_ADDRESS = "10.0.0.21"
# The simulated host's system ANSI code page (a Western European Windows): persistent
# logins keep the CHAP user name as bytes in it (LoginOptions.Username, uint8[]).
ANSI_CODE_PAGE = "cp1252"
SEED_TARGET = "iqn.1991-05.com.contoso:testiscsi-deepcore-target"
# (InitiatorSideIdentifier, TargetSideIdentifier) of the seed's three sessions, in order.
SEED_SIDES = [("400001370001", "0200"), ("400001370004", "0100"), ("400001370002", "0300")]

# iscsierr.h texts, as Windows shows them.
ERR_PERSISTENT_REMOVE = ("Failed to remove persistent login information.", 0xEFFF0042)
ERR_PERSISTENT_SAVE = ("Failed to save persistent login information.", 0xEFFF0041)
ERR_SERVICE_STOPPED = (
    "The Microsoft iSCSI Initiator Service is not running. Please start the service and retry.",
    0xEFFF003E,
)
ERR_INVALID_SESSION = ("Invalid Session Id.", 0xEFFF001C)
ERR_TARGET_NOT_FOUND = (
    "The target name is not found or is marked as hidden from login.",
    0xEFFF0029,
)
LOGIN_FIELDS = (
    "TargetName",
    "InitiatorInstance",
    "InitiatorPortNumber",
    "TargetPortalAddress",
    "TargetPortalPort",
)

DEFAULT_BEHAVIOUR = {
    "unregister_removes": "all",  # Unregister-IscsiSession removes "one" or "all" of its logins
    "unregister_non_persistent": "noop",  # on a non-persistent session: "noop" or "error"
    "remove_persistent_removes": "all",  # iscsicli RemovePersistentTarget: "one" or "all" matches
    "misreport_persistent": [],  # session ids whose IsPersistent Windows reports wrongly
    # How a CIM method (New, Connect, Register, SetCHAPSecret) reports failure: "exception"
    # (a CimException, as public transcripts of Connect-IscsiTarget show) or "return_value"
    # (a non-zero ReturnValue, which csi-proxy checks after every call). GUESS.
    "method_failures": "exception",
    # MSFT_iSCSITargetPortal.New for a portal already there: "refresh" (discovers again) or
    # "error" (0xEFFF0032 "Target Portal Structure Already Exists.", iscsierr.h). GUESS.
    "new_existing_portal": "refresh",
    # Whether LoginOptions.Username ends with a NUL byte: "no" (its length is strlen, as
    # documented) or "yes". GUESS; tests/windows records the raw bytes.
    "username_nul_terminated": "no",
    # iscsicli RemovePersistentTarget without a portal ('*' address): "all_portals" (every
    # login of the target, as RemoveIScsiPersistentTargetW documents for an empty portal) or
    # "portal_less_only" (the first model's GUESS).
    "remove_without_portal": "all_portals",
    # What Get-CimInstance MSiSCSIInitiator_PersistentLoginClass lists: "each" login, or
    # "one_per_target" (TargetName is the class's only key: WMI may collapse MPIO
    # duplicates and logins on other portals). GUESS; tests/windows records iscsicli's count.
    "wmi_persistent_logins": "each",
    # Which associations find a disk the clustered storage subsystem claims: "session"
    # (both), "connection" (MSFT_iSCSIConnectionToDisk only: Microsoft documents that the
    # session's "may not be created" on Server 2016+) or "none". GUESS.
    "clustered_disk_association": "connection",
}
# MPIO and its Microsoft DSM (the MPIO module: Get-MSDSMAutomaticClaimSettings,
# Get-MSDSMSupportedHW, learn.microsoft.com/powershell/module/mpio). "installed": the
# Multipath-IO feature (without it the module and its cmdlets are absent); "automatic":
# the automatic-claim setting per bus type (Enable-MSDSMAutomaticClaim -BusType iSCSI;
# that the cmdlet answers a hashtable keyed by bus type is a GUESS); "supported_hw": the
# MSDSM's supported hardware as VendorId + ProductId (mpclaim -i -d MSFT2005iSCSIBusType_0x9
# adds the iSCSI bus's id). Default: a host with MPIO installed that claims iSCSI.
DEFAULT_MPIO: dict[str, Any] = {
    "installed": True,
    "automatic": {"iSCSI": True, "SAS": False},
    "supported_hw": ["MSFT2005iSCSIBusType_0x9"],
}
DEFAULT_FAULTS: dict[str, Any] = {
    "access_denied": False,  # every cmdlet: Access denied (not elevated)
    "service_stopped": False,  # MSiSCSI stopped: every cmdlet fails
    "fail_sessions": {},  # session id -> "persistent_remove" | "persistent_save" | "access_denied"
    "fail_logins": {},  # target IQN -> "persistent_remove": iscsicli cannot remove its entries
    "hang": False,  # the stand-in never answers
    "garbage": False,  # the stand-in prints non-protocol text instead of answering
    "stderr": "",  # the stand-in writes this to stderr after answering
    "stderr_encoding": "utf-8",  # in this code page (a Windows console's OEM one: "cp850")
    "exit_code": 0,  # the stand-in exits with this code at the end
    "crash": False,  # the stand-in dies while reading a request
    "startup_delay": 0.0,  # seconds: models powershell.exe's start-up cost
    # powershell.exe stops reading stdin: "start" (a stalled start: AV/AMSI scanning, a hung
    # provider) or "after_script" (it read the main script, then hangs); "": it reads on.
    "stops_reading": "",
    "language_mode": "FullLanguage",  # "ConstrainedLanguage": WDAC/AppLocker lockdown
    # Under that lockdown, whether the policy trusts the signer of an installed, signed
    # main.ps1 (it then runs with -File in FullLanguage; -EncodedCommand never does).
    "signer_trusted": True,
    "edition": "Desktop",  # "Core": the process is PowerShell 7 (pwsh)
    "iscsi_module_missing": False,  # Import-Module iSCSI fails (Server Core without it)
    "storage_module_missing": False,  # Import-Module Storage fails (asked for disks only)
    # Get-Disk fails with a provider error id: "StorageWMI 40001" (the Storage provider's
    # Access denied) or "MI RESULT 2" (MI_RESULT_ACCESS_DENIED); message text GUESS.
    "disk_error": "",
    # Facts of the diagnose op (readiness.py) whose read fails with Access denied.
    "unreadable_facts": [],
}


def status_from_error_id(error_id: str) -> str | None:
    """The HRESULT the main script reads from an error id (its ConvertTo-ErrorData)."""
    match = re.match(r"(?:HRESULT|ReturnValue) 0x([0-9A-Fa-f]{1,8}),", error_id)
    if match:
        return "0x" + match.group(1).upper().rjust(8, "0")
    match = re.match(r"Windows System Error (\d+),", error_id)
    if match:
        return f"0x{0x80070000 | int(match.group(1)):08X}"
    return None


def status_text(error_id: str) -> str | None:
    """The status as Windows names it: the HRESULT, or the Storage provider's and the MI
    layer's own codes ('StorageWMI 40001', 'MI RESULT 2'), which are no HRESULTs."""
    match = re.match(r"(StorageWMI|MI RESULT) (\d+),", error_id)
    return f"{match.group(1)} {match.group(2)}" if match else status_from_error_id(error_id)


class WindowsError_(Exception):
    """A PowerShell ErrorRecord as the main script reports it."""

    def __init__(self, message: str, category: str, error_id: str) -> None:
        super().__init__(message)
        self.record = {
            "message": message,
            "category": category,
            "error_id": error_id,
            "hresult": status_from_error_id(error_id),
            "status": status_text(error_id),
        }


# Error ids of CIM failures raised by Invoke-CimMethod (GUESS: not yet observed).
INVOKE_CIM_METHOD = "Microsoft.Management.Infrastructure.CimCmdlets.InvokeCimMethodCommand"


def _as_return_value(err: WindowsError_, method: str) -> WindowsError_:
    """A CIM method's failure as the script reports a non-zero ReturnValue
    (Invoke-CheckedMethod): the code, no message of Windows'."""
    code = err.record["hresult"] or "0x80004005"
    return WindowsError_(
        f"{method} returned {code}", "NotSpecified", f"ReturnValue {code},{method}"
    )


def _iscsi_error(text_code: tuple[str, int], cmdlet: str) -> WindowsError_:
    text, code = text_code
    return WindowsError_(text, "NotSpecified", f"HRESULT 0x{code:08x},{cmdlet}")


def _access_denied(cmdlet: str) -> WindowsError_:
    return WindowsError_("Access denied", "PermissionDenied", f"Windows System Error 5,{cmdlet}")


def _not_found(session_id: str, cmdlet: str) -> WindowsError_:
    # CDXML wording (two spaces before "Verify"), category ObjectNotFound.
    return WindowsError_(
        f"No MSFT_iSCSISession objects found with property 'SessionIdentifier' equal to "
        f"'{session_id}'.  Verify the value of the property and retry.",
        "ObjectNotFound",
        f"CmdletizationQuery_NotFound_SessionIdentifier,{cmdlet}",
    )


def _volume_key(path: str) -> str:
    """ConvertTo-VolumeKey: case-insensitive, without a trailing backslash."""
    return str(path).rstrip("\\").lower()


def _volume_names(volume: dict) -> list[str]:
    letter = volume.get("DriveLetter") or ""
    return [*volume.get("AccessPaths", []), f"{letter}:"]


def _with_binding(volume: dict, bound: list[str]) -> dict:
    """Get-VolumeData: the volume with the bound-list entries that name it."""
    names = {_volume_key(path) for path in _volume_names(volume)}
    bound_as = [entry for entry in bound if _volume_key(entry) in names]
    return {
        "DriveLetter": volume.get("DriveLetter") or "",
        "AccessPaths": list(volume.get("AccessPaths", [])),
        "IsBound": bool(bound_as),
        "BoundPaths": bound_as,
    }


# What the main script lets reach iscsicli as a volume path ($DevicePathName).
DEVICE_PATH = re.compile(r"[A-Za-z0-9._:\\?{}$-]+\Z")
ERR_DEVICE_NOT_FOUND = ("Device was not found.", 0xEFFF005D)


def _username_of(login: dict) -> str:
    """Get-PersistentLoginData's ChapUsername: the raw bytes in the ANSI code page, NULs
    trimmed (a mirrored or hand-made login gives its name as text)."""
    if "Username" in login:
        return bytes(login["Username"]).decode(ANSI_CODE_PAGE, "replace").rstrip("\x00")
    return login.get("chap_username") or ""


def _module_missing(name: str) -> WindowsError_:
    """Import-Required's error when Import-Module fails (Windows' own text appended)."""
    return _script_error(
        f"the {name} PowerShell module cannot be loaded (Server Core without it, or a client "
        f"edition?): The specified module '{name}' was not loaded because no valid module "
        "file was found in any module directory.",
        "IscsiModuleMissing",
        "NotInstalled",
    )


def _script_error(message: str, error_id: str, category: str) -> WindowsError_:
    """One of the main script's own ErrorRecords (New-ErrorRecord)."""
    return WindowsError_(message, category, error_id)


# What the main script lets reach iscsicli ($PlainName).
PLAIN_NAME = re.compile(r"[A-Za-z0-9._:\\\[\]&%-]+\Z")


def empty_state(observations: Any = None) -> dict:
    """A host with nothing on it; behaviour defaults from observations (observations.py)."""
    from tests.support.simhost.observations import behaviour_defaults

    return {
        "initiator": {
            "node_address": INITIATOR_NODE,
            "instance_name": INITIATOR_INSTANCE,
            "local_address": INITIATOR_ADDRESS,  # where logins without a portal go out from
        },
        "sessions": [],
        "next_session": 1,
        "persistent_logins": [],
        "portals": [],  # the initiator's target portals
        "discovered": [],  # target IQNs found through the portals
        "network": [],  # what the SAN offers (lifecycle.add_network_target)
        "chap_secret_sha256": None,  # the initiator's mutual-CHAP secret
        "cluster_service_running": False,  # ClusSvc: a failover cluster node
        "mpio": copy.deepcopy(DEFAULT_MPIO),  # set_mpio: the Multipath-IO feature, MSDSM
        "rescans": 0,  # Update-HostStorageCache runs
        # The initiator's persistently bound volumes (MSiSCSIInitiator_PersistentDevices):
        # its service waits at start-up until each one is there.
        "bound_volumes": [],
        "disk_numbers": {},
        "behaviour": behaviour_defaults(observations),
        "faults": copy.deepcopy(DEFAULT_FAULTS),
        "next_login": 1,
        "readiness": empty_readiness(),  # services, features, registry (readiness.py)
    }


# Requests that change nothing on the host: answered without saving the state.
READ_ONLY_OPS = frozenset(
    {"get_sessions", "digest", "get_persistent_logins", "diagnose", "observe"}
)


class SimulatedHost(LifecycleMixin, ReadinessMixin):
    """One simulated Windows host, backed by the JSON file at ``path``."""

    INVOKE_CIM_METHOD = INVOKE_CIM_METHOD
    ERR_TARGET_NOT_FOUND = ERR_TARGET_NOT_FOUND
    ERR_INVALID_SESSION = ERR_INVALID_SESSION
    WindowsError = WindowsError_
    _iscsi = staticmethod(_iscsi_error)
    _module_missing = staticmethod(_module_missing)
    _not_found = staticmethod(_not_found)

    @staticmethod
    def _error(message: str, category: str, error_id: str) -> WindowsError_:
        return WindowsError_(message, category, error_id)

    def __init__(self, path: str | os.PathLike, observations: Any = None) -> None:
        self.path = Path(path)
        self.observations = observations  # a document, a path, None: $ISCSI_SIM_OBSERVATIONS

    # -- storage -----------------------------------------------------------------------
    # The state is parsed once per process while the file is unchanged (a version token
    # beside it changes with every save) and read-only requests save nothing, so a kept
    # PowerShell's idle request costs what it would on Windows, not a parse of a host of
    # thousands of sessions. The counters live in their own small file.

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def edit(self) -> Iterator[dict]:
        """Lock, load, yield the state for changes, save."""
        with self._locked():
            state = self._cached()
            try:
                yield state
            except BaseException:
                self._cache = None  # changed half-way, not saved
                raise
            self._save(state)

    @contextlib.contextmanager
    def view(self) -> Iterator[dict]:
        """Lock, load, yield the state to read (not to change: it is the cached copy)."""
        with self._locked():
            yield self._cached()

    def read(self) -> dict:
        with self.view() as state:
            return copy.deepcopy(state)

    def faults(self) -> dict:
        with self.view() as state:
            return copy.deepcopy(state["faults"])

    def _version(self) -> tuple | None:
        try:
            token = self.path.with_name(self.path.name + ".version").read_text()
            stat = self.path.stat()
        except OSError:
            return None
        return token, stat.st_ino, stat.st_mtime_ns, stat.st_size

    def _cached(self) -> dict:
        version = self._version()
        cache = getattr(self, "_cache", None)
        if version is not None and cache is not None and cache[0] == version:
            return cache[1]
        state = self._load()
        self._cache = (version, state) if version is not None else None
        return state

    def _save(self, state: dict) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        # Indented for people; compact (C encoder, much faster) for big hosts.
        big = len(state["sessions"]) + len(state["persistent_logins"]) > 200
        tmp.write_text(json.dumps(state, indent=None if big else 1))
        os.replace(tmp, self.path)
        version = self.path.with_name(self.path.name + ".version")
        version.with_suffix(".vtmp").write_text(os.urandom(8).hex())
        os.replace(version.with_suffix(".vtmp"), version)
        self._cache = (self._version(), state)

    def _load(self) -> dict:
        if not self.path.exists():
            return empty_state(self.observations)
        state = json.loads(self.path.read_text())
        for key, value in empty_state(self.observations).items():
            state.setdefault(key, value)
        for key, value in DEFAULT_FAULTS.items():
            state["faults"].setdefault(key, value)
        return state

    def _stats_path(self) -> Path:
        return self.path.with_name(self.path.name + ".stats")

    def _bump(self, process: bool = False, request: str | None = None) -> None:
        """Count a process start or a request (under the lock)."""
        stats = self._read_stats()
        if process:
            stats["processes"] += 1
        if request is not None:
            stats["requests"][request] = stats["requests"].get(request, 0) + 1
        self._stats_path().write_text(json.dumps(stats))

    def _read_stats(self) -> dict:
        try:
            return json.loads(self._stats_path().read_text())
        except (OSError, ValueError):
            return {"processes": 0, "requests": {}}

    def count_process(self) -> None:
        """What the PowerShell stand-in calls as it starts."""
        with self._locked():
            self._bump(process=True)

    # -- set-up helpers for tests and people -----------------------------------------

    def reset(self, sessions: int = 0) -> SimulatedHost:
        """An empty host, or one with the seed's sessions (``sessions=3``) and more."""
        with self.edit() as state:
            state.clear()
            state.update(empty_state(self.observations))
            self._stats_path().unlink(missing_ok=True)
        for n in range(sessions):
            sides = SEED_SIDES[n] if n < len(SEED_SIDES) else (None, None)
            self.add_session(SEED_TARGET, persistent=True, sides=sides)
        return self

    def add_session(
        self,
        target: str,
        *,
        persistent: bool = False,
        portal: str = "10.0.0.5",
        port: int = 3260,
        connected: bool = True,
        sides: tuple[str | None, str | None] = (None, None),
        disks: list[dict] | None = None,
    ) -> str:
        """Log in to ``target`` (as if by hand); return the new session id."""
        with self.edit() as state:
            session = self._new_session(state, target, portal, port, sides=sides)
            session["IsConnected"] = connected
            if disks:
                network = {"NodeAddress": target, "disks": disks}
                session["Disks"] = [self._disk(state, network, i, d) for i, d in enumerate(disks)]
            if persistent:
                self._add_login(state, session, False)
            return session["SessionIdentifier"]

    def add_sessions(self, targets: list[str], *, persistent: bool = False) -> list[str]:
        """One login per entry of ``targets``, in one write (benchmarks add thousands)."""
        with self.edit() as state:
            sessions = [self._new_session(state, t, "10.0.0.5", 3260) for t in targets]
            if persistent:
                for session in sessions:
                    self._add_login(state, session, False)
            return [session["SessionIdentifier"] for session in sessions]

    @staticmethod
    def _new_session(
        state: dict,
        target: str,
        address: str,
        port: int,
        *,
        initiator_portal: str = "",
        sides: tuple[str | None, str | None] = (None, None),
    ) -> dict:
        n = state["next_session"]
        state["next_session"] += 1
        init = state["initiator"]
        session = {
            "SessionIdentifier": f"fffffa800d008430-40000137{n:08x}",
            "InitiatorSideIdentifier": sides[0] or f"40000137{n:04x}",
            "TargetSideIdentifier": sides[1] or f"{n % 256:02x}{n // 256 % 256:02x}",
            "NumberOfConnections": 1,
            "TargetNodeAddress": target,
            # Made without an initiator portal: 0.0.0.0 here, the address really used on
            # the connection (a real transcript; it was the other way round before).
            "InitiatorPortalAddress": initiator_portal or "0.0.0.0",
            "InitiatorNodeAddress": init["node_address"],
            "InitiatorInstanceName": init["instance_name"],
            "AuthenticationType": "NONE",
            "IsConnected": True,
            "IsDiscovered": True,
            "IsDataDigest": False,
            "IsHeaderDigest": False,
            # What the initiator knows (logged in with the MPIO flag); no property shows it.
            "multipath": False,
            "Connections": [
                {
                    "ConnectionIdentifier": f"fffffa800d008430-{n:x}",
                    "InitiatorAddress": initiator_portal
                    or init.get("local_address", INITIATOR_ADDRESS),
                    "InitiatorPortNumber": 44000 + n,
                    "TargetAddress": address,
                    "TargetPortNumber": port,
                }
            ],
            "Disks": [],
        }
        state["sessions"].append(session)
        return session

    def add_persistent_login(
        self,
        target: str,
        *,
        portal: str = "10.0.0.5",
        port: int = 3260,
        count: int = 1,
        instance: str | None = None,
    ) -> None:
        """A persistent login with no live session (its target is unreachable today).

        ``portal=""`` (with ``port=0``): a login made without a target portal; ``instance``:
        another initiator instance, e.g. a hardware HBA's ``PCI\\VEN_..&DEV_..\\..&0_0``.
        """
        with self.edit() as state:
            for _ in range(count):
                state["persistent_logins"].append(
                    {
                        "id": state["next_login"],
                        "session": None,
                        "TargetName": target,
                        "InitiatorInstance": instance or state["initiator"]["instance_name"],
                        "InitiatorPortNumber": 0xFFFFFFFF,
                        "TargetPortal": {"Address": portal, "Port": port},
                        "IsMultipathEnabled": count > 1,
                    }
                )
                state["next_login"] += 1

    def register_by_hand(self, session_id: str, *, multipath: bool = False) -> None:
        """What an admin's Register-IscsiSession does (a new persistent login)."""
        with self.edit() as state:
            self._add_login(
                state, self._session(state, session_id, "Register-IscsiSession"), multipath
            )

    def bind_volume(self, path: str) -> None:
        """What ``iscsicli BindPersistentVolumes`` / AddPersistentDevices leaves: ``path`` (a
        drive letter ``E:\\``, a mount point, a ``\\\\?\\Volume{...}\\`` name) on the list."""
        with self.edit() as state:
            state["bound_volumes"].append(path)

    def bound_volumes(self) -> list[str]:
        return self.read()["bound_volumes"]

    def boot_waits_for(self) -> list[str]:
        """Bound volumes no persistent login brings back at boot: the iSCSI service would
        wait for each of them at every start (until it times out)."""
        state = self.read()
        persistent = {lg["TargetName"].lower() for lg in state["persistent_logins"]}
        reachable = {
            _volume_key(path)
            for session in state["sessions"]
            if session["TargetNodeAddress"].lower() in persistent
            for disk in session.get("Disks", [])
            for volume in disk.get("Volumes", [])
            for path in _volume_names(volume)
        }
        return [p for p in state["bound_volumes"] if _volume_key(p) not in reachable]

    def set_cluster_service(self, running: bool) -> None:
        """The failover cluster service (ClusSvc) runs on this host, or not."""
        with self.edit() as state:
            state["cluster_service_running"] = running

    def set_mpio(self, installed: bool = True, claims_iscsi: bool = True) -> None:
        """MPIO installed or not; its DSM claiming iSCSI disks (automatic claim and the
        supported-hardware entry) or not."""
        with self.edit() as state:
            state["mpio"] = {
                "installed": installed,
                "automatic": {"iSCSI": claims_iscsi, "SAS": False},
                "supported_hw": ["MSFT2005iSCSIBusType_0x9"] if claims_iscsi else [],
            }

    def set_fault(self, name: str, value: Any) -> None:
        if name not in DEFAULT_FAULTS:
            raise KeyError(f"unknown fault {name!r}; known: {sorted(DEFAULT_FAULTS)}")
        with self.edit() as state:
            state["faults"][name] = value

    def clear_faults(self) -> None:
        with self.edit() as state:
            state["faults"] = copy.deepcopy(DEFAULT_FAULTS)

    def set_behaviour(self, name: str, value: Any) -> None:
        if name not in DEFAULT_BEHAVIOUR:
            raise KeyError(f"unknown behaviour {name!r}")
        with self.edit() as state:
            state["behaviour"][name] = value

    # -- what tests inspect ------------------------------------------------------------

    def sessions(self) -> list[dict]:
        state = self.read()
        owners = self._owners(state)
        return [self._session_view(state, s, False, owners) for s in state["sessions"]]

    def persistent_ids(self) -> set[str]:
        return {s["SessionIdentifier"] for s in self.sessions() if s["IsPersistent"]}

    def persistent_logins(self) -> list[dict]:
        return self.read()["persistent_logins"]

    def stats(self) -> dict:
        """PowerShell processes started and requests answered, by operation."""
        with self._locked():
            return self._read_stats()

    def reset_stats(self) -> None:
        with self._locked():
            self._stats_path().unlink(missing_ok=True)

    # -- the main script's operations (what Windows does) -------------------------------

    def handle(self, request: dict, secrets: dict | None = None) -> dict:
        """Answer one main-script request as the script would on Windows (the caller adds
        the protocol version). ``secrets``: the request's secrets, by name."""
        op = request.get("op")
        secrets = secrets or {}
        with self.view() if op in READ_ONLY_OPS else self.edit() as state:
            self._bump(request=str(op))
            try:
                if op == "diagnose":  # the edition and the modules are among its facts
                    return self._ok(**self._diagnose(state))
                self._check_powershell(state)
                if op == "ready":
                    return self._ok(**self._ready(state, request))
                if op == "observe":
                    return self._ok(**self._observe(state))
                if op == "get_sessions":
                    if request.get("disks"):
                        self._check_storage_module(state)
                    self._check_service(state, "Get-IscsiSession")
                    owners = self._owners(state)
                    connections, disks = (
                        bool(request.get("connections")),
                        bool(request.get("disks")),
                    )
                    return self._ok(
                        sessions=[
                            self._session_view(state, s, connections, owners, disks)
                            for s in state["sessions"]
                        ]
                    )
                lifecycle = self._lifecycle_ops().get(str(op))
                if lifecycle is not None:
                    return self._ok(**lifecycle(state, request, secrets))
                if op == "unbind_volumes":
                    self._check_storage_module(state)
                    return self._ok(results=self._unbind_volumes(state, request))
                if op == "digest":
                    return self._ok(**self._digest(state, request.get("sessions") is not False))
                if op == "get_persistent_logins":
                    self._check_service(state, "Get-CimInstance")
                    return self._ok(
                        logins=[self._login_view(lg) for lg in self._listed_logins(state)]
                    )
                if op == "remove_persistent_logins":
                    results = []
                    for wanted in request.get("logins") or []:
                        try:
                            self._remove_login(state, wanted)
                            results.append({"ok": True})
                        except WindowsError_ as err:
                            results.append({"ok": False, "error": err.record})
                    return self._ok(results=results)
                if op == "unregister":
                    return self._ok(results=self._per_session(state, request, self._unregister))
                if op == "register":
                    return self._ok(
                        results=self._per_session(
                            state,
                            request,
                            lambda st, sid, req: self._register(st, sid, req, secrets),
                        )
                    )
                raise _script_error(
                    f"unknown operation: {op}", "IscsiUnknownOperation", "InvalidArgument"
                )
            except WindowsError_ as err:
                return {"ok": False, "error": err.record}

    def _check_powershell(self, state: dict) -> None:
        """What the main script checks before any operation."""
        if state["faults"]["edition"] == "Core":
            raise _script_error(
                "PowerShell 7 (pwsh) is not supported; use Windows PowerShell 5.1",
                "IscsiUnsupportedEdition",
                "NotImplemented",
            )
        if state["faults"]["iscsi_module_missing"]:
            raise _module_missing("iSCSI")

    @staticmethod
    def _check_storage_module(state: dict) -> None:
        """What the main script imports before it asks for disks (Get-Disk, Get-Partition)."""
        if state["faults"]["storage_module_missing"]:
            raise _module_missing("Storage")

    def _digest(self, state: dict, with_sessions: bool) -> dict:
        """Get-Digest: the logins and, ``with_sessions``, every session's persistence and
        connection state."""
        self._check_service(state, "Get-IscsiSession")
        lines: list[str] = []
        persistent = None
        if with_sessions:
            owners = self._owners(state)
            persistent = 0
            for session in state["sessions"]:
                is_persistent = self._is_persistent(state, session, owners)
                persistent += is_persistent
                lines.append(
                    f"s|{session['SessionIdentifier']}|{is_persistent}|{session['IsConnected']}"
                )
        listed = self._listed_logins(state)
        for login in listed:
            lines.append("l|" + "|".join(str(v) for v in self._login_view(login).values()))
        text = "\n".join(sorted(lines))
        return {
            "count": persistent,
            "logins": len(listed),
            "digest": hashlib.sha256(text.encode()).hexdigest(),
        }

    @staticmethod
    def _ok(**fields: Any) -> dict:
        return {"ok": True, **fields}

    def _per_session(self, state: dict, request: dict, action) -> list[dict]:
        results = []
        for sid in request.get("ids") or []:
            item = {"id": str(sid), "ok": True}
            try:
                action(state, str(sid), request)
            except WindowsError_ as err:
                item.update(ok=False, error=err.record)
            results.append(item)
        return results

    def _unregister(self, state: dict, sid: str, _request: dict) -> None:
        cmdlet = "Unregister-IscsiSession"
        self._check_service(state, cmdlet)
        self._session(state, sid, cmdlet)
        self._injected_failure(state, sid, cmdlet)
        logins = [lg for lg in state["persistent_logins"] if lg.get("session") == sid]
        if not logins:
            if state["behaviour"]["unregister_non_persistent"] == "error":
                raise _iscsi_error(ERR_PERSISTENT_REMOVE, cmdlet)
            return
        remove = logins if state["behaviour"]["unregister_removes"] == "all" else logins[:1]
        ids = {lg["id"] for lg in remove}
        # The session itself stays connected: unregistering is not a logout.
        state["persistent_logins"] = [
            lg for lg in state["persistent_logins"] if lg["id"] not in ids
        ]

    def _register(self, state: dict, sid: str, request: dict, secrets: dict) -> None:
        # The script finds the session with Get-IscsiSession, then calls the CIM method
        # MSFT_iSCSISession.Register through Invoke-CimMethod.
        self._check_service(state, "Get-IscsiSession")
        session = self._session(state, sid, "Get-IscsiSession")
        with self._cim_method(state, "MSFT_iSCSISession.Register"):
            self._injected_failure(state, sid, INVOKE_CIM_METHOD)
        login = self._add_login(state, session, bool(request.get("is_multipath_enabled")))
        if request.get("chap_username"):
            self._store_username(state, login, request["chap_username"])
        if request.get("chap_username") or secrets.get("chap_secret"):
            login["AuthenticationType"] = "ONEWAYCHAP"  # GUESS: Register with CHAP is one-way
        if secrets.get("chap_secret"):
            # Kept as a digest: tests check the right secret arrived without storing it.
            login["chap_secret_sha256"] = hashlib.sha256(
                secrets["chap_secret"].encode()
            ).hexdigest()

    def _unbind_volumes(self, state: dict, request: dict) -> list[dict]:
        """Each session's volumes out of the bound list: iscsicli RemovePersistentDevices
        per entry naming one (GUESS: its exit code is the status, as for
        RemovePersistentTarget)."""
        results = []
        reconnecting = set()
        if request.get("keep_reconnecting"):
            reconnecting = {lg["TargetName"].lower() for lg in self._listed_logins(state)}
        for sid in (request.get("ids") or []) if state["bound_volumes"] else []:
            try:
                self._check_service(state, "Get-IscsiSession")
                view = self._session_view(
                    state, self._session(state, str(sid), "Get-IscsiSession"), False, disks=True
                )
            except WindowsError_ as err:
                results.append({"id": str(sid), "path": None, "ok": False, "error": err.record})
                continue
            if view["TargetNodeAddress"].lower() in reconnecting:
                continue
            paths = [p for d in view["Disks"] for v in d["Volumes"] for p in v["BoundPaths"]]
            for path in paths:
                item = {"id": str(sid), "path": path, "ok": True}
                try:
                    if not request.get("test"):
                        self._remove_bound_path(state, path)
                except WindowsError_ as err:
                    item.update(ok=False, error=err.record)
                results.append(item)
        return results

    def _remove_bound_path(self, state: dict, path: str) -> None:
        if not DEVICE_PATH.match(path):
            raise _script_error(
                f"not a plain volume path, iscsicli cannot take it: '{path}'",
                "IscsiNotPlainName",
                "InvalidArgument",
            )
        self._check_service(state, "iscsicli")
        if path not in state["bound_volumes"]:
            raise self._iscsicli_failed(ERR_DEVICE_NOT_FOUND)
        state["bound_volumes"].remove(path)

    # -- internals -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _cim_method(self, state: dict, method: str) -> Iterator[None]:
        """A CIM method call through Invoke-CimMethod: its failures as the switch
        ``method_failures`` says Windows reports them."""
        try:
            yield
        except WindowsError_ as err:
            raised_by_method = err.record["error_id"].endswith("," + INVOKE_CIM_METHOD)
            if raised_by_method and state["behaviour"]["method_failures"] == "return_value":
                raise _as_return_value(err, method) from None
            raise

    def _check_service(self, state: dict, cmdlet: str) -> None:
        if state["faults"]["service_stopped"]:
            raise _iscsi_error(ERR_SERVICE_STOPPED, cmdlet)
        if state["faults"]["access_denied"]:
            raise _access_denied(cmdlet)

    def _injected_failure(self, state: dict, sid: str, cmdlet: str) -> None:
        kind = state["faults"]["fail_sessions"].get(sid)
        if kind == "persistent_remove":
            raise _iscsi_error(ERR_PERSISTENT_REMOVE, cmdlet)
        if kind == "persistent_save":
            raise _iscsi_error(ERR_PERSISTENT_SAVE, cmdlet)
        if kind == "access_denied":
            raise _access_denied(cmdlet)

    def _session(self, state: dict, sid: str, cmdlet: str) -> dict:
        # CIM key lookup is case-insensitive.
        session = self._sessions_by_id(state).get(sid.lower())
        if session is None:
            raise _not_found(sid, cmdlet)
        return session

    def _sessions_by_id(self, state: dict) -> dict[str, dict]:
        """Sessions by lower-case id, built once per session list and length (a request
        naming thousands of sessions would otherwise scan the list once per id)."""
        sessions = state["sessions"]
        cached = getattr(self, "_index", None)
        if cached is None or cached[0] is not sessions or cached[1] != len(sessions):
            index = {s["SessionIdentifier"].lower(): s for s in sessions}
            cached = self._index = (sessions, len(sessions), index)
        return cached[2]

    @staticmethod
    def _add_login(state: dict, session: dict, multipath: bool) -> dict:
        connection = session["Connections"][0]
        login = {
            "id": state["next_login"],
            "session": session["SessionIdentifier"],
            "TargetName": session["TargetNodeAddress"],
            "InitiatorInstance": session["InitiatorInstanceName"],
            "InitiatorPortNumber": 0xFFFFFFFF,
            "TargetPortal": {
                "Address": connection["TargetAddress"],
                "Port": connection["TargetPortNumber"],
            },
            "IsMultipathEnabled": multipath,
        }
        state["next_login"] += 1
        state["persistent_logins"].append(login)
        if multipath:
            session["multipath"] = True
        return login

    @staticmethod
    def _store_username(state: dict, login: dict, name: str | None) -> None:
        """The CHAP user name as Windows keeps it: ANSI bytes (characters the code page
        lacks become '?'), NUL-ended if ``behaviour.username_nul_terminated`` says so."""
        login["chap_username"] = name
        if not name:
            login.pop("Username", None)
            return
        raw = list(name.encode(ANSI_CODE_PAGE, "replace"))
        if state["behaviour"]["username_nul_terminated"] == "yes":
            raw.append(0)
        login["Username"] = raw

    @staticmethod
    def _listed_logins(state: dict) -> list[dict]:
        """What WMI lists of the persistent logins: each one, or (its class's only key is
        TargetName) one per target (``behaviour.wmi_persistent_logins``)."""
        logins = state["persistent_logins"]
        if state["behaviour"]["wmi_persistent_logins"] == "each":
            return logins
        first: dict[str, dict] = {}
        for login in logins:
            first.setdefault(login["TargetName"].lower(), login)
        return list(first.values())

    @staticmethod
    def _owners(state: dict) -> set:
        """Ids of the sessions that own a persistent login."""
        return {lg.get("session") for lg in state["persistent_logins"]}

    def _is_persistent(self, state: dict, session: dict, owners: set | None = None) -> bool:
        sid = session["SessionIdentifier"]
        persistent = sid in (self._owners(state) if owners is None else owners)
        if sid in state["behaviour"]["misreport_persistent"]:
            return not persistent
        return persistent

    @staticmethod
    def _login_view(login: dict) -> dict:
        return {
            "TargetName": login["TargetName"],
            "InitiatorInstance": login["InitiatorInstance"],
            "InitiatorPortNumber": login["InitiatorPortNumber"],
            "TargetPortalAddress": login["TargetPortal"]["Address"],
            "TargetPortalPort": login["TargetPortal"]["Port"],
            "IsMultipathEnabled": bool(login.get("IsMultipathEnabled")),
            "AuthenticationType": login.get("AuthenticationType") or "NONE",
            "ChapUsername": _username_of(login),
        }

    @staticmethod
    def _iscsicli_argument(value: object, any_when_empty: bool) -> str:
        """Get-IscsicliArgument: '*' for an empty "any" value, else a plain name only."""
        text = "" if value is None else str(value)
        if not text and any_when_empty:
            return "*"
        if not PLAIN_NAME.match(text):
            raise _script_error(
                f"not a plain iSCSI name or address, iscsicli cannot take it: '{text}'",
                "IscsiNotPlainName",
                "InvalidArgument",
            )
        return text

    def _remove_login(self, state: dict, wanted: dict) -> None:
        """Remove-PersistentLogin: iscsicli RemovePersistentTarget <initiator> <target>
        <port> <address> <socket>, '*' meaning any. A '*' port is every initiator port; a '*'
        address is no portal, which RemoveIScsiPersistentTargetW documents as every portal
        of the target (``behaviour.remove_without_portal``)."""
        instance = self._iscsicli_argument(wanted.get("InitiatorInstance"), True)
        target = self._iscsicli_argument(wanted.get("TargetName"), False)
        port = wanted.get("InitiatorPortNumber")
        port_arg = "*" if port == 0xFFFFFFFF else str(port)
        address = self._iscsicli_argument(wanted.get("TargetPortalAddress"), True)
        socket = "*" if address == "*" else str(wanted.get("TargetPortalPort"))
        self._check_service(state, "iscsicli")
        if state["faults"]["fail_logins"].get(target.lower()):
            raise self._iscsicli_failed(ERR_PERSISTENT_REMOVE)

        every_portal = state["behaviour"]["remove_without_portal"] == "all_portals"

        def same(login: dict) -> bool:
            view = self._login_view(login)
            if address == "*":  # iscsicli passes no portal
                on_portal = every_portal or not view["TargetPortalAddress"]
            else:
                on_portal = (
                    view["TargetPortalAddress"].lower() == address.lower()
                    and str(view["TargetPortalPort"]) == socket
                )
            return (
                view["TargetName"].lower() == target.lower()
                and (instance == "*" or view["InitiatorInstance"].lower() == instance.lower())
                and (port_arg == "*" or str(view["InitiatorPortNumber"]) == port_arg)
                and on_portal
            )

        matching = [lg for lg in state["persistent_logins"] if same(lg)]
        if not matching:
            raise self._iscsicli_failed(ERR_TARGET_NOT_FOUND)
        if state["behaviour"]["remove_persistent_removes"] == "one":
            matching = matching[:1]
        ids = {lg["id"] for lg in matching}
        state["persistent_logins"] = [
            lg for lg in state["persistent_logins"] if lg["id"] not in ids
        ]

    @staticmethod
    def _iscsicli_failed(text_code: tuple[str, int]) -> WindowsError_:
        """What the script throws when iscsicli exits non-zero: its last output line and
        the exit code (the iSCSI status, e.g. 0xEFFF0029 arrives as -268500951) in hex."""
        text, code = text_code
        return _script_error(
            f"{text} (iscsicli status 0x{code:08X})", "IscsicliFailed", "InvalidOperation"
        )

    def _session_view(
        self,
        state: dict,
        session: dict,
        connections: bool,
        owners: set | None = None,
        disks: bool = False,
    ) -> dict:
        view = {field: session.get(field) for field in SESSION_FIELDS}
        # Not a property of MSFT_iSCSISession (real schemas and transcripts): always null.
        view["IsMultipathEnabled"] = None
        view["IsPersistent"] = self._is_persistent(state, session, owners)
        if connections:
            view["Connections"] = copy.deepcopy(session["Connections"])
        if disks:
            if state["faults"]["disk_error"]:
                code = state["faults"]["disk_error"]
                raise WindowsError_("Access denied", "PermissionDenied", f"{code},Get-Disk")
            view["Disks"] = [
                {
                    **{k: v for k, v in disk.items() if k not in ("InUse", "Volumes")},
                    "Volumes": [
                        _with_binding(v, state["bound_volumes"]) for v in disk.get("Volumes", [])
                    ],
                }
                for disk in session.get("Disks", [])
                if self._disk_found(state, disk) and self._disks_arrived(session)
            ]
            view["DisksUnknown"] = state["cluster_service_running"] and not view["Disks"]
        return view

    @staticmethod
    def _disks_arrived(session: dict) -> bool:
        """Whether a session's disks show yet (``add_network_target(disks_after=...)``)."""
        at = session.get("disks_at", 0.0)
        return isinstance(at, (int, float)) and time.time() >= at

    @staticmethod
    def _disk_found(state: dict, disk: dict) -> bool:
        """Get-DiskData asks the session's and the connections' associations: a clustered
        disk is missed only when neither exists (``behaviour.clustered_disk_association``)."""
        return (
            not disk.get("IsClustered")
            or state["behaviour"]["clustered_disk_association"] != "none"
        )
