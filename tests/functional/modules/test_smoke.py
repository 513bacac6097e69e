def test_get_sessions_lists_the_seed(iscsi, seeded):
    sessions = iscsi.get_sessions()
    assert [s["SessionIdentifier"] for s in sessions] == [
        s["SessionIdentifier"] for s in seeded.sessions()
    ]
    assert all(s["IsPersistent"] for s in sessions)
