"""The report's pure code: reading answers, rows for Salt's outputters, history, asking."""

from __future__ import annotations

import datetime
import json
import re

import pytest
import salt.output.table_out
import salt.utils.yaml

from saltext_win_iscsi.errors import IscsiError, IscsiInputError
from saltext_win_iscsi.fleet import ask as fleet
from saltext_win_iscsi.fleet import history, report
from tests.support import fleet_samples as samples
from tests.support.fleet_samples import ABSENT, NP, OLD, SID, T

ROLES = {"m-ok": "compliant", "m-bad": "violating", "m-err": "faulty", "m-gone": "stopped"}


# --- reading what minions answered ------------------------------------------------------


def test_error_text_takes_the_errors_own_words():
    assert report.error_text(samples.SERVICE_STOPPED).startswith(
        "iSCSI: 'get_sessions' failed: The Microsoft iSCSI Initiator Service is not running."
    )
    assert report.error_text(samples.MALFORMED).startswith(
        "pillar iscsi:policy:not_persistent item 1 must be a mapping"
    )
    traceback = (
        "The minion function caused an exception: Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n    raise IscsiError("a\\nb")\n'
        "saltext_win_iscsi.errors.IscsiError: PowerShell timed out\nafter 10 s\n"
    )
    assert report.error_text(traceback) == "PowerShell timed out\nafter 10 s"
    assert report.error_text("'iscsi.check_policy' is not available.") == (
        "iscsi.check_policy is not available on this minion: the extension is not loaded "
        "there (saltutil.sync_all, or install the wheel)"
    )


def test_each_kind_of_host():
    fleet_report = samples.fleet(ROLES)
    hosts = {h.minion: h for h in fleet_report.hosts}

    ok = hosts["m-ok"]
    assert (ok.status, ok.compliant, ok.error, ok.violations) == ("compliant", True, "", [])
    assert ok.rules == [NP, ABSENT] and ok.pending == {}

    bad = hosts["m-bad"]
    assert bad.status == "violating" and bad.compliant is False and bad.error == ""
    assert [(v.rule, v.kind, v.target, v.session) for v in bad.violations][:1] == [
        (NP, "session", T, SID.format(1))
    ]
    login = bad.violations[3]
    assert (login.kind, login.portal, login.detail) == (
        "persistent_login",
        "10.0.9.9:3260",
        "1 entry",
    )
    assert bad.violations[4].rule == ABSENT and bad.violations[4].target == OLD
    assert bad.pending[NP].startswith("Would make 3 session(s)")

    err = hosts["m-err"]
    assert err.status == "error" and err.compliant is False and not err.violations
    # Said once, in the check's words, although every rule of the test run failed too.
    assert err.error == report.error_text(samples.SERVICE_STOPPED)
    assert err.rules == [NP, ABSENT]

    gone = hosts["m-gone"]
    assert gone.status == "no answer" and gone.compliant is False
    assert gone.error == "no answer: the minion did not return within the timeout"


def test_malformed_policy_is_an_error_naming_the_key():
    host = samples.fleet({"m": "malformed"}).hosts[0]
    assert host.status == "error"
    assert host.error.startswith("pillar iscsi:policy:not_persistent item 1 must be a mapping")
    assert host.rules == []  # the malformed marker is no rule


def test_a_missing_answer_to_one_question_is_an_error():
    answers = samples.answers({"m": "compliant"})
    del answers["test"]["m"]
    host = report.host_report("m", answers)
    assert host.status == "error" and host.error == "no answer to the test-mode run"
    answers = samples.answers({"m": "violating"})
    del answers["check"]["m"]
    host = report.host_report("m", answers)
    assert host.status == "error" and host.error == "no answer to the policy check"
    assert host.pending  # what the test run said is kept


def test_a_failed_test_run_alone_is_an_error():
    answers = samples.answers({"m": "compliant"})
    answers["test"]["m"] = ["Rendering SLS 'base:iscsi.policy' failed: boom"]
    host = report.host_report("m", answers)
    assert host.status == "error"
    assert host.error == (
        "the iscsi.policy formula did not render: Rendering SLS 'base:iscsi.policy' failed: boom"
    )


def test_the_inventory_adds_counts():
    answers = samples.answers({"m": "violating"})
    answers["sessions"] = {"m": [samples.persistent_session(n) for n in (1, 2, 3)]}
    answers["logins"] = {"m": [{"TargetName": T}] * 4}
    host = report.host_report("m", answers)
    assert (host.persistent_sessions, host.persistent_logins) == (3, 4)
    answers["logins"] = {"m": samples.SERVICE_STOPPED}
    host = report.host_report("m", answers)
    assert host.status == "error" and "Initiator Service is not running" in host.error


# --- the report as rows -----------------------------------------------------------------


def test_hosts_sorted_worst_first_and_totals():
    fleet_report = samples.fleet(
        {**ROLES, "a-ok": "compliant"}, remediation=[samples.remediation("m-ok")]
    )
    assert [h.minion for h in fleet_report.hosts] == ["m-bad", "m-err", "m-gone", "a-ok", "m-ok"]
    assert fleet_report.totals == {
        "hosts": 5,
        "violating": 1,
        "error": 1,
        "no answer": 1,
        "compliant": 2,
        "violations": 5,
        "remediation runs": 1,
        "hosts remediated": 1,
    }


def test_return_rows_are_uniform_for_salts_outputters():
    fleet_report = samples.fleet(ROLES, remediation=[samples.remediation("m-ok")])
    ret = fleet_report.as_return()
    assert set(ret) == {"hosts", "violations", "remediation", "totals"}
    for rows in ret.values():
        assert isinstance(rows, list)
        assert len({tuple(sorted(row)) for row in rows}) <= 1  # same columns in every row
        assert all(not isinstance(v, (dict, list)) for row in rows for v in row.values())
    assert ret["hosts"][0] == {
        "minion": "m-bad",
        "status": "violating",
        "compliant": False,
        "violations": 5,
        "remediations": 0,
        "error": "",
    }
    assert ret["remediation"] == [
        {
            "minion": "m-ok",
            "time": "2025-11-25 10:15:00",
            "jid": "20251125101500123456",
            "started by": "reactor",
            "result": True,
            "changed": f"{NP}: {SID.format(7)}",
        }
    ]
    table = salt.output.table_out.output(ret, opts={"color": False})
    for minion in ROLES:
        assert re.search(rf"\|\s+{minion}\s+\|", table), table
    assert "Started By" in table and "Remediation Runs" in table
    assert salt.utils.yaml.safe_load(salt.utils.yaml.safe_dump(ret)) == ret
    assert json.loads(json.dumps(ret)) == ret


def test_inventory_columns_only_when_asked():
    ret = samples.fleet(ROLES, inventory=True).as_return()
    assert {"persistent sessions", "persistent logins"} <= set(ret["hosts"][0])
    ret = samples.fleet(ROLES).as_return()
    assert "persistent sessions" not in ret["hosts"][0]


# --- remediation history ----------------------------------------------------------------


def job(fun="state.apply", metadata=None, kwarg_metadata=None) -> dict:
    found = {"Function": fun, "Arguments": [], "Target": "x", "User": "root"}
    if metadata is not None:
        found["Metadata"] = metadata
    if kwarg_metadata is not None:
        found["Arguments"] = [
            "iscsi.policy",
            {"__kwarg__": True, "queue": True, "metadata": kwarg_metadata},
        ]
    return found


def test_marker_from_publish_metadata_or_the_keyword_argument():
    assert history.marker(job(metadata={"saltext_iscsi": "reactor"})) == "reactor"
    assert history.marker(job(kwarg_metadata={"saltext_iscsi": "enforce"})) == "enforce"
    assert history.marker(job(metadata={"other": "x"})) is None
    assert history.marker(job(metadata={"saltext_iscsi": "somebody"})) is None
    assert history.marker(job()) is None


def test_state_outcome():
    ran = samples.state_run(
        samples.chunk(NP, True, "Made 1 session(s) non-persistent", 0, {SID.format(1): {}}),
        samples.chunk(ABSENT, False, "Failed: access denied", 1),
    )
    assert history.state_outcome(ran) == (
        False,
        {NP: [SID.format(1)]},
        f"{ABSENT}: Failed: access denied",
    )
    assert history.state_outcome(["Rendering failed"]) == (False, {}, "Rendering failed")
    assert history.state_outcome("ERROR: boom") == (False, {}, "boom")


def test_remediations_of_the_wanted_minions_and_days():
    changed = samples.state_run(
        samples.chunk(NP, True, "Made 1", 0, {SID.format(1): {}}),
        samples.chunk(ABSENT, True, "nothing", 1),
    )
    jobs = {
        "20251125100000000001": job(metadata={"saltext_iscsi": "reactor"}),
        "20251125110000000002": job(kwarg_metadata={"saltext_iscsi": "enforce"}),
        "20251101000000000003": job(metadata={"saltext_iscsi": "reactor"}),  # too old
        "20251125120000000004": job(),  # someone's own state run
        "20251125130000000005": job(fun="test.ping", metadata={"saltext_iscsi": "reactor"}),
    }
    results = {
        "20251125100000000001": {"m1": {"return": changed}, "other": {"return": changed}},
        "20251125110000000002": {"m2": {"return": "ERROR: boom", "retcode": 1}},
    }
    found = history.remediations(jobs, results.get, ["m1", "m2"], "20251120000000000000")
    assert [(r.minion, r.started_by, r.result, r.changes, r.time) for r in found] == [
        ("m1", "reactor", True, {NP: [SID.format(1)]}, "2025-11-25 10:00:00"),
        ("m2", "enforce", False, {}, "2025-11-25 11:00:00"),
    ]


def test_cutoff_and_the_job_cache_limit():
    now = datetime.datetime(2025, 11, 25, 10, 0, 0)
    assert history.cutoff_jid(7, now=now) == "20251118100000000000"
    assert history.cutoff_jid(0.5, now=now) == "20251124220000000000"
    note = history.limit_note(7, {"keep_jobs_seconds": 86400, "master_job_cache": "local_cache"})
    assert note.startswith("remediation history covers at most the last 24 h, not 7 days")
    assert history.limit_note(1, {"keep_jobs_seconds": 86400}) is None
    assert history.limit_note(7, {"keep_jobs_seconds": 0}) is None  # kept for ever
    assert history.limit_note(7, {"ext_job_cache": "redis"}) is None
    assert history.limit_note(7, {"master_job_cache": "mysql"}) is None


# --- asking the fleet -------------------------------------------------------------------


class FakeClient:
    """LocalClient's part the report uses: publishes are counted, returns come in
    interleaved as Salt's non-blocking generators yield them."""

    def __init__(self, minions, answering, returns):
        self.minions, self.answering, self.returns = minions, answering, returns
        self.published = []

    def gather_minions(self, tgt, tgt_type):
        return list(self.minions)

    def run_job(self, tgt, fun, arg, tgt_type, listen):
        jid = f"2025112510000000000{len(self.published)}"
        self.published.append((jid, fun, arg, tgt, tgt_type))
        return {"jid": jid, "minions": list(self.minions)}

    def get_iter_returns(self, jid, minions, timeout, tgt, tgt_type, block):
        assert block is False and minions == set(self.minions)
        fun = next(p[1] for p in self.published if p[0] == jid)
        for minion in self.answering:
            yield None
            yield {minion: {"ret": self.returns[fun](minion), "retcode": 0, "jid": jid}}
        yield {"other-minion-not-ours": {"failed": True}}


@pytest.mark.parametrize("count", [3, 30])
def test_one_job_per_question_whatever_the_number_of_minions(count):
    minions = [f"m{i}" for i in range(count)]
    client = FakeClient(
        minions,
        minions[:-1],  # the last one does not answer
        {"iscsi.check_policy": lambda m: samples.check(), "state.apply": lambda m: {}},
    )
    answers = fleet.ask(client, fleet.REPORT, "*", "glob", 5)
    assert [p[1] for p in client.published] == ["iscsi.check_policy", "state.apply"]
    assert answers.expected == sorted(minions)
    assert set(answers.returns["check"]) == set(minions[:-1])
    assert [j["answered"] for j in answers.jobs] == [count - 1, count - 1]
    assert all(j["expected"] == count for j in answers.jobs)


def test_nothing_is_published_when_no_minion_matches():
    client = FakeClient([], [], {})
    answers = fleet.ask(client, fleet.REPORT, "nomatch*", "glob", 5)
    assert answers.expected == [] and client.published == []


def test_a_refused_publish_is_an_error():
    client = FakeClient(["m"], [], {})
    client.run_job = lambda *a, **k: {}
    with pytest.raises(IscsiError, match="the master did not publish 'check'"):
        fleet.ask(client, fleet.REPORT, "m", "list", 5)


def test_argument_checks():
    assert fleet.check_target("a, b", "list") == (["a", "b"], "list")
    assert fleet.check_target("win*", "glob") == ("win*", "glob")
    assert fleet.check_target("G@os:Windows and win*", "compound")[1] == "compound"
    for tgt, tgt_type in [("", "glob"), (["a"], "glob"), ("x", "regex"), (None, "glob")]:
        with pytest.raises(IscsiInputError):
            fleet.check_target(tgt, tgt_type)
    assert fleet.check_batch("10%") == "10%" and fleet.check_batch(3) == "3"
    for bad in ("0", "-1", "10%%", "x", True, "1.5"):
        with pytest.raises(IscsiInputError):
            fleet.check_batch(bad)
    assert fleet.check_timeout(2) == 2.0
    for bad in (0, -1, "5", True):
        with pytest.raises(IscsiInputError):
            fleet.check_timeout(bad)


def test_waiting_for_returns_does_not_spin(monkeypatch):
    """Salt's non-blocking generators never sleep; while no question has anything new the
    loop waits IDLE_WAIT between passes instead of spinning a core."""
    client = FakeClient(["m"], ["m"], {"iscsi.check_policy": lambda m: {}, "state.apply": dict})
    silent_passes = 50

    def slow_returns(jid, minions, timeout, tgt, tgt_type, block):
        for _ in range(silent_passes):
            yield None
        yield {"m": {"ret": {}, "retcode": 0, "jid": jid}}

    client.get_iter_returns = slow_returns
    sleeps = []
    monkeypatch.setattr(fleet.time, "sleep", sleeps.append)
    answers = fleet.ask(client, fleet.REPORT, "m", "list", 5)
    assert set(answers.returns["check"]) == {"m"}
    # one wait per pass in which both questions were silent, none once both answered
    assert sleeps == [fleet.IDLE_WAIT] * silent_passes


def test_readiness_violations_have_their_own_section():
    """A host whose iSCSI service is stopped and whose policy has readiness rules answers
    the check with its readiness violation: violating (fixable), not an error."""
    problem = "service.state is 'Stopped': the Microsoft iSCSI Initiator Service is not running"
    check = {
        "compliant": False,
        "rules": 1,
        "violations": [
            {
                "rule": "iscsi-policy-readiness",
                "kind": "readiness",
                "target": "",
                "item": "service.state",
                "problem": problem,
            }
        ],
        "risks": [],
        "unchecked": "iSCSI: 'get_sessions' failed: not running",
    }
    built = report.build(
        "*", "now", ["m-1", "m-2"], {"check": {"m-1": check, "m-2": samples.check()}}
    )
    host = next(h for h in built.hosts if h.minion == "m-1")
    assert host.status == "violating" and host.error == ""
    assert [v.detail for v in host.readiness] == [problem]
    assert host.risks == ["sessions not checked: iSCSI: 'get_sessions' failed: not running"]
    ret = built.as_return()
    assert ret["readiness"] == [{"minion": "m-1", "problem": problem}]

    from saltext_win_iscsi.fleet import html, junit

    page = html.render(built)
    assert "<h2>Readiness</h2>" in page and "is not running" in page
    xml = junit.render(built)
    assert 'name="iscsi-policy-readiness"' in xml and "readiness (service.state is" in xml
