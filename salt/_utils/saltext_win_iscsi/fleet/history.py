"""Remediation history: the policy runs the reactor (or ``iscsi.enforce``) started, from the
master's job cache.

Those runs carry job metadata ``{"saltext_iscsi": "reactor"}`` (the reactor SLS passes it
to the publish) or ``{"saltext_iscsi": "enforce"}`` (the runner passes it as a keyword
argument of ``state.apply``, since batches publish no metadata); ``jobs.list_jobs`` shows
both. The job cache keeps jobs for ``keep_jobs_seconds`` (24 h by default), so a longer
history needs a longer setting or an external job cache.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from typing import Any

from saltext_win_iscsi.fleet.report import VIOLATING, HostReport, Remediation, error_text

MARKER = "saltext_iscsi"
STARTERS = ("reactor", "enforce")
DEFAULT_KEEP_JOBS_SECONDS = 86400


def marker(job: dict) -> str | None:
    """Who started a job from ``jobs.list_jobs``, if it was one of ours."""
    metadata = job.get("Metadata")
    if not isinstance(metadata, dict) or MARKER not in metadata:
        metadata = {}
        for arg in job.get("Arguments") or []:
            if isinstance(arg, dict) and isinstance(arg.get("metadata"), dict):
                metadata = arg["metadata"]
    value = metadata.get(MARKER)
    return value if value in STARTERS else None


def cutoff_jid(days: float, utc: bool = False, now: datetime.datetime | None = None) -> str:
    """The smallest job id of the last ``days`` days (job ids are start times, in the
    master's local time unless ``utc_jid`` is set)."""
    if now is None:
        now = datetime.datetime.now(datetime.timezone.utc)
        if not utc:
            now = now.astimezone().replace(tzinfo=None)
    return (now - datetime.timedelta(days=days)).strftime("%Y%m%d%H%M%S%f")


def jid_time(jid: str) -> str:
    """A job id as a time people read: ``2025-11-25 23:24:05``."""
    try:
        return datetime.datetime.strptime(jid[:14], "%Y%m%d%H%M%S").strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return jid


def state_outcome(ret: Any) -> tuple[bool, dict[str, list[str]], str]:
    """``(result, changes by rule, comment)`` of a ``state.apply`` return.

    A return that is no state result (a render error list, an error string) counts as a
    failure with that text as the comment.
    """
    if not isinstance(ret, dict) or not all(isinstance(v, dict) for v in ret.values()):
        if isinstance(ret, list):
            return False, {}, "; ".join(error_text(item) for item in ret)
        return False, {}, error_text(ret) or "no state results"
    result, changes, comments = True, {}, []
    for key, chunk in sorted(ret.items(), key=lambda item: item[1].get("__run_num__", 0)):
        rule = str(chunk.get("__id__") or (key.split("_|-")[1] if "_|-" in key else key))
        if chunk.get("changes"):
            changes[rule] = [str(k) for k in chunk["changes"]]
        if chunk.get("result") is False:
            result = False
            comments.append(f"{rule}: {str(chunk.get('comment', '')).strip()}")
    return result, changes, "; ".join(comments)


def remediations(
    jobs: dict[str, dict],
    results: Callable[[str], dict],
    minions: Iterable[str],
    since_jid: str,
) -> list[Remediation]:
    """Our policy runs since ``since_jid`` on ``minions``.

    ``jobs``: ``jobs.list_jobs`` (jid -> job); ``results(jid)``: the per-minion returns of
    one job (the ``Result`` of ``jobs.list_job``).
    """
    wanted = set(minions)
    found = []
    for jid, job in jobs.items():
        started_by = marker(job)
        if started_by is None or str(jid) < since_jid or job.get("Function") != "state.apply":
            continue
        for minion, data in (results(jid) or {}).items():
            if minion not in wanted:
                continue
            ret = data.get("return") if isinstance(data, dict) and "return" in data else data
            result, changes, comment = state_outcome(ret)
            found.append(
                Remediation(
                    minion=minion,
                    jid=str(jid),
                    time=jid_time(str(jid)),
                    started_by=started_by,
                    result=result,
                    changes=changes,
                    comment=comment,
                )
            )
    return found


def limit_note(days: float, opts: dict) -> str | None:
    """Why the history may be shorter than asked, from the master's settings."""
    if opts.get("ext_job_cache") or opts.get("master_job_cache", "local_cache") != "local_cache":
        return None
    keep = int(opts.get("keep_jobs_seconds", DEFAULT_KEEP_JOBS_SECONDS))
    if keep <= 0 or days * 86400 <= keep:
        return None
    return (
        f"remediation history covers at most the last {keep / 3600:g} h, not {days:g} days: "
        f"the master keeps jobs for keep_jobs_seconds={keep}; raise it or use an external "
        "job cache (ext_job_cache) for a longer history"
    )


def enforce_rows(hosts: list[HostReport], results: dict[str, Any]) -> tuple[list, list]:
    """``(enforced, skipped)`` rows of ``iscsi.enforce``: each violating host with the policy
    run's result (``results``: minion -> state return), and every other host with why it
    was left alone."""
    enforced = []
    for host in (h for h in hosts if h.status == VIOLATING):
        if results.get(host.minion) not in (None, {}):
            ok, changes, comment = state_outcome(results[host.minion])
        else:
            ok, changes, comment = False, {}, "no answer: the policy run did not return"
        changed = "; ".join(f"{rule}: {', '.join(keys)}" for rule, keys in changes.items())
        enforced.append(
            {
                "minion": host.minion,
                "violations": len(host.violations),
                "result": ok,
                "changed": changed or "nothing",
                "comment": comment,
            }
        )
    skipped = [
        {"minion": h.minion, "status": h.status, "error": h.error}
        for h in hosts
        if h.status != VIOLATING
    ]
    return enforced, skipped
