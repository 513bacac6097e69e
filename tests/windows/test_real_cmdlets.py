"""The module's fixed script against Windows' own iSCSI cmdlets (run on Windows only)."""


def sessions_of(channel, target):
    answer = channel.request({"op": "get_sessions", "connections": True})
    assert answer["ok"], answer
    return [s for s in answer["sessions"] if s["TargetNodeAddress"].lower() == target.lower()]


def test_get_sessions_fields(mod, channel, target):
    (session, *_) = sessions_of(channel, target)
    assert set(mod.SESSION_FIELDS) <= set(session)
    assert session["Connections"][0]["TargetPortNumber"] > 0


def test_unregister_then_register(channel, target):
    session = sessions_of(channel, target)[0]
    sid = session["SessionIdentifier"]
    try:
        answer = channel.request({"op": "unregister", "ids": [sid]})
        assert answer["results"] == [{"id": sid, "ok": True}], answer
        assert not next(s for s in sessions_of(channel, target) if s["SessionIdentifier"] == sid)[
            "IsPersistent"
        ]
    finally:
        answer = channel.request({"op": "register", "ids": [sid], "is_multipath_enabled": False})
    assert answer["results"][0]["ok"], answer
    assert next(s for s in sessions_of(channel, target) if s["SessionIdentifier"] == sid)[
        "IsPersistent"
    ]


def test_unknown_session_error_shape(mod, channel):
    answer = channel.request({"op": "unregister", "ids": ["ffffffffffffffff-0000000000000000"]})
    (item,) = answer["results"]
    assert item["ok"] is False
    assert mod.is_not_found(item["error"]), item["error"]


def test_digest_and_persistent_logins(channel, target):
    first = channel.request({"op": "digest"})
    assert first["ok"] and len(first["digest"]) == 64
    assert channel.request({"op": "digest"})["digest"] == first["digest"]
    logins = channel.request({"op": "get_persistent_logins"})["logins"]
    assert any(lg["TargetName"].lower() == target.lower() for lg in logins), logins
