"""The simulator takes its behaviour defaults from what a real Windows host was seen to do."""

import json

import pytest

from tests.support.simhost import observations as obs
from tests.support.simhost.model import DEFAULT_BEHAVIOUR, SimulatedHost, empty_state

SEEN = {
    "format": 1,
    "windows": {"Caption": "Microsoft Windows Server 2022 Datacenter", "Version": "10.0.20348"},
    "behaviour": {
        "unregister_removes": "one",
        "unregister_non_persistent": "error",
        "remove_persistent_removes": None,  # not observed: the model's default stays
    },
    "facts": {"unregister_non_persistent": {"ok": False, "error": {"hresult": "0xEFFF0042"}}},
}


@pytest.fixture
def seen_file(tmp_path):
    path = tmp_path / "windows-observations.json"
    obs.dump_observations(path, SEEN)
    return path


def test_every_switch_has_a_rule():
    assert set(obs.CHOICES) | obs.LISTS == set(DEFAULT_BEHAVIOUR)
    for name, choices in obs.CHOICES.items():
        assert DEFAULT_BEHAVIOUR[name] in choices


def test_defaults_come_from_the_file(seen_file, tmp_path):
    assert obs.load_observations(seen_file) == SEEN
    expected = {
        **DEFAULT_BEHAVIOUR,
        "unregister_removes": "one",
        "unregister_non_persistent": "error",
    }
    assert empty_state(seen_file)["behaviour"] == expected
    host = SimulatedHost(tmp_path / "state.json", observations=seen_file).reset(sessions=1)
    assert host.read()["behaviour"] == expected
    # A loaded document works as well as a path.
    assert SimulatedHost(tmp_path / "b.json", observations=SEEN).reset().read()["behaviour"] == (
        expected
    )
    # Without observations nothing changes.
    assert SimulatedHost(tmp_path / "c.json").reset().read()["behaviour"] == DEFAULT_BEHAVIOUR


def test_observed_default_changes_what_the_host_does(seen_file, tmp_path):
    host = SimulatedHost(tmp_path / "state.json", observations=seen_file).reset()
    sid = host.add_session("iqn.1991-05.com.contoso:x", persistent=False)
    (item,) = host.handle({"op": "unregister", "ids": [sid]})["results"]
    assert item["ok"] is False and item["error"]["hresult"] == "0xEFFF0042"


def test_environment_variable(seen_file, tmp_path, monkeypatch):
    monkeypatch.setenv(obs.ENV, str(seen_file))
    assert empty_state()["behaviour"]["unregister_removes"] == "one"
    assert SimulatedHost(tmp_path / "state.json").reset().read()["behaviour"][
        "unregister_non_persistent"
    ] == ("error")
    # An explicit document wins over the environment.
    assert empty_state({"format": 1, "behaviour": {}})["behaviour"] == DEFAULT_BEHAVIOUR


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"observed": {}}, r"unknown key\(s\) \['observed'\]"),
        ({"format": 2}, "'format' must be 1, not 2"),
        ({"behaviour": {"unregister_removes_all": "all"}}, "unknown behaviour 'unregister_rem"),
        ({"behaviour": {"unregister_removes": "both"}}, r"'both'; it must be one of \['one', 'a"),
        ({"behaviour": {"unregister_non_persistent": True}}, "must be one of"),
        ({"behaviour": {"misreport_persistent": "abc"}}, "must be a list of strings"),
        ({"behaviour": ["unregister_removes"]}, "'behaviour' must be a JSON object"),
    ],
)
def test_bad_files_are_named(tmp_path, change, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**SEEN, **change}))
    with pytest.raises(obs.ObservationsError, match=message) as err:
        obs.load_observations(path)
    assert str(path) in str(err.value)
    with pytest.raises(obs.ObservationsError, match=message):
        SimulatedHost(tmp_path / "state.json", observations=path).reset()
    with pytest.raises(obs.ObservationsError, match=message):
        obs.dump_observations(tmp_path / "out.json", {**SEEN, **change})


def test_unreadable_files_are_named(tmp_path, monkeypatch):
    with pytest.raises(obs.ObservationsError, match="cannot read observations"):
        obs.load_observations(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{not json")
    monkeypatch.setenv(obs.ENV, str(tmp_path / "broken.json"))
    with pytest.raises(obs.ObservationsError, match="broken.json: not JSON"):
        empty_state()
    with pytest.raises(obs.ObservationsError, match="a JSON object is expected, not list"):
        obs.check([])
