"""The fleet report and enforcement against a real master and minions (see conftest.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import salt.utils.yaml

from tests.conftest import REPO_ROOT
from tests.integration.report.conftest import (
    ABSENT_TARGET,
    OFFLINE,
    RULES,
    TIMEOUT,
    shape,
    wait_for,
)
from tests.support import events
from tests.support.report_tools import read_page
from tests.support.simhost.model import SEED_TARGET

QUESTIONS = ("iscsi.check_policy", "state.apply")
SCREENSHOT = REPO_ROOT / "docs" / "report-screenshot.png"


# salt_run (the factory's salt-run) passes its own --timeout, which becomes the runner's
# default: the tests say timeout= where a minion is down.


@pytest.fixture
def hosts(fleet, fleet_hosts):
    """Every host as conftest describes it, before each test."""
    shape(fleet_hosts)
    return fleet_hosts


def published(event_listener, master, since: float) -> list:
    """The jobs the master published since ``since`` (their salt/job/<jid>/new events), once
    the listener has every event fired so far (tests/support/events.py)."""
    events.flush(event_listener, master)
    jobs = event_listener.get_events([(master.id, "salt/job/*/new")], after_time=since)
    return sorted(jobs, key=lambda e: e.stamp)


def asked(events: list) -> list[str]:
    """The functions of the jobs the report published itself: without saltutil.find_job,
    which Salt sends to minions that are late (one per question and wait, to all of them)."""
    return sorted(e.data["fun"] for e in events if e.data["fun"] != "saltutil.find_job")


def salt_run_cli(master, *args: str, out: str = "yaml") -> subprocess.CompletedProcess:
    """salt-run as a person types it, with one of Salt's outputters."""
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("salt-run")),
            "-c",
            str(master.config_dir),
            f"--out={out}",
            "--log-level=quiet",
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def by_minion(ret: dict) -> dict:
    return {row["minion"]: row for row in ret["hosts"]}


def test_the_runner_runs_the_library_synced_to_the_master(salt_run, fleet_master):
    ret = salt_run.run("iscsi.version")
    assert ret.returncode == 0, ret
    library = Path(ret.data["library"])
    # file_roots: saltutil.sync_utils put it in the master's extension modules.
    assert library.parts[-3:] == ("extmods", "utils", "saltext_win_iscsi"), library
    assert str(library).startswith(str(fleet_master.config["root_dir"]))
    # Arguments are checked before the fleet is asked anything. (salt-run exits 0 after
    # "Passed invalid arguments": Salt's runner client, not ours.)
    ret = salt_run.run("iscsi.report", "html=/nonexistent/report.html")
    assert "html: the folder '/nonexistent' does not exist" in ret.stdout + ret.stderr
    ret = salt_run.run("iscsi.enforce", "batch=0")
    assert "batch must be a count (10) or a percentage (10%), not 0" in ret.stdout + ret.stderr


def test_reactor_runs_are_the_remediation_history(
    hosts, ids, salt_run, fleet_master, event_listener
):
    host = hosts["compliant"]
    by_hand = host.sessions()[0]["SessionIdentifier"]
    host.register_by_hand(by_hand)
    since = time.time()
    minion = ids["compliant"]
    # As the minion's beacon would (the reactor checks tag and id, nothing else counts).
    sent = salt_run.run(
        "event.send", f"salt/beacon/{minion}/iscsi/violation", f'data={{"id": "{minion}"}}'
    )
    assert sent.returncode == 0, sent

    def returned():
        """the reactor's policy run returned"""
        events = event_listener.get_events(
            [(fleet_master.id, f"salt/job/*/ret/{minion}")], after_time=since
        )
        return [e for e in events if e.data.get("fun") == "state.apply"]

    wait_for(returned)
    assert by_hand not in host.persistent_ids()
    jid = returned()[0].data["jid"]
    job = salt_run.run("jobs.list_job", jid)
    # The reactor's local.state.apply passed the job metadata through to the publish.
    assert job.data["Metadata"] == {"saltext_iscsi": "reactor"}, job.data

    ret = salt_run.run("iscsi.report", f"tgt={minion}", "tgt_type=list", "days=1")
    assert ret.returncode == 0, ret
    assert ret.data["remediation"] == [
        {
            "minion": minion,
            "time": ret.data["remediation"][0]["time"],
            "jid": jid,
            "started by": "reactor",
            "result": True,
            "changed": f"{RULES[0]}: {by_hand}",
        }
    ]
    assert by_minion(ret.data)[minion]["status"] == "compliant"
    assert "notes" not in ret.data  # one day fits in the job cache's 24 h


def test_report_shows_every_host(
    hosts, ids, fleet_master, event_listener, junit_validate, browser, tmp_path
):
    junit, page = tmp_path / "report.xml", tmp_path / "report.html"
    since = time.time()
    started = time.monotonic()
    out = salt_run_cli(fleet_master, "iscsi.report", f"junit={junit}", f"html={page}")
    took = time.monotonic() - started
    assert out.returncode == 0, out.stderr
    print(f"report of 4 minions (one down) in {took:.1f} s:\n{out.stdout}")
    ret = salt.utils.yaml.safe_load(out.stdout)
    hosts_ = by_minion(ret)

    assert [row["minion"] for row in ret["hosts"]] == [
        ids["violating"],
        ids["faulty"],
        ids["stopped"],
        ids["compliant"],
    ]
    assert {m: (r["status"], r["compliant"]) for m, r in hosts_.items()} == {
        ids["compliant"]: ("compliant", True),
        ids["violating"]: ("violating", False),
        ids["faulty"]: ("error", False),
        ids["stopped"]: ("no answer", False),
    }
    assert hosts_[ids["violating"]]["violations"] == 5
    assert hosts_[ids["faulty"]]["error"].startswith(
        "iSCSI: 'get_sessions' failed: The Microsoft iSCSI Initiator Service is not running."
    )
    assert hosts_[ids["stopped"]]["error"].startswith("no answer")
    violations = [
        (v["rule"], v["kind"], v["target"], v["session"], v["portal"], v["detail"])
        for v in ret["violations"]
    ]
    seed = sorted(hosts["violating"].persistent_ids())
    assert violations == [
        *[(RULES[0], "session", SEED_TARGET, sid, "10.0.0.5:3260", "") for sid in seed],
        (RULES[0], "persistent_login", OFFLINE, "", "10.0.9.9:3260", "1 entry"),
        # Not persistent, so never in the inventory: its portal comes from the check itself.
        (RULES[1], "session", ABSENT_TARGET, violations[4][3], "10.0.7.1:3260", ""),
    ]
    totals = ret["totals"][0]
    assert {k: totals[k] for k in ("hosts", "compliant", "violating", "error", "no answer")} == {
        "hosts": 4,
        "compliant": 1,
        "violating": 1,
        "error": 1,
        "no answer": 1,
    }
    assert totals["violations"] == 5
    assert "keep_jobs_seconds=86400" in ret["notes"][0]  # 7 days asked, 24 h kept

    # Cost: one job per question, to all four minions at once. Besides, Salt asks the
    # minions that are late (the stopped one at least) whether they still run a job: one
    # saltutil.find_job per question and wait, to the list of late minions.
    jobs = published(event_listener, fleet_master, since)
    questions = [e for e in jobs if e.data["fun"] in QUESTIONS]
    assert len(questions) == 2 and all(e.data["tgt"] == "*" for e in questions)
    others = [e for e in jobs if e not in questions]
    assert others and all(e.data["fun"] == "saltutil.find_job" for e in others)
    assert all(ids["stopped"] in e.data["tgt"] for e in others)
    print(
        f"jobs published: {len(questions)} questions + {len(others)} find_job to "
        f"{[len(e.data['tgt']) for e in others]} late minion(s)"
    )

    # The runner job's success (in its return event) says that not every host complies.
    # The event bus is asynchronous: the event may reach the listener after salt-run exits.
    def report_runs():
        """the runner's return event"""
        runs = event_listener.get_events([(fleet_master.id, "salt/run/*/ret")], after_time=since)
        return [e for e in runs if e.data.get("fun") == "runner.iscsi.report"]

    wait_for(report_runs, timeout=30)
    (run,) = report_runs()
    assert run.data["success"] is False

    junit_validate(str(junit))
    dom = browser.dom(page)
    read = read_page(dom)
    assert [row[0] for row in read.rows] == [row["minion"] for row in ret["hosts"]]
    assert [row[1] for row in read.rows] == [row["status"] for row in ret["hosts"]]
    assert read.texts["rendered"] == (
        "4 hosts rendered: 1 violating, 1 error, 1 no answer, 1 compliant"
    )
    shot = browser.screenshot(page, tmp_path / "report.png")
    if os.environ.get("ISCSI_SAVE_SCREENSHOT") == "1":
        shutil.copy(shot, SCREENSHOT)


def test_jobs_do_not_grow_with_the_number_of_minions(ids, hosts, fleet_master, event_listener):
    live = [ids[role] for role in ("compliant", "violating", "faulty")]
    counts = {}
    for minions in (live[:2], live):
        since = time.time()
        out = salt_run_cli(
            fleet_master, "iscsi.report", f"tgt={','.join(minions)}", "tgt_type=list", out="table"
        )
        assert out.returncode == 0, out.stderr
        counts[len(minions)] = asked(published(event_listener, fleet_master, since))
        for minion in minions:  # a row of the hosts table
            assert re.search(rf"\|\s+{minion}\s+\|", out.stdout), out.stdout
    print("table output:\n" + out.stdout)
    print(f"jobs published per report: {counts}")
    assert counts[2] == counts[3] == sorted(QUESTIONS)

    # The inventory asks two more questions, still one job each.
    since = time.time()
    out = salt_run_cli(
        fleet_master,
        "iscsi.report",
        f"tgt={','.join(live)}",
        "tgt_type=list",
        "inventory=True",
        "timeout=60",  # every minion here answers: no wait, but room on a busy machine
    )
    assert out.returncode == 0, out.stderr
    ret = salt.utils.yaml.safe_load(out.stdout)
    funs = asked(published(event_listener, fleet_master, since))
    assert funs == sorted([*QUESTIONS, "iscsi.get_sessions", "iscsi.get_persistent_logins"])
    rows = by_minion(ret)
    counted = {m: (r["persistent sessions"], r["persistent logins"]) for m, r in rows.items()}
    assert counted == {
        ids["compliant"]: (1, 1),  # the allowed database session
        ids["violating"]: (3, 4),  # the seed's three, and the login of a target that is down
        ids["faulty"]: (None, None),
    }
    portals = {v["session"]: v["portal"] for v in ret["violations"] if v["kind"] == "session"}
    assert [portals[sid] for sid in sorted(hosts["violating"].persistent_ids())] == [
        "10.0.0.5:3260"
    ] * 3


def test_a_malformed_policy_is_reported_as_the_hosts_error(
    hosts, ids, fleet_trees, fleet_master, salt_run
):
    minion = ids["compliant"]
    pillar = fleet_trees.pillar
    (pillar / "broken.sls").write_text("iscsi:\n  policy:\n    not_persistent: oops\n")
    (pillar / "top.sls").write_text(
        f"base:\n  '* and not {minion}':\n    - match: compound\n    - iscsi\n"
        f"  '{minion}':\n    - broken\n"
    )
    salt = fleet_master.salt_cli(timeout=60)
    try:
        assert salt.run("saltutil.refresh_pillar", "wait=True", minion_tgt=minion).returncode == 0
        ret = salt_run.run("iscsi.report", f"tgt={minion}", "tgt_type=list", "days=1")
        row = by_minion(ret.data)[minion]
        assert row["status"] == "error"
        assert row["error"] == (
            'pillar iscsi:policy:not_persistent must be a list of rules, not: "oops"'
        )
    finally:
        fleet_trees.reset_pillar_top()
        assert salt.run("saltutil.refresh_pillar", "wait=True", minion_tgt=minion).returncode == 0


def test_enforce_fixes_the_violating_hosts_only_and_the_next_report_says_so(
    hosts, ids, fleet_master, salt_run, event_listener
):
    # Two violating hosts, so that batch=1 makes two batches.
    again = hosts["compliant"].sessions()[0]["SessionIdentifier"]
    hosts["compliant"].register_by_hand(again)
    faulty_before = hosts["faulty"].persistent_ids()
    since = time.time()
    ret = salt_run.run("iscsi.enforce", "batch=1", f"timeout={TIMEOUT}")
    assert ret.returncode == 0, ret
    print("enforce:", ret.data)
    enforced = {row["minion"]: row for row in ret.data["enforced"]}
    assert set(enforced) == {ids["compliant"], ids["violating"]}
    assert all(row["result"] is True for row in enforced.values())
    assert enforced[ids["compliant"]]["changed"] == f"{RULES[0]}: {again}"
    changed = enforced[ids["violating"]]["changed"]
    assert changed.startswith(f"{RULES[0]}: ")
    assert f"persistent login {OFFLINE} @ 10.0.9.9:3260" in changed
    assert {row["minion"]: row["status"] for row in ret.data["skipped"]} == {
        ids["faulty"]: "error",
        ids["stopped"]: "no answer",
    }
    # One policy run per batch of one minion, and nothing for the others.
    runs = [
        e for e in published(event_listener, fleet_master, since) if e.data["fun"] == "state.apply"
    ]
    assert sorted(tuple(e.data["tgt"]) for e in runs) == sorted(
        [(ids["compliant"],), (ids["violating"],)]
    )
    assert hosts["violating"].persistent_ids() == set()
    assert hosts["faulty"].persistent_ids() == faulty_before  # an error host is left alone

    live = ",".join(ids[r] for r in ("compliant", "violating", "faulty"))
    report = salt_run.run("iscsi.report", f"tgt={live}", "tgt_type=list", "days=1")
    statuses = {m: r["status"] for m, r in by_minion(report.data).items()}
    assert statuses == {
        ids["compliant"]: "compliant",
        ids["violating"]: "compliant",
        ids["faulty"]: "error",
    }
    enforce_runs = [r for r in report.data["remediation"] if r["started by"] == "enforce"]
    assert {r["minion"] for r in enforce_runs} >= {ids["compliant"], ids["violating"]}

    # Once the faulty host's service runs again, enforcing fixes it too.
    hosts["faulty"].clear_faults()
    ret = salt_run.run("iscsi.enforce", f"tgt={ids['faulty']}", "tgt_type=list")
    assert [row["minion"] for row in ret.data["enforced"]] == [ids["faulty"]]
    report = salt_run.run("iscsi.report", f"tgt={live}", "tgt_type=list", "days=1")
    assert report.data["totals"][0]["compliant"] == 3, report.data
