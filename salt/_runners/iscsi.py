"""
Fleet compliance of the iSCSI persistence policy: which hosts break it, what was
remediated, and enforcing it where it is broken.

:depends: the ``saltext_win_iscsi`` library on the master. file_roots users:
    ``salt-run saltutil.sync_utils`` and ``salt-run saltutil.sync_runners``; the wheel
    brings both.

Each question to the fleet is ONE job to the whole target, whatever its size: the policy
check (``iscsi.check_policy``) and the policy formula in test mode (``state.apply
iscsi.policy test=True``); ``inventory=True`` adds the persistent sessions and logins (two
more). Not one compound job: a compound job makes state runs that start meanwhile on the
minion fail (saltstack/salt#59141). Minions the master expected but that did not answer are
reported as ``no answer``, never left out.

The remediation history comes from the master's job cache: policy runs started by the
reactor (``salt://reactor/iscsi_enforce.sls`` marks them with job metadata
``saltext_iscsi: reactor``) or by ``iscsi.enforce``. The default job cache keeps jobs for
``keep_jobs_seconds`` (24 h); the report says so when ``days`` asks for more.
"""

import datetime
import time

import salt.client
from salt.exceptions import CommandExecutionError, SaltClientError

try:
    import saltext_win_iscsi

    saltext_win_iscsi = saltext_win_iscsi.current()
    from saltext_win_iscsi.errors import IscsiInputError
    from saltext_win_iscsi.fleet import ask as fleet
    from saltext_win_iscsi.fleet import files, history
    from saltext_win_iscsi.fleet import html as report_html
    from saltext_win_iscsi.fleet import junit as report_junit
    from saltext_win_iscsi.fleet import report as fleet_report

    LIBRARY_ERROR = None
except ImportError as exc:  # the library was not synced (salt/_utils) or installed
    LIBRARY_ERROR = str(exc)

__virtualname__ = "iscsi"

ENFORCE_METADATA = {history.MARKER: "enforce"} if LIBRARY_ERROR is None else {}


def __virtual__():
    if LIBRARY_ERROR is not None:
        return (
            False,
            f"iscsi: cannot import the saltext_win_iscsi library ({LIBRARY_ERROR}); run "
            "salt-run saltutil.sync_utils and saltutil.sync_runners, or install the wheel",
        )
    return __virtualname__


def _timeout(timeout):
    return fleet.check_timeout(__opts__.get("timeout", 5) if timeout is None else timeout)


def _client():
    return salt.client.get_local_client(__opts__["conf_file"])


def _ask(questions, tgt, tgt_type, timeout):
    tgt, tgt_type = fleet.check_target(tgt, tgt_type)
    client = _client()
    try:
        return tgt, fleet.ask(client, questions, tgt, tgt_type, _timeout(timeout))
    except SaltClientError as exc:
        raise CommandExecutionError(f"iscsi: the master could not be asked: {exc}") from exc
    finally:
        client.destroy()


def _target_label(tgt, tgt_type):
    label = ",".join(tgt) if isinstance(tgt, list) else tgt
    return label if tgt_type == "glob" else f"{label} ({tgt_type})"


def _remediation(minions, days):
    # Unfiltered: jobs.list_jobs' search_function fails on compound jobs (a list of
    # functions), such as the report's own policy check.
    jobs = __salt__["jobs.list_jobs"]() or {}
    return history.remediations(
        jobs,
        lambda jid: (__salt__["jobs.list_job"](jid) or {}).get("Result") or {},
        minions,
        history.cutoff_jid(days, utc=bool(__opts__.get("utc_jid"))),
    )


def version():
    """
    The version of the extension's library this master runs, and where it was loaded from.

    CLI Example:

    .. code-block:: bash

        salt-run iscsi.version
    """
    return {"version": saltext_win_iscsi.__version__, "library": str(saltext_win_iscsi.PACKAGE)}


def report(tgt="*", tgt_type="glob", timeout=None, days=7, junit=None, html=None, inventory=False):
    """
    Which hosts break their iSCSI policy, and what the reactor remediated lately.

    Asks the targeted minions to evaluate their own pillar policy (two jobs, whatever the
    number of minions) and reads the master's job cache for the policy runs of the last
    ``days`` days.

    tgt
        The minions to report on (default ``*``).

    tgt_type
        How ``tgt`` is read: ``glob`` (default), ``list`` (``a,b`` or a list), ``grain``,
        ``compound``, ``pcre``, ``pillar``, ``nodegroup``, ...

    timeout
        Seconds to wait for answers before Salt asks late minions whether they still run
        the job (default: the master's ``timeout``). Minions that are down are reported as
        ``no answer`` after about ``timeout`` plus the master's ``gather_job_timeout``.

    days
        How far back the remediation history goes (default 7). The master's job cache
        keeps jobs for ``keep_jobs_seconds`` (24 h by default) unless an external job cache
        is used; the report's ``notes`` say so.

    junit
        Also write the report as JUnit XML to this file on the master: one test case per
        minion and rule; a violation is a failure, a host that could not be checked or did
        not answer an error.

    html
        Also write a self-contained HTML page to this file on the master.

    inventory
        ``True``: also list each minion's persistent sessions and persistent logins
        (``iscsi.get_sessions is_persistent=True``, ``iscsi.get_persistent_logins``): two
        more jobs, their counts in ``hosts`` (violations name their portals either way).

    Returns lists of rows (for ``--out=yaml``, ``json`` or ``table``): ``hosts`` (one per
    minion, most violations first: ``status`` compliant, violating, error or no answer;
    ``compliant``, True only for a host found compliant; ``error``), ``violations`` (rule,
    kind, target, session id, portal, detail), ``remediation`` (policy runs with what
    each changed), ``totals``, and ``notes``. The job's success is False unless every
    host is compliant.

    CLI Example:

    .. code-block:: bash

        salt-run iscsi.report
        salt-run iscsi.report tgt='win*' --out=table
        salt-run iscsi.report tgt='G@os:Windows' tgt_type=compound days=1
        salt-run iscsi.report junit=/srv/reports/iscsi.xml html=/srv/reports/iscsi.html
    """
    if isinstance(days, bool) or not isinstance(days, (int, float)) or days <= 0:
        raise IscsiInputError(f"days must be a positive number, not {days!r}")
    started = time.monotonic()
    if not isinstance(inventory, bool):
        raise IscsiInputError(f"inventory must be True or False, not {inventory!r}")
    junit, html = files.output_path(junit, "junit"), files.output_path(html, "html")
    questions = fleet.REPORT + (fleet.INVENTORY if inventory else [])
    tgt, answers = _ask(questions, tgt, tgt_type, timeout)
    notes = []
    if not answers.expected:
        notes.append(f"no minion matched {_target_label(tgt, tgt_type)!r}")
    limit = history.limit_note(days, __opts__)
    if limit:
        notes.append(limit)
    result = fleet_report.build(
        _target_label(tgt, tgt_type),
        datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %z"),
        answers.expected,
        answers.returns,
        remediation=_remediation(answers.expected, days),
        days=days,
        jobs=answers.jobs,
        notes=notes,
        inventory=inventory,
    )
    written = []
    if junit is not None:
        files.write(junit, report_junit.render(result, time.monotonic() - started))
        written.append({"format": "junit", "path": junit})
    if html is not None:
        files.write(html, report_html.render(result))
        written.append({"format": "html", "path": html})
    ret = result.as_return()
    ret["jobs"] = answers.jobs
    if written:
        ret["files"] = written
    if not all(host.compliant for host in result.hosts):
        __context__["retcode"] = 1
    return ret


def enforce(tgt="*", tgt_type="glob", batch="10%", timeout=None):
    """
    Apply the iSCSI policy (``state.apply iscsi.policy``) to the minions that break it,
    and only to them, in batches.

    The violating minions are found with the report's policy check (one job); compliant
    minions, minions whose check failed and minions that did not answer are left alone
    and listed under ``skipped``. The policy runs carry the job argument
    ``metadata: {saltext_iscsi: enforce}``, so the next ``iscsi.report`` lists them in its
    remediation history.

    tgt, tgt_type, timeout
        As for ``iscsi.report``.

    batch
        How many minions run the policy at once: a count (``5``) or a percentage of the
        violating minions (``10%``, the default), as Salt's ``--batch-size``.

    Returns ``enforced`` (per minion: result and what changed), ``skipped`` and
    ``totals``. The job's success is False if any policy run failed.

    CLI Example:

    .. code-block:: bash

        salt-run iscsi.enforce
        salt-run iscsi.enforce tgt='win*' batch=5
        salt-run iscsi.enforce tgt='G@os:Windows' tgt_type=compound batch=25%
    """
    batch = fleet.check_batch(batch)
    timeout = _timeout(timeout)
    tgt, answers = _ask([fleet.CHECK], tgt, tgt_type, timeout)
    hosts = [fleet_report.host_report(m, answers.returns) for m in answers.expected]
    violating = [h.minion for h in hosts if h.status == fleet_report.VIOLATING]
    results = {}
    if violating:
        client = _client()
        try:
            results = fleet.apply_policy(client, violating, batch, timeout, ENFORCE_METADATA)
        finally:
            client.destroy()
    enforced, skipped = history.enforce_rows(hosts, results)
    failed = sum(1 for row in enforced if not row["result"])
    if failed:
        __context__["retcode"] = 1
    return {
        "enforced": enforced,
        "skipped": skipped,
        "totals": [
            {
                "hosts": len(hosts),
                "violating": len(violating),
                "enforced": len(enforced) - failed,
                "failed": failed,
                "skipped": len(skipped),
                "batch": batch,
            }
        ],
        "jobs": answers.jobs,
    }
