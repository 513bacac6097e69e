"""Asking the fleet: one job per question, whatever the number of minions.

The runner hands in Salt's ``LocalClient``; this module publishes each question once to
the whole target, collects the returns of all questions at the same time (so a minion that
is down costs one timeout, not one per question), and tells who was expected (the
publish's ``minions``) from who answered.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from typing import Any

from saltext_win_iscsi.errors import IscsiError, IscsiInputError


@dataclass(frozen=True)
class Question:
    name: str
    fun: str
    arg: list


# One function per job: a compound job (several functions in one) makes every state run
# that starts on the minion meanwhile fail (saltutil.is_running matches its list of
# functions as a string: saltstack/salt#59141, still so in 3008.4), and the reactor's
# remediation may start at any time.
CHECK = Question("check", "iscsi.check_policy", [])
SESSIONS = Question("sessions", "iscsi.get_sessions", ["is_persistent=True"])
LOGINS = Question("logins", "iscsi.get_persistent_logins", [])
# The policy formula in test mode: the rules and what enforcing them would change. Queued
# behind a state run in progress (the reactor's, say) instead of failing.
TEST_RUN = Question("test", "state.apply", ["iscsi.policy", "test=True", "queue=True"])
REPORT = [CHECK, TEST_RUN]
# Asked only for an inventory: each job is one more process on every minion (on Windows a
# new Python process, a second or more of CPU), so the plain report asks two questions.
INVENTORY = [SESSIONS, LOGINS]

TARGET_TYPES = (
    "glob",
    "pcre",
    "list",
    "grain",
    "grain_pcre",
    "pillar",
    "pillar_pcre",
    "pillar_exact",
    "compound",
    "nodegroup",
    "ipcidr",
)
_BATCH = re.compile(r"^[1-9][0-9]*%?$")
# Seconds to wait when no question had anything new.
IDLE_WAIT = 0.02


@dataclass
class Answers:
    expected: list[str]
    returns: dict[str, dict[str, Any]] = field(default_factory=dict)  # question -> minion -> ret
    jobs: list[dict] = field(default_factory=list)


def check_target(tgt: Any, tgt_type: Any) -> tuple[str | list[str], str]:
    if tgt_type not in TARGET_TYPES:
        raise IscsiInputError(
            f"tgt_type must be one of {', '.join(TARGET_TYPES)}, not {tgt_type!r}"
        )
    if tgt_type == "list" and isinstance(tgt, str):
        tgt = [t.strip() for t in tgt.split(",") if t.strip()]
    if isinstance(tgt, (list, tuple)):
        if tgt_type != "list" or not tgt or not all(isinstance(t, str) and t for t in tgt):
            raise IscsiInputError("tgt must be a non-empty target (a list only with tgt_type=list)")
        return list(tgt), tgt_type
    if not isinstance(tgt, str) or not tgt.strip():
        raise IscsiInputError("tgt must be a non-empty target, e.g. tgt='*'")
    return tgt, tgt_type


def check_timeout(timeout: Any) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise IscsiInputError(f"timeout must be a positive number of seconds, not {timeout!r}")
    return float(timeout)


def check_batch(batch: Any) -> str:
    text = str(batch).strip()
    if isinstance(batch, bool) or not _BATCH.match(text):
        raise IscsiInputError(f"batch must be a count (10) or a percentage (10%), not {batch!r}")
    return text


def ask(
    client: Any,
    questions: list[Question],
    tgt: str | list[str],
    tgt_type: str,
    timeout: float,
) -> Answers:
    """Publish each question once to the target; collect all their returns together."""
    if not client.gather_minions(tgt, tgt_type):
        return Answers(expected=[], returns={q.name: {} for q in questions})
    published = []
    for question in questions:
        pub = client.run_job(tgt, question.fun, question.arg, tgt_type=tgt_type, listen=True)
        if not pub or not pub.get("jid"):
            raise IscsiError(
                f"the master did not publish {question.name!r} to {tgt!r} "
                "(no minion matched, or the master refused the job)"
            )
        published.append((question, pub))
    expected = sorted(set(itertools.chain.from_iterable(p["minions"] for _, p in published)))
    answers = Answers(expected=expected, returns={q.name: {} for q in questions})
    # Salt's own waiting (it asks minions that are late whether they still run the job),
    # for all jobs at once: each generator yields None when it has nothing new.
    waiting = {
        question.name: client.get_iter_returns(
            pub["jid"],
            set(pub["minions"]),
            timeout=timeout,
            tgt=tgt,
            tgt_type=tgt_type,
            block=False,
        )
        for question, pub in published
    }
    while waiting:
        idle = True
        for name, returns in list(waiting.items()):
            try:
                item = next(returns)
            except StopIteration:
                del waiting[name]
                continue
            idle = idle and not item
            for minion, data in (item or {}).items():
                if isinstance(data, dict) and "ret" in data and not data.get("failed"):
                    answers.returns[name][minion] = data["ret"]
        if idle and waiting:
            # Non-blocking iterators never sleep: without this the runner spins a core.
            time.sleep(IDLE_WAIT)
    answers.jobs = [
        {
            "question": question.name,
            "function": question.fun,
            "jid": pub["jid"],
            "expected": len(pub["minions"]),
            "answered": len(answers.returns[question.name]),
        }
        for question, pub in published
    ]
    return answers


def apply_policy(
    client: Any, minions: list[str], batch: str, timeout: float, metadata: dict
) -> dict[str, Any]:
    """``state.apply iscsi.policy`` on ``minions`` in batches (Salt's batch runner);
    minion -> its return (``{}`` when it did not return)."""
    results: dict[str, Any] = {}
    for item in client.cmd_batch(
        minions,
        "state.apply",
        arg=["iscsi.policy"],
        tgt_type="list",
        kwarg={"queue": True, "metadata": metadata},
        batch=batch,
        timeout=timeout,
    ):
        if isinstance(item, dict):
            results.update(item)
    return results
