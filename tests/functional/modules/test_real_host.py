"""The execution module through Salt's real loader against this Windows host's real
PowerShell (``iscsi.powershell`` unset).

Runs only with ``ISCSI_REAL_HOST=1``, on Windows, with the test target of
tests/windows/setup-target.ps1 (see tests/windows/README.md); skipped everywhere else. Each
test connects its own non-persistent session and leaves none, and no persistent login, of
the test target behind.
"""

import pytest

from saltext_win_iscsi.beacon.monitor import Scope
from tests.windows import hostactions

pytestmark = pytest.mark.real_host
UNKNOWN = "ffffffffffffffff-0000000000000001"


@pytest.fixture
def target():
    found = hostactions.find_target()
    if found is None:
        pytest.skip("no test target: run tests\\windows\\setup-target.ps1 (elevated) first")
    return found


@pytest.fixture
def iqn(target):
    return target["target_iqn"]


@pytest.fixture
def sid(target):
    hostactions.cleanup(target)
    yield hostactions.connect(target)["SessionIdentifier"]
    hostactions.cleanup(target)


def test_the_module_runs_the_real_powershell(loaders, iscsi):
    assert not loaders.opts.get("iscsi.powershell")
    assert isinstance(iscsi.get_sessions(), list)


def test_get_sessions(iscsi, target, iqn, sid):
    (session,) = iscsi.get_sessions(target_node_address=iqn)
    assert session["SessionIdentifier"] == sid
    assert session["IsPersistent"] is False and session["IsConnected"] is True
    (by_portal,) = iscsi.get_sessions(target_portal=f"{target['portal']}:{target['port']}")
    assert by_portal["Connections"][0]["TargetAddress"] == target["portal"]
    assert iscsi.get_sessions(target_node_address=iqn, is_persistent=True) == []


def test_register_and_unregister(iscsi, sid):
    assert iscsi.register_session(session_identifier=sid)[sid]["status"] == "registered"
    assert iscsi.register_session(session_identifier=sid)[sid]["status"] == "already_persistent"
    assert iscsi.unregister_session(session_identifier=sid, test=True)[sid]["status"] == (
        "would_unregister"
    )
    assert iscsi.unregister_session(session_identifier=sid)[sid]["status"] == "unregistered"
    assert iscsi.unregister_session(session_identifier=sid)[sid]["status"] == "not_persistent"
    assert iscsi.get_sessions(session_identifier=sid)[0]["IsConnected"] is True


def test_unknown_session(iscsi):
    assert iscsi.unregister_session(session_identifier=UNKNOWN) == {
        UNKNOWN: {"status": "not_found"}
    }


def test_persistent_logins_and_their_removal(iscsi, target, iqn, sid):
    iscsi.register_session(session_identifier=sid)
    (login,) = iscsi.get_persistent_logins(target_node_address=iqn)
    assert login["TargetName"].lower() == iqn.lower()
    (entry,) = iscsi.remove_persistent_login(target_node_address=iqn, test=True)
    assert entry["status"] == "would_remove"
    (entry,) = iscsi.remove_persistent_login(target_node_address=iqn)
    assert entry["status"] == "removed", entry
    assert iscsi.get_persistent_logins(target_node_address=iqn) == []
    (session,) = iscsi.get_sessions(session_identifier=sid)
    assert session["IsConnected"] is True


def test_the_beacons_check_sees_a_registration(iscsi, checker, sid):
    digest, _, _ = checker.look(None, Scope(sessions=False), 60)
    assert checker.look(digest, Scope(sessions=False), 60) == (digest, None, None)
    iscsi.register_session(session_identifier=sid)
    again, sessions, _ = checker.look(digest, Scope(sessions=False), 60)
    assert again != digest
    assert [s["IsPersistent"] for s in sessions if s["SessionIdentifier"] == sid] == [True]
