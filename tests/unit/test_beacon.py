"""The beacon's decisions: what is a new registration, what config is valid, what it fires."""

import pytest

from tests.unit.conftest import load

T1 = "iqn.1991-05.com.contoso:t1"
T2 = "iqn.1991-05.com.contoso:t2"
INIT = "iqn.1991-05.com.contoso:host"


@pytest.fixture(scope="module")
def beacon_mod():
    return load("_beacons/iscsi.py")


def s(sid, target=T1, persistent=True):
    return {
        "SessionIdentifier": sid,
        "TargetNodeAddress": target,
        "InitiatorNodeAddress": INIT,
        "IsPersistent": persistent,
    }


def known_of(beacon_mod, sessions):
    return beacon_mod._knowledge("d", sessions, [])


def new_ids(beacon_mod, before, now):
    return [
        x["SessionIdentifier"]
        for x in beacon_mod._new_registrations(known_of(beacon_mod, before), now)
    ]


def test_register_on_an_existing_session_is_new(beacon_mod):
    assert new_ids(beacon_mod, [s("a"), s("b", persistent=False)], [s("a"), s("b")]) == ["b"]


def test_nothing_changed_is_nothing_new(beacon_mod):
    assert new_ids(beacon_mod, [s("a"), s("b")], [s("a"), s("b")]) == []


def test_unregistration_is_not_new(beacon_mod):
    assert new_ids(beacon_mod, [s("a"), s("b")], [s("a"), s("b", persistent=False)]) == []


def test_restart_reconnects_under_new_ids_fire_nothing(beacon_mod):
    before = [s("a"), s("b"), s("c", T2)]
    after = [s("x"), s("y"), s("z", T2)]
    assert new_ids(beacon_mod, before, after) == []


def test_reconnect_plus_a_real_registration(beacon_mod):
    before = [s("a"), s("b", persistent=False)]
    after = [s("x"), s("b")]  # a reconnected as x; b was registered by hand
    assert new_ids(beacon_mod, before, after) == ["b"]


def test_unregister_then_register_within_one_tick_is_new(beacon_mod):
    """The remediated session is still there: the newcomer is no reconnect."""
    before = [s("a"), s("b", persistent=False)]
    after = [s("a", persistent=False), s("b")]
    assert new_ids(beacon_mod, before, after) == ["b"]


def test_reconnect_credit_is_per_target(beacon_mod):
    before = [s("a", T1)]
    after = [s("x", T2)]  # a vanished, but x is to another target
    assert new_ids(beacon_mod, before, after) == ["x"]


@pytest.mark.parametrize(
    ("config", "valid"),
    [
        ([{"interval": 5}], True),
        (
            [{"targets": "iqn.*"}, {"exclude_targets": ["iqn.*:db-*"]}, {"report_existing": True}],
            True,
        ),
        ([{"timeout": 2.5}, {"disable_during_state_run": True}, {"enabled": True}], True),
        ({"targets": "iqn.*"}, False),
        ([{"targets": 5}], False),
        ([{"targets": []}], False),
        ([{"exclude_targets": [""]}], False),
        ([{"report_existing": "yes"}], False),
        ([{"timeout": 0}], False),
        ([{"timeout": True}], False),
        (["targets"], False),
    ],
)
def test_validate(beacon_mod, config, valid):
    ok, message = beacon_mod.validate(config)
    assert ok is valid, message
    assert message if not valid else message == "Valid beacon configuration"


class FakeSalt:
    """Stands in for the iscsi execution module's watch (unit layer only)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def run_beacon(beacon_mod, tmp_path):
    def _make(answers, config=()):
        fake = FakeSalt(answers)
        beacon_mod.__salt__ = {"iscsi.watch": fake}
        beacon_mod.__opts__ = {"cachedir": str(tmp_path)}
        beacon_mod.__context__ = {}

        def tick():
            return beacon_mod.beacon(list(config))

        return fake, tick

    return _make


def snap(digest, sessions, selected=None):
    ids = [x["SessionIdentifier"] for x in sessions if x["IsPersistent"]]
    return {
        "digest": digest,
        "count": len(ids),
        "changed": True,
        "sessions": sessions,
        "selected": ids if selected is None else selected,
    }


def test_ticks_baseline_then_fire_once(run_beacon, beacon_mod, caplog):
    unchanged = {"digest": "d2", "count": 1, "changed": False}
    fake, tick = run_beacon(
        [
            snap("d1", [s("a"), s("b", persistent=False)]),
            unchanged | {"digest": "d1"},
            snap("d2", [s("a"), s("b")]),
            RuntimeError("PowerShell hung"),
            RuntimeError("PowerShell hung"),
            unchanged,
        ]
    )
    assert tick() == []  # first run ever: baseline, nothing fired
    assert tick() == []
    events = tick()
    assert [(e["tag"], e["SessionIdentifier"]) for e in events] == [("registered", "b")]
    assert all("id" not in e for e in events)
    with caplog.at_level("DEBUG"):
        assert tick() == [] and tick() == []
    assert [r.levelname for r in caplog.records if "PowerShell hung" in r.message] == [
        "ERROR",
        "DEBUG",
    ]
    assert tick() == []
    assert [c["previous_digest"] for c in fake.calls] == [None, "d1", "d1", "d2", "d2", "d2"]
    assert all(c["keep_open"] is True for c in fake.calls)


def test_restart_remembers_and_reports_what_happened_meanwhile(run_beacon, beacon_mod):
    _, tick = run_beacon([snap("d1", [s("a"), s("b", persistent=False)])])
    tick()
    # A new process (restart): empty __context__, knowledge from the cache file.
    _, tick = run_beacon([snap("d2", [s("a"), s("b")])])
    assert [e["SessionIdentifier"] for e in tick()] == ["b"]


def test_report_existing_and_filters(run_beacon, beacon_mod):
    sessions = [s("a"), s("b", T2)]
    _, tick = run_beacon(
        [snap("d1", sessions, selected=["b"])], config=[{"report_existing": True}, {"targets": T2}]
    )
    assert [e["SessionIdentifier"] for e in tick()] == ["b"]


def login(target=T1, address="10.0.0.5"):
    return {
        "TargetName": target,
        "InitiatorInstance": "ROOT\\ISCSIPRT\\0000_0",
        "InitiatorPortNumber": 4294967295,
        "TargetPortalAddress": address,
        "TargetPortalPort": 3260,
        "selected": True,
    }


def test_new_login_without_session_is_new(beacon_mod):
    known = beacon_mod._knowledge("d", [s("a")], [login()])
    assert beacon_mod._new_logins(known, [login(), login(T2)], []) == [login(T2)]


def test_second_mpio_registration_is_new(beacon_mod):
    known = beacon_mod._knowledge("d", [s("a")], [login()])
    assert beacon_mod._new_logins(known, [login(), login()], []) == [login()]


def test_login_that_comes_with_a_new_session_is_one_event(beacon_mod):
    known = beacon_mod._knowledge("d", [s("b", persistent=False)], [])
    new_sessions = beacon_mod._new_registrations(known, [s("b")])
    assert [x["SessionIdentifier"] for x in new_sessions] == ["b"]
    assert beacon_mod._new_logins(known, [login()], new_sessions) == []


def test_old_knowledge_without_logins_baselines_them(beacon_mod):
    known = {"digest": "d", "persistent": {}, "others": []}
    assert beacon_mod._new_logins(known, [login()], []) == []


def test_tick_fires_for_a_stale_login(run_beacon, beacon_mod):
    def with_logins(digest, logins):
        return snap(digest, [s("a")]) | {"logins": logins}

    _, tick = run_beacon([with_logins("d1", []), with_logins("d2", [login(T2)])])
    assert tick() == []
    (event,) = tick()
    assert event["kind"] == "persistent_login" and event["TargetNodeAddress"] == T2
    assert "selected" not in event and "id" not in event
