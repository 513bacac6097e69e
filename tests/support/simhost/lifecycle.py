"""The initiator's lifecycle on the simulated host (test code): target portals, discovery,
connect and disconnect with CHAP, several paths per target, disks and volumes.

The SAN the initiator sees is part of the host's state (``network``): which targets exist,
on which portals, with which CHAP credentials and disks. Tests set it up with
``add_network_target``. What Windows does, as documented (Connect-IscsiTarget,
New-IscsiTargetPortal, iscsierr.h) or, marked GUESS, as assumed until tests/windows
observes it:

- adding a portal discovers (SendTargets) the targets reachable through it; targets added
  to the SAN later appear after ``Update-IscsiTargetPortal``; an unreachable portal fails
  with 0xEFFF0003 "Connection Failed.";
- connecting to a target that was not discovered fails with 0xEFFF0029; a second session
  on the same path, or a second session without MPIO, with 0xEFFF003F; wrong or missing CHAP
  credentials (one-way: user and secret; mutual: also the initiator's secret) with
  0xEFFF0009 "Authentication Failure.";
- ``IsPersistent`` at connect adds a persistent login; disconnecting leaves the persistent
  logins in place (the target comes back at boot); a session whose disk is in use cannot
  be logged out (0xEFFF0040);
- each session shows the target's disks (the same disk behind every path); a target's
  disks may show late (``disks_after`` seconds after the login: a LUN the array maps or
  presents late; GUESS how long Windows takes), only after a rescan (``"rescan"``:
  Update-HostStorageCache, as for a LUN mapped after the login, community.general#3763),
  or never (None: no LUN mapped to this initiator);
- MPIO's claim of iSCSI disks as Get-MSDSMAutomaticClaimSettings and Get-MSDSMSupportedHW
  show it (``set_mpio``), read by the main script's ``mpio_claim``.
"""

from __future__ import annotations

import copy
import hashlib
import time
from typing import Any

ERR_CONNECTION_FAILED = ("Connection Failed.", 0xEFFF0003)
ERR_PORTAL_EXISTS = ("Target Portal Structure Already Exists.", 0xEFFF0032)
ERR_AUTHENTICATION = ("Authentication Failure.", 0xEFFF0009)
ERR_ALREADY_LOGGED_IN = ("The target has already been logged in via an iSCSI session.", 0xEFFF003F)
ERR_DEVICE_IN_USE = (
    "The session cannot be logged out since a device on that session is currently being used.",
    0xEFFF0040,
)
AUTH_TYPES = {"NONE", "ONEWAYCHAP", "MUTUALCHAP"}


def digest(secret: str | None) -> str | None:
    """Secrets are kept as digests: tests compare them without storing the secret."""
    return hashlib.sha256(secret.encode()).hexdigest() if secret else None


def portal_key(address: str, port: int) -> str:
    return f"{str(address).lower()}:{int(port)}"


class LifecycleMixin:
    """The lifecycle operations of ``SimulatedHost`` (uses its error helpers)."""

    # -- set-up for tests -------------------------------------------------------------

    def add_network_target(
        self,
        node_address: str,
        *,
        portals: tuple[str, ...] = ("10.0.0.5:3260",),
        chap: tuple[str, str] | None = None,
        mutual_secret: str | None = None,
        disks: list[dict] | None = None,
        disks_after: float | str | None = 0.0,
    ) -> None:
        """A target the SAN offers on ``portals`` ("address:port"), optionally requiring
        CHAP (user, secret) and, for mutual CHAP, the initiator's secret. ``disks_after``:
        seconds after a login until its disks show, ``"rescan"`` (after the next rescan)
        or None (never)."""
        with self.edit() as state:
            state["network"].append(
                {
                    "NodeAddress": node_address,
                    "portals": [p.lower() for p in portals],
                    "chap_username": chap[0] if chap else None,
                    "chap_secret_sha256": digest(chap[1]) if chap else None,
                    "mutual_secret_sha256": digest(mutual_secret),
                    "disks": disks
                    if disks is not None
                    else [{"FriendlyName": "SIM LUN", "Size": 1 << 30}],
                    "disks_after": disks_after,
                }
            )

    def set_disk(self, node_address: str, **changes: Any) -> None:
        """Change the disk(s) of a target in every session that shows them (in use, boot...)."""
        with self.edit() as state:
            for session in state["sessions"]:
                if session["TargetNodeAddress"].lower() == node_address.lower():
                    for disk in session.get("Disks", []):
                        disk.update(changes)
            for target in state["network"]:
                if target["NodeAddress"].lower() == node_address.lower():
                    for disk in target["disks"]:
                        disk.update(changes)

    def portals(self) -> list[dict]:
        return self.read()["portals"]

    # -- operations -------------------------------------------------------------------

    def _lifecycle_ops(self) -> dict:
        return {
            "get_target_portals": self._get_target_portals,
            "add_target_portal": self._add_or_refresh_portal,
            "remove_target_portal": self._remove_target_portal,
            "update_target_portal": self._update_target_portal,
            "get_targets": self._get_targets,
            "connect_target": self._through("MSFT_iSCSITarget.Connect", self._connect_target),
            "disconnect": self._disconnect,
            "mpio_claim": self._mpio_claim,
            "rescan": self._rescan,
            "set_chap_secret": self._through(
                "MSFT_iSCSISession.SetCHAPSecret", self._set_chap_secret
            ),
        }

    def _through(self, method: str, operation):
        """``operation``, a CIM method the script calls with Invoke-CheckedMethod."""

        def call(state: dict, request: dict, secrets: dict) -> dict:
            with self._cim_method(state, method):
                return operation(state, request, secrets)

        return call

    def _get_target_portals(self, state: dict, request: dict, secrets: dict) -> dict:
        self._check_service(state, "Get-IscsiTargetPortal")
        return {"portals": copy.deepcopy(state["portals"])}

    def _find_portal(self, state: dict, request: dict, cmdlet: str) -> dict:
        key = portal_key(request.get("address"), request.get("port") or 3260)
        for portal in state["portals"]:
            if portal_key(portal["TargetPortalAddress"], portal["TargetPortalPortNumber"]) == key:
                return portal
        # GUESS: the CDXML not-found shape, as for sessions.
        raise self._error(
            f"No MSFT_iSCSITargetPortal objects found with property 'TargetPortalAddress' "
            f"equal to '{request.get('address')}'.  Verify the value of the property and retry.",
            "ObjectNotFound",
            f"CmdletizationQuery_NotFound_TargetPortalAddress,{cmdlet}",
        )

    def _discover(self, state: dict, address: str, port: int) -> None:
        key = portal_key(address, port)
        reachable = [t for t in state["network"] if key in t["portals"]]
        if not reachable:
            raise self._iscsi(ERR_CONNECTION_FAILED, self.INVOKE_CIM_METHOD)
        for target in reachable:
            if target["NodeAddress"] not in state["discovered"]:
                state["discovered"].append(target["NodeAddress"])

    def _add_or_refresh_portal(self, state: dict, request: dict, secrets: dict) -> dict:
        """Add-TargetPortal: New, and Update-IscsiTargetPortal when New says the portal
        exists already (0xEFFF0032)."""
        try:
            with self._cim_method(state, "MSFT_iSCSITargetPortal.New"):
                return self._add_target_portal(state, request, secrets)
        except self.WindowsError as err:
            if err.record["hresult"] != "0xEFFF0032":
                raise
        return self._update_target_portal(state, request, secrets)

    def _add_target_portal(self, state: dict, request: dict, secrets: dict) -> dict:
        self._check_service(state, self.INVOKE_CIM_METHOD)
        address, port = str(request.get("address")), int(request.get("port") or 3260)
        existing = [
            p
            for p in state["portals"]
            if portal_key(p["TargetPortalAddress"], p["TargetPortalPortNumber"])
            == portal_key(address, port)
        ]
        if existing and state["behaviour"]["new_existing_portal"] == "error":
            raise self._iscsi(ERR_PORTAL_EXISTS, self.INVOKE_CIM_METHOD)
        self._discover(state, address, port)
        if not existing:  # "refresh" (GUESS): New on an existing portal only discovers again
            state["portals"].append(
                {
                    "TargetPortalAddress": address,
                    "TargetPortalPortNumber": port,
                    "InitiatorPortalAddress": request.get("initiator_portal_address") or "",
                    "InitiatorInstanceName": request.get("initiator_instance_name") or "",
                    "IsDataDigest": False,
                    "IsHeaderDigest": False,
                }
            )
        return {}

    def _remove_target_portal(self, state: dict, request: dict, secrets: dict) -> dict:
        self._check_service(state, "Remove-IscsiTargetPortal")
        portal = self._find_portal(state, request, "Remove-IscsiTargetPortal")
        state["portals"].remove(portal)
        still = {
            t["NodeAddress"]
            for t in state["network"]
            for p in state["portals"]
            if portal_key(p["TargetPortalAddress"], p["TargetPortalPortNumber"]) in t["portals"]
        }
        connected = {s["TargetNodeAddress"] for s in state["sessions"]}
        state["discovered"] = [t for t in state["discovered"] if t in still or t in connected]
        return {}

    def _update_target_portal(self, state: dict, request: dict, secrets: dict) -> dict:
        self._check_service(state, "Update-IscsiTargetPortal")
        portal = self._find_portal(state, request, "Update-IscsiTargetPortal")
        self._discover(state, portal["TargetPortalAddress"], portal["TargetPortalPortNumber"])
        return {}

    def _get_targets(self, state: dict, request: dict, secrets: dict) -> dict:
        self._check_service(state, "Get-IscsiTarget")
        connected = {s["TargetNodeAddress"].lower() for s in state["sessions"]}
        return {
            "targets": [
                {"NodeAddress": t, "IsConnected": t.lower() in connected}
                for t in state["discovered"]
            ]
        }

    def _network_target(self, state: dict, node_address: str) -> dict:
        for target in state["network"]:
            if target["NodeAddress"].lower() == node_address.lower():
                return target
        raise self._iscsi(self.ERR_TARGET_NOT_FOUND, self.INVOKE_CIM_METHOD)

    def _check_chap(self, state: dict, target: dict, request: dict, secrets: dict) -> str:
        auth = str(request.get("authentication_type") or "NONE").upper()
        if auth not in AUTH_TYPES:
            raise self._error(
                f"Invalid AuthenticationType '{auth}'", "InvalidArgument", self.INVOKE_CIM_METHOD
            )
        if target["chap_username"] is None:
            return auth
        ok = (
            auth in ("ONEWAYCHAP", "MUTUALCHAP")
            and request.get("chap_username") == target["chap_username"]
            and digest(secrets.get("chap_secret")) == target["chap_secret_sha256"]
        )
        if ok and auth == "MUTUALCHAP":
            ok = state["chap_secret_sha256"] == target["mutual_secret_sha256"] is not None
        if not ok:
            raise self._iscsi(ERR_AUTHENTICATION, self.INVOKE_CIM_METHOD)
        return auth

    def _connect_target(self, state: dict, request: dict, secrets: dict) -> dict:
        self._check_service(state, self.INVOKE_CIM_METHOD)
        node = str(request.get("node_address"))
        if node not in state["discovered"]:
            raise self._iscsi(self.ERR_TARGET_NOT_FOUND, self.INVOKE_CIM_METHOD)
        target = self._network_target(state, node)
        if request.get("address"):
            key = portal_key(request["address"], request.get("port") or 3260)
            if key not in target["portals"]:
                raise self._iscsi(ERR_CONNECTION_FAILED, self.INVOKE_CIM_METHOD)
        else:
            key = target["portals"][0]
        address, port = key.rsplit(":", 1)
        initiator_portal = request.get("initiator_portal_address") or ""
        multipath = bool(request.get("is_multipath_enabled"))
        same_target = [
            s for s in state["sessions"] if s["TargetNodeAddress"].lower() == node.lower()
        ]
        for session in same_target:
            path = session["Connections"][0]
            # The local address the session really uses is its connection's (a session made
            # without an initiator portal shows 0.0.0.0 as InitiatorPortalAddress).
            same_path = portal_key(path["TargetAddress"], path["TargetPortNumber"]) == key and (
                not initiator_portal or path["InitiatorAddress"].lower() == initiator_portal.lower()
            )
            if same_path or not (multipath and session.get("multipath")):
                raise self._iscsi(ERR_ALREADY_LOGGED_IN, self.INVOKE_CIM_METHOD)
        auth = self._check_chap(state, target, request, secrets)
        session = self._new_session(
            state, target["NodeAddress"], address, int(port), initiator_portal=initiator_portal
        )
        session.update(AuthenticationType=auth, multipath=multipath)
        session["Disks"] = [self._disk(state, target, i, d) for i, d in enumerate(target["disks"])]
        delay = target.get("disks_after", 0.0)
        session["disks_at"] = time.time() + delay if isinstance(delay, (int, float)) else delay
        if request.get("is_persistent"):
            login = self._add_login(state, session, multipath)
            login.update(
                AuthenticationType=auth, chap_secret_sha256=digest(secrets.get("chap_secret"))
            )
            self._store_username(state, login, request.get("chap_username"))
        return {}

    @staticmethod
    def _disk(state: dict, target: dict, index: int, spec: dict) -> dict:
        """The disk a target's LUN shows as; the same number behind every path."""
        numbers = state.setdefault("disk_numbers", {})
        key = f"{target['NodeAddress'].lower()}#{index}"
        if key not in numbers:
            numbers[key] = len(numbers) + 1
        disk = {
            "Number": numbers[key],
            "FriendlyName": "SIM LUN",
            "SerialNumber": f"SIM{numbers[key]:05d}",
            "Size": 1 << 30,
            "IsBoot": False,
            "IsSystem": False,
            "IsClustered": False,
            "IsOffline": True,
            "Volumes": [],
            "InUse": False,
        }
        disk.update(copy.deepcopy(spec))
        return disk

    def _mpio_claim(self, state: dict, request: dict, secrets: dict) -> dict:
        """Get-MsdsmClaim: what the MPIO module's cmdlets show (nothing without it)."""
        mpio = state["mpio"]
        if not mpio["installed"]:
            return {"claim": {"mpio": False, "automatic": False, "hardware": False}}
        return {
            "claim": {
                "mpio": True,
                "automatic": mpio["automatic"].get("iSCSI") is True,
                "hardware": "MSFT2005iSCSIBusType_0x9" in mpio["supported_hw"],
            }
        }

    def _rescan(self, state: dict, request: dict, secrets: dict) -> dict:
        """Update-HostStorageCache: disks waiting for a rescan show from now on."""
        self._check_storage_module(state)
        state["rescans"] += 1
        for session in state["sessions"]:
            if session.get("disks_at") == "rescan":
                session["disks_at"] = 0.0
        return {}

    def _disconnect(self, state: dict, request: dict, secrets: dict) -> dict:
        results = []
        for item in request.get("sessions") or []:
            sid = str(item.get("id"))
            result = {"id": sid, "ok": True}
            try:
                self._check_service(state, "Disconnect-IscsiTarget")
                session = self._session(state, sid, "Disconnect-IscsiTarget")
                if session["TargetNodeAddress"].lower() != str(item.get("node_address")).lower():
                    raise self._iscsi(self.ERR_INVALID_SESSION, "Disconnect-IscsiTarget")
                if any(d.get("InUse") for d in session.get("Disks", [])):
                    raise self._iscsi(ERR_DEVICE_IN_USE, "Disconnect-IscsiTarget")
                state["sessions"].remove(session)
                # The persistent logins stay: the target comes back at the next boot.
                for login in state["persistent_logins"]:
                    if login.get("session") == session["SessionIdentifier"]:
                        login["session"] = None
            except self.WindowsError as err:
                result.update(ok=False, error=err.record)
            results.append(result)
        return {"results": results}

    def _set_chap_secret(self, state: dict, request: dict, secrets: dict) -> dict:
        self._check_service(state, self.INVOKE_CIM_METHOD)
        state["chap_secret_sha256"] = digest(secrets.get("chap_secret"))
        return {}
