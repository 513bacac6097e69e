"""The tests/windows machinery, run here with a simulated host playing the real one.

What Windows will answer cannot be checked here; that the mirror reproduces a host, that a
difference is caught and recorded, and that a recorded observation becomes the simulator's
default, can.
"""

from __future__ import annotations

import sys
import types

import pytest

from saltext_win_iscsi.windows.wire import PROTOCOL_VERSION
from tests.support.simhost.model import SEED_TARGET, SimulatedHost
from tests.support.simhost.observations import load_observations
from tests.windows.recorder import Recorder
from tests.windows.twin import Twin, shape, statuses

DOWN = "iqn.1991-05.com.contoso:backup-offsite"


class FakeChannel:
    """A channel whose 'real host' is a simulated one."""

    def __init__(self, host: SimulatedHost) -> None:
        self.host = host

    def request(self, request: dict, secrets: dict | None = None) -> dict:
        return {"v": PROTOCOL_VERSION, **self.host.handle(request, secrets)}


@pytest.fixture
def real(tmp_path) -> SimulatedHost:
    host = SimulatedHost(tmp_path / "real.json").reset(sessions=3)
    sid = host.sessions()[0]["SessionIdentifier"]
    host.register_by_hand(sid, multipath=True)  # MPIO: two logins for one session
    host.add_session(SEED_TARGET, persistent=False, portal="10.0.0.6")
    host.add_persistent_login(DOWN, portal="", port=0)  # no session, no portal
    return host


@pytest.fixture
def recorder(tmp_path) -> Recorder:
    return Recorder({"Caption": "simulated"}, tmp_path / "observations.json")


@pytest.fixture
def twin(real, recorder, tmp_path) -> Twin:
    folder = tmp_path / "mirrors"
    folder.mkdir()
    return Twin(FakeChannel(real), "process", recorder, folder, "test")


def test_the_mirror_is_the_host(real, twin):
    sim = twin.mirror()
    for request in (
        {"op": "get_sessions", "connections": True},
        {"op": "get_persistent_logins"},
        {"op": "digest"},
    ):
        assert sim.handle(request) == real.handle(request)


def test_matching_answers_pass(real, twin):
    ids = [s["SessionIdentifier"] for s in real.sessions()]
    twin.request({"op": "unregister", "ids": [ids[3], "ffff-unknown"]})
    twin.request({"op": "register", "ids": ids[3:], "is_multipath_enabled": False})
    twin.request(
        {
            "op": "remove_persistent_logins",
            "logins": [real.handle({"op": "get_persistent_logins"})["logins"][-1]],
        }
    )
    assert "simulator_mismatches" not in twin.recorder.document["facts"]


def test_a_difference_is_caught_and_recorded(real, twin, recorder):
    real.set_behaviour("unregister_non_persistent", "error")
    sid = real.sessions()[3]["SessionIdentifier"]
    with pytest.raises(AssertionError, match="differ: unregister: response shape; unregister: st"):
        twin.request({"op": "unregister", "ids": [sid]})
    shapes, items = load_observations(recorder.path)["facts"]["simulator_mismatches"]
    assert shapes["what"] == "unregister: response shape" and shapes["test"] == "test"
    assert "error" in shapes["real"]["results"][0] and "error" not in shapes["sim"]["results"][0]
    assert items["what"] == "unregister: status per item"
    assert items["real"][0][2][1] == "0xEFFF0042" and items["sim"][0][2] is None


def test_an_observation_becomes_the_simulators_default(real, twin, recorder, tmp_path):
    real.set_behaviour("unregister_removes", "one")
    sid = real.sessions()[0]["SessionIdentifier"]

    def observed(answer):
        left = sum(lg["session"] == sid for lg in real.persistent_logins())
        value = "all" if left == 0 else "one"
        recorder.behaviour("unregister_removes", value, "process")
        return {"unregister_removes": value}

    twin.request({"op": "unregister", "ids": [sid]}, behaviour=observed)
    seen = load_observations(recorder.path)
    assert seen["behaviour"] == {"unregister_removes": "one"}
    host = SimulatedHost(tmp_path / "next.json", observations=recorder.path).reset()
    assert host.read()["behaviour"]["unregister_removes"] == "one"


def test_channels_that_disagree_leave_the_switch_unobserved(recorder):
    recorder.behaviour("unregister_non_persistent", "noop", "process")
    with pytest.raises(AssertionError, match="the channels saw different"):
        recorder.behaviour("unregister_non_persistent", "error", "runspace")
    assert load_observations(recorder.path)["behaviour"] == {"unregister_non_persistent": None}


def test_a_stopped_service_is_compared_with_an_earlier_mirror(real, twin):
    sim = twin.mirror()
    real.set_fault("service_stopped", True)
    answer = twin.request({"op": "digest"}, sim=sim, faults={"service_stopped": True}, after=False)
    assert answer["ok"] is False and answer["error"]["hresult"] == "0xEFFF003E"


def test_shape_and_statuses():
    assert shape({"a": [1, "x", None], "b": True}) == {"a": ["int", "str", "NoneType"], "b": "bool"}
    error = {"category": "ObjectNotFound", "hresult": None, "error_id": "Cmdletization_X,Get-Y"}
    answer = {"ok": True, "results": [{"id": "s", "ok": False, "error": error}]}
    assert statuses(answer) == [("s", False, ("ObjectNotFound", None, "Cmdletization_X"))]


def test_windows_lock_takes_and_releases_the_first_byte(monkeypatch, tmp_path):
    calls = []
    fake = types.SimpleNamespace(
        LK_NBLCK=2, LK_UNLCK=0, locking=lambda fd, mode, n: calls.append((mode, n))
    )
    monkeypatch.setitem(sys.modules, "msvcrt", fake)
    monkeypatch.delitem(sys.modules, "tests.support.simhost.winlock", raising=False)
    from tests.support.simhost import winlock

    with open(tmp_path / "x.lock", "a+") as lock:
        lock.write("abc")
        lock.flush()
        winlock.flock(lock, winlock.LOCK_EX)
        winlock.flock(lock, winlock.LOCK_UN)
        assert lock.tell() == 0  # locked at offset 0, wherever the file was
    assert calls == [(2, 1), (0, 1)]
