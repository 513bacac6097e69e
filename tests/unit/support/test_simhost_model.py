"""The simulated host's own helpers: many sessions in one write are the same sessions."""

from tests.support.simhost.model import SimulatedHost

TARGET = "iqn.1991-05.com.contoso:bench-1"


def test_add_sessions_is_add_session_many_times(tmp_path):
    one_by_one = SimulatedHost(tmp_path / "a.json").reset()
    ids_a = [one_by_one.add_session(TARGET, persistent=True) for _ in range(3)]
    batch = SimulatedHost(tmp_path / "b.json").reset()
    ids_b = batch.add_sessions([TARGET] * 3, persistent=True)
    assert ids_a == ids_b
    assert batch.sessions() == one_by_one.sessions()
    assert batch.persistent_logins() == one_by_one.persistent_logins()
    assert batch.persistent_ids() == set(ids_b)
    plain = SimulatedHost(tmp_path / "c.json").reset()
    assert len(plain.add_sessions([TARGET, TARGET])) == 2
    assert plain.persistent_ids() == set() and plain.persistent_logins() == []
