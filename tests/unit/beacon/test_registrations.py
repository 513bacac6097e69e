"""What counts as a new persistent registration (the beacon's registered events)."""

from saltext_win_iscsi.beacon import registrations

T1 = "iqn.1991-05.com.contoso:t1"
T2 = "iqn.1991-05.com.contoso:t2"
INIT = "iqn.1991-05.com.contoso:host"


def s(sid, target=T1, persistent=True):
    return {
        "SessionIdentifier": sid,
        "TargetNodeAddress": target,
        "InitiatorNodeAddress": INIT,
        "IsPersistent": persistent,
    }


def new_ids(before, now):
    known = registrations.knowledge(before, [])
    return [x["SessionIdentifier"] for x in registrations.new_sessions(known, now)]


def test_register_on_an_existing_session_is_new():
    assert new_ids([s("a"), s("b", persistent=False)], [s("a"), s("b")]) == ["b"]


def test_nothing_changed_is_nothing_new():
    assert new_ids([s("a"), s("b")], [s("a"), s("b")]) == []


def test_unregistration_is_not_new():
    assert new_ids([s("a"), s("b")], [s("a"), s("b", persistent=False)]) == []


def test_restart_reconnects_under_new_ids_fire_nothing():
    before = [s("a"), s("b"), s("c", T2)]
    after = [s("x"), s("y"), s("z", T2)]
    assert new_ids(before, after) == []


def test_reconnect_plus_a_real_registration():
    before = [s("a"), s("b", persistent=False)]
    after = [s("x"), s("b")]  # a reconnected as x; b was registered by hand
    assert new_ids(before, after) == ["b"]


def test_unregister_then_register_within_one_tick_is_new():
    """The remediated session is still there: the newcomer is no reconnect."""
    before = [s("a"), s("b", persistent=False)]
    after = [s("a", persistent=False), s("b")]
    assert new_ids(before, after) == ["b"]


def test_reconnect_credit_is_per_target():
    before = [s("a", T1)]
    after = [s("x", T2)]  # a vanished, but x is to another target
    assert new_ids(before, after) == ["x"]


def login(target=T1, address="10.0.0.5"):
    return {
        "TargetName": target,
        "InitiatorInstance": "ROOT\\ISCSIPRT\\0000_0",
        "InitiatorPortNumber": 4294967295,
        "TargetPortalAddress": address,
        "TargetPortalPort": 3260,
        "selected": True,
    }


def test_new_login_without_session_is_new():
    known = registrations.knowledge([s("a")], [login()])
    assert registrations.new_logins(known, [login(), login(T2)], []) == [login(T2)]


def test_second_mpio_registration_is_new():
    known = registrations.knowledge([s("a")], [login()])
    assert registrations.new_logins(known, [login(), login()], []) == [login()]


def test_login_that_comes_with_a_new_session_is_one_event():
    known = registrations.knowledge([s("b", persistent=False)], [])
    new_sessions = registrations.new_sessions(known, [s("b")])
    assert [x["SessionIdentifier"] for x in new_sessions] == ["b"]
    assert registrations.new_logins(known, [login()], new_sessions) == []


def test_knowledge_is_checked_before_use():
    assert registrations.valid_knowledge(registrations.knowledge([s("a")], [login()]))
    for bad in (None, [], {"persistent": {}}, {"persistent": [], "others": [], "logins": {}}):
        assert not registrations.valid_knowledge(bad)
