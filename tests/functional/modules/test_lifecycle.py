"""The initiator's lifecycle through Salt's loader against the simulated host: portals,
discovery, connect over paths with MPIO and CHAP, disks, disconnect, and the desired
states behind iscsi.connected and iscsi.absent."""

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

DB = "iqn.1991-05.com.contoso:db-01"
OLD = "iqn.1991-05.com.contoso:old-01"
SECURE = "iqn.1991-05.com.contoso:secure-01"
PATH_A, PATH_B = "10.0.1.5:3260", "10.0.2.5:3260"


@pytest.fixture
def san(host):
    """An empty initiator; the SAN offers DB on two paths, OLD, and SECURE with CHAP."""
    host.reset()
    host.add_network_target(DB, portals=(PATH_A, PATH_B))
    host.add_network_target(OLD, portals=("10.0.9.5:3260",))
    host.add_network_target(SECURE, portals=(PATH_A,), chap=("host1", "Chap-S3cret-01"))
    return host


def test_portals_discovery_and_targets(iscsi, san):
    assert iscsi.get_target_portals() == []
    assert iscsi.add_target_portal("10.0.1.5") == {"portal": "10.0.1.5:3260", "status": "added"}
    (portal,) = iscsi.get_target_portals()
    assert portal["TargetPortalAddress"] == "10.0.1.5" and portal["TargetPortalPortNumber"] == 3260
    assert {t["NodeAddress"] for t in iscsi.get_targets()} == {DB, SECURE}
    assert iscsi.get_targets(node_address="*:db-*") == [{"NodeAddress": DB, "IsConnected": False}]
    with pytest.raises(
        CommandExecutionError, match=r"Connection Failed\. \(NotSpecified, HRESULT 0xefff0003"
    ):
        iscsi.add_target_portal("10.0.99.9")
    assert iscsi.remove_target_portal("10.0.1.5", test=True)["status"] == "would_remove"
    assert iscsi.remove_target_portal("10.0.1.5")["status"] == "removed"
    assert iscsi.get_target_portals() == [] and iscsi.get_targets() == []


def test_connect_two_paths_with_mpio_and_see_the_disks(iscsi, san):
    iscsi.add_target_portal("10.0.1.5")
    iscsi.connect_target(
        DB, target_portal_address="10.0.1.5", is_persistent=True, is_multipath_enabled=True
    )
    # A second session without MPIO is refused, as Windows does.
    with pytest.raises(CommandExecutionError, match="already been logged in"):
        iscsi.connect_target(DB, target_portal_address="10.0.2.5")
    iscsi.connect_target(
        DB, target_portal_address="10.0.2.5", is_persistent=True, is_multipath_enabled=True
    )
    sessions = iscsi.get_sessions(target_node_address=DB, connections=True, disks=True)
    assert [s["Connections"][0]["TargetAddress"] for s in sessions] == ["10.0.1.5", "10.0.2.5"]
    assert all(s["IsPersistent"] for s in sessions)
    logins = iscsi.get_persistent_logins(target_node_address=DB)
    assert len(logins) == 2 and all(lg["IsMultipathEnabled"] for lg in logins)
    # The same disk behind both paths.
    assert [[d["Number"] for d in s["Disks"]] for s in sessions] == [[1], [1]]
    assert set(sessions[0]["Disks"][0]) >= {
        "FriendlyName",
        "SerialNumber",
        "Size",
        "IsBoot",
        "Volumes",
    }


def test_chap_is_checked(iscsi, san):
    iscsi.add_target_portal("10.0.1.5")
    with pytest.raises(CommandExecutionError, match=r"Authentication Failure\..*0xefff0009"):
        iscsi.connect_target(
            SECURE,
            authentication_type="one-way",
            chap_username="host1",
            chap_secret="Wrong-Secret-1",
        )
    result = iscsi.connect_target(
        SECURE, authentication_type="one-way", chap_username="host1", chap_secret="Chap-S3cret-01"
    )
    assert result["status"] == "connected"
    with pytest.raises(SaltInvocationError, match="12 to 16 bytes"):
        iscsi.connect_target(SECURE, chap_secret="short")
    with pytest.raises(
        SaltInvocationError, match="authentication must be one of none, one-way, mutual"
    ):
        iscsi.connect_target(SECURE, authentication_type="kerberos")


def test_disconnect_leaves_the_persistent_login(iscsi, san):
    iscsi.add_target_portal("10.0.9.5")
    iscsi.connect_target(OLD, is_persistent=True)
    (sid,) = [s["SessionIdentifier"] for s in iscsi.get_sessions()]
    assert iscsi.disconnect_target(node_address=OLD, test=True)[sid]["status"] == "would_disconnect"
    assert iscsi.disconnect_target(node_address=OLD)[sid]["status"] == "disconnected"
    assert iscsi.get_sessions() == []
    # What iSCSIDsc's Ensure=Absent leaves behind: it comes back at boot.
    assert [lg["TargetName"] for lg in iscsi.get_persistent_logins()] == [OLD]


def test_ensure_connected_converges_and_is_idempotent(iscsi, san):
    spec = {"portals": [PATH_A, PATH_B], "persistent": True, "multipath": True}
    planned = iscsi.ensure_connected(DB, test=True, **spec)
    assert planned["errors"] == [] and set(planned["changes"]) == {
        "portal 10.0.1.5:3260",
        "portal 10.0.2.5:3260",
        f"session {DB} via 10.0.1.5:3260",
        f"session {DB} via 10.0.2.5:3260",
    }
    assert iscsi.get_target_portals() == []  # test mode changed nothing
    done = iscsi.ensure_connected(DB, **spec)
    assert done["errors"] == [] and set(done["changes"]) == set(planned["changes"])
    again = iscsi.ensure_connected(DB, **spec)
    assert again == {"changes": {}, "comments": [f"{DB} is connected as wanted."], "errors": []}
    assert len(iscsi.get_persistent_logins(target_node_address=DB)) == 2


def test_a_persistent_session_with_the_wrong_mpio_flag_is_re_registered(iscsi, san):
    iscsi.add_target_portal("10.0.1.5")
    iscsi.connect_target(DB, target_portal_address="10.0.1.5", is_persistent=True)  # no MPIO
    (sid,) = [s["SessionIdentifier"] for s in iscsi.get_sessions()]
    result = iscsi.ensure_connected(DB, portals=[PATH_A], multipath=True)
    change = result["changes"][f"persistence {DB} via 10.0.1.5:3260"]
    assert change == {
        "session": sid,
        "steps": ["unregister", "register"],
        "old": {"IsMultipathEnabled": False, "AuthenticationType": "NONE"},
        "new": {"IsMultipathEnabled": True, "AuthenticationType": "NONE"},
    }
    (login,) = iscsi.get_persistent_logins(target_node_address=DB)
    assert login["IsMultipathEnabled"] is True
    assert iscsi.ensure_connected(DB, portals=[PATH_A], multipath=True)["changes"] == {}


def test_mutual_chap_sets_the_initiator_secret_before_connecting(iscsi, san):
    mutual = "iqn.1991-05.com.contoso:mutual-01"
    san.add_network_target(
        mutual, portals=(PATH_A,), chap=("host1", "Chap-S3cret-01"), mutual_secret="Init-S3cret-02"
    )
    with pytest.raises(SaltInvocationError, match="mutual CHAP needs initiator_chap_secret"):
        iscsi.ensure_connected(
            mutual,
            portals=[PATH_A],
            authentication="mutual",
            chap_username="host1",
            chap_secret="Chap-S3cret-01",
        )
    result = iscsi.ensure_connected(
        mutual,
        portals=[PATH_A],
        authentication="mutual",
        chap_username="host1",
        chap_secret="Chap-S3cret-01",
        initiator_chap_secret="Init-S3cret-02",
    )
    assert result["errors"] == [], result
    (session,) = iscsi.get_sessions(target_node_address=mutual)
    assert session["AuthenticationType"] == "MUTUALCHAP"
    assert "Chap-S3cret-01" not in repr(result) and "Init-S3cret-02" not in repr(result)


def test_ensure_absent_unregisters_before_it_disconnects(iscsi, san):
    iscsi.ensure_connected(OLD, portals=["10.0.9.5"])
    iscsi.ensure_connected(DB, portals=[PATH_A])
    result = iscsi.ensure_absent(OLD)
    assert result["errors"] == []
    assert set(result["changes"]) >= {"portal 10.0.9.5:3260"}
    assert [s["TargetNodeAddress"] for s in iscsi.get_sessions()] == [DB]
    # Unlike a plain disconnect, nothing of it comes back at boot.
    assert iscsi.get_persistent_logins(target_node_address=OLD) == []
    assert [p["TargetPortalAddress"] for p in iscsi.get_target_portals()] == ["10.0.1.5"]
    assert iscsi.ensure_absent(OLD) == {
        "changes": {},
        "comments": [f"No session, persistent login or portal of {OLD} is left."],
        "errors": [],
    }


@pytest.mark.parametrize(
    ("disk", "reason"),
    [
        ({"IsBoot": True}, "is a boot disk"),
        ({"IsSystem": True}, "is a system disk"),
        ({"IsClustered": True}, "is a clustered disk"),
        (
            {"IsOffline": False, "Volumes": [{"DriveLetter": "E", "AccessPaths": ["E:\\\\"]}]},
            "online with volume(s) E",
        ),
    ],
)
def test_ensure_absent_refuses_to_pull_a_disk_in_use(iscsi, loaders, san, disk, reason):
    iscsi.ensure_connected(OLD, portals=["10.0.9.5"])
    san.set_disk(OLD, **disk)
    result = iscsi.ensure_absent(OLD)
    assert result["changes"] == {} and reason in result["errors"][0]
    assert loaders.context.get("retcode") == 1
    assert len(iscsi.get_sessions(target_node_address=OLD)) == 1
    assert iscsi.ensure_absent(OLD, force=True)["errors"] == []
    assert iscsi.get_sessions(target_node_address=OLD) == []
