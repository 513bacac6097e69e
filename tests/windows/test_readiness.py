"""What a real host says to ``diagnose`` and ``observe`` (read-only): every fact answers
with a value or its own error, never a failed request; both answers are recorded for the
simulator's readiness model (tests/support/simhost/readiness.py) and its observations."""

from saltext_win_iscsi import diagnosis
from saltext_win_iscsi.windows.observations import wmi_persistent_logins


def test_diagnose_answers_every_fact(twin, recorder, kind):
    answer = twin.real({"op": "diagnose"})
    assert answer["ok"], answer
    facts = answer["facts"]
    recorder.fact("diagnose", facts, kind)
    names = {name for name, _judge in diagnosis.WINDOWS_FACTS}
    assert names <= set(facts), names - set(facts)
    assert all(("value" in fact) != ("error" in fact) for fact in facts.values()), facts
    items = diagnosis.windows(facts).items
    recorder.fact("diagnose_verdicts", {n: i["verdict"] for n, i in items.items()}, kind)
    assert items["powershell.language_mode"]["verdict"] == "ok"
    assert items["service.state"]["value"] == "Running"


def test_observe_changes_nothing_and_settles_a_switch(twin, target, session, recorder, kind):
    before = twin.real({"op": "get_sessions", "connections": True})
    answer = twin.real({"op": "observe"})
    assert answer["ok"], answer
    recorder.fact("observe", answer["facts"], kind)
    assert twin.real({"op": "get_sessions", "connections": True}) == before
    logins = answer["facts"]["persistent_logins"].get("value")
    recorder.fact("observe_wmi_persistent_logins", wmi_persistent_logins(logins), kind)
