"""MPIO's claim, rescans and LUN availability through Salt's loader against the simulated
host: the MPIO flag refused where MPIO does not claim iSCSI disks (and the explicit
override), ``iscsi.rescan`` in one process, and ``iscsi.connected`` waiting for a new
session's disks ("session up, no disk" when none appears)."""

import time

import pytest
from salt.exceptions import SaltInvocationError

DB = "iqn.1991-05.com.contoso:db-01"
PATH_A, PATH_B = "10.0.1.5:3260", "10.0.2.5:3260"
MPIO = {"portals": [PATH_A, PATH_B], "multipath": True}


@pytest.fixture
def san(host):
    host.reset()
    host.add_network_target(DB, portals=(PATH_A, PATH_B))
    return host


@pytest.mark.parametrize(
    ("installed", "why"),
    [
        (False, "the Multipath-IO feature is not installed"),
        (True, "MPIO's Microsoft DSM does not claim iSCSI disks"),
    ],
)
def test_multipath_is_refused_where_mpio_does_not_claim_iscsi(iscsi, san, installed, why):
    san.set_mpio(installed=installed, claims_iscsi=False)
    san.reset_stats()
    with pytest.raises(SaltInvocationError, match=f"refusing multipath: {why}"):
        iscsi.ensure_connected(DB, **MPIO)
    assert san.portals() == [] and san.sessions() == []  # nothing changed
    assert san.stats()["processes"] == 1  # the claim read in the operation's own process
    assert set(san.stats()["requests"]) == {"mpio_claim"}
    with pytest.raises(SaltInvocationError, match="allow_unclaimed_multipath=True"):
        iscsi.connect_target(DB, target_portal_address="10.0.1.5", is_multipath_enabled=True)
    # Without the MPIO flag there is nothing to refuse.
    assert iscsi.ensure_connected(DB, portals=[PATH_A], persistent=False)["errors"] == []
    (sid,) = [s["SessionIdentifier"] for s in san.sessions()]
    with pytest.raises(SaltInvocationError, match="refusing multipath"):
        iscsi.register_session(session_identifier=sid, is_multipath_enabled=True)
    assert iscsi.register_session(session_identifier=sid)[sid]["status"] == "registered"


def test_the_override_connects_with_mpio_all_the_same(iscsi, san):
    san.set_mpio(installed=True, claims_iscsi=False)
    result = iscsi.ensure_connected(DB, allow_unclaimed_multipath=True, **MPIO)
    assert result["errors"] == [] and len(san.sessions()) == 2


def test_the_state_fails_with_the_refusal_and_the_policy_passes_the_override(loaders, san):
    san.set_mpio(installed=True, claims_iscsi=False)
    ret = loaders.states.iscsi.connected(DB, **MPIO)
    assert ret.result is False and "refusing multipath" in ret.comment
    assert san.sessions() == []
    ret = loaders.states.iscsi.connected(DB, allow_unclaimed_multipath=True, **MPIO)
    assert ret.result is True, ret.comment


def test_rescan_is_one_process_and_shows_late_disks(iscsi, san):
    san.add_network_target(
        "iqn.1991-05.com.contoso:late-01", portals=(PATH_A,), disks_after="rescan"
    )
    result = iscsi.ensure_connected(
        "iqn.1991-05.com.contoso:late-01", portals=[PATH_A], disk_timeout=0
    )
    assert result["errors"][0].startswith("session up, no disk: iqn.1991-05.com.contoso:late-01")
    san.reset_stats()
    assert iscsi.rescan() == {"status": "rescanned"}
    assert san.stats()["processes"] == 1 and san.stats()["requests"] == {"rescan": 1}
    (session,) = iscsi.get_sessions(disks=True)
    assert [d["Number"] for d in session["Disks"]] == [1]


def test_connected_waits_for_disks_that_show_late(loaders, san):
    late = "iqn.1991-05.com.contoso:slow-01"
    san.add_network_target(late, portals=(PATH_A,), disks_after=1.5)
    started = time.monotonic()
    ret = loaders.states.iscsi.connected(late, portals=[PATH_A], disk_timeout=20)
    waited = time.monotonic() - started
    assert ret.result is True, ret.comment
    assert 1.5 <= waited < 15


def test_session_up_no_disk_fails_the_state_after_the_timeout(loaders, san):
    empty = "iqn.1991-05.com.contoso:nolun-01"
    san.add_network_target(empty, portals=(PATH_A,), disks_after=None)
    san.reset_stats()
    started = time.monotonic()
    ret = loaders.states.iscsi.connected(empty, portals=[PATH_A], disk_timeout=1)
    assert time.monotonic() - started >= 1
    assert ret.result is False
    assert f"session up, no disk: {empty} is connected but shows no disk after 1 s" in ret.comment
    assert f"session {empty} via {PATH_A}" in ret.changes  # the session is up: said so
    assert san.stats()["processes"] == 1  # the waiting reads in the operation's process
    with pytest.raises(SaltInvocationError, match="disk_timeout must be a number of seconds"):
        loaders.modules.iscsi.ensure_connected(empty, disk_timeout="soon")
