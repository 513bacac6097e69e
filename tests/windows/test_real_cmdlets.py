"""The fixed script against Windows' own iSCSI cmdlets, each answer checked against the
simulator (run on Windows only; see README.md here)."""


def of_target(answer, target):
    assert answer["ok"], answer
    iqn = target["target_iqn"].lower()
    return [s for s in answer["sessions"] if s["TargetNodeAddress"].lower() == iqn]


# What the module relies on from every session and connection (documented properties).
NEEDED_SESSION_FIELDS = ("SessionIdentifier", "TargetNodeAddress", "IsPersistent", "IsConnected")
NEEDED_CONNECTION_FIELDS = ("TargetAddress", "TargetPortNumber", "InitiatorAddress")


def null_fields(data: dict) -> list[str]:
    return sorted(key for key, value in data.items() if value is None)


def test_get_sessions_fields(mod, twin, target, session, recorder, kind):
    """Select-Fields creates every key, so which fields are null is what Windows says
    (IsMultipathEnabled is no MSFT_iSCSISession property: null is expected)."""
    answer = twin.request({"op": "get_sessions", "connections": True})
    (found,) = [s for s in of_target(answer, target) if s["SessionIdentifier"] == session]
    (connection,) = found["Connections"]
    recorder.fact("session_null_fields", null_fields(found), kind)
    recorder.fact("connection_null_fields", null_fields(connection), kind)
    assert [f for f in NEEDED_SESSION_FIELDS if found[f] is None] == []
    assert [f for f in NEEDED_CONNECTION_FIELDS if connection[f] is None] == []
    assert connection["TargetAddress"] == target["portal"]
    assert connection["TargetPortNumber"] == target["port"]
    assert found["IsPersistent"] is False and found["IsConnected"] is True
    recorder.fact("session_as_reported", found, kind)


def test_register_then_unregister(twin, target, session):
    answer = twin.request({"op": "register", "ids": [session], "is_multipath_enabled": False})
    assert answer["results"] == [{"id": session, "ok": True}], answer
    (found,) = of_target(twin.real({"op": "get_sessions"}), target)
    assert found["IsPersistent"] is True
    answer = twin.request({"op": "unregister", "ids": [session]})
    assert answer["results"] == [{"id": session, "ok": True}], answer
    (found,) = of_target(twin.real({"op": "get_sessions"}), target)
    assert found["IsPersistent"] is False and found["IsConnected"] is True


def test_unknown_session_error_shape(mod, twin, recorder, kind):
    unknown = "ffffffffffffffff-0000000000000000"
    for op in ("unregister", "register"):
        answer = twin.request({"op": op, "ids": [unknown]})
        (item,) = answer["results"]
        assert item["ok"] is False
        assert mod.is_not_found(item["error"]), item["error"]
        recorder.fact(f"not_found_error_{op}", item["error"], kind)


def test_persistent_logins_and_digest(twin, target, session, recorder, kind):
    twin.request({"op": "register", "ids": [session], "is_multipath_enabled": False})
    logins = twin.request({"op": "get_persistent_logins"})["logins"]
    mine = [lg for lg in logins if lg["TargetName"].lower() == target["target_iqn"].lower()]
    assert len(mine) == 1, logins
    recorder.fact("login_with_portal", mine[0], kind)
    first = twin.request({"op": "digest"})
    assert len(first["digest"]) == 64 and first["count"] >= 1 and first["logins"] >= 1
    assert twin.real({"op": "digest"})["digest"] == first["digest"]


def test_digest_equals_the_simulators(twin, session):
    """The digest text is built the same way on both sides, so a mirror has the same digest."""
    twin.request({"op": "register", "ids": [session], "is_multipath_enabled": False})
    sim = twin.mirror()
    real = twin.real({"op": "digest"})
    twin.check(("digest value", real["digest"], sim.handle({"op": "digest"})["digest"]))
