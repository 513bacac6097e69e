"""What operations report, the same on every backend, and how a state says it.

- Per-session and per-login reports: a ``status`` per entry, ``failed`` entries with an
  ``error`` (what the execution module returns).
- Desired-state outcomes: ``{"changes", "comments", "errors"}`` (what the ``ensure_*``
  functions return); ``state_return`` turns one into a state's return.
"""

from __future__ import annotations

from collections.abc import Callable

from saltext_win_iscsi.errors import IscsiError
from saltext_win_iscsi.model import login_portal
from saltext_win_iscsi.spec import PersistenceSpec, PortalSpec

MASK = "********"


def failed(report: dict | list) -> bool:
    """Whether a per-session or per-login report holds a failure."""
    entries = report.values() if isinstance(report, dict) else report
    return any(isinstance(e, dict) and e.get("status") == "failed" for e in entries)


def passthru_error(report: dict, done_status: str) -> IscsiError:
    """What ``passthru=True`` raises when a session failed: each failure, then what was done."""
    failures = "; ".join(
        f"{sid}: {e['error']}" for sid, e in report.items() if e["status"] == "failed"
    )
    done = ", ".join(s for s, e in report.items() if e["status"] == done_status) or "none"
    return IscsiError(f"iSCSI: {failures}; {done_status}: {done}")


def scrub(text: str, secrets: dict[str, str] | None) -> str:
    """``text`` with every secret masked (a backend may echo a parameter value)."""
    for secret in (secrets or {}).values():
        if secret:
            text = text.replace(secret, MASK)
    return text


def login_label(login: dict) -> str:
    return f"persistent login {login['TargetName']} @ {login_portal(login)}"


class Outcome:
    """A desired state's outcome being built: changes, comments, and errors (which make it
    fail). Secrets are masked in every error."""

    def __init__(self, secrets: dict | None = None) -> None:
        self.changes: dict[str, dict] = {}
        self.comments: list[str] = []
        self.errors: list[str] = []
        self._secrets = secrets

    def error(self, text: str) -> None:
        self.errors.append(scrub(text, self._secrets))

    def result(self) -> dict:
        return {"changes": self.changes, "comments": self.comments, "errors": self.errors}

    def summary(self, test: bool, done: str, nothing: str) -> dict:
        """The result with the state's closing sentences: what failed and what was done
        before, or what was (or would be) ``done``, or ``nothing``."""
        comments = list(self.comments)
        if self.errors:
            comments.insert(0, "Failed: " + "; ".join(self.errors) + ".")
            if self.changes:
                comments.append(f"Done before the failure: {', '.join(self.changes)}.")
        elif self.changes:
            comments.append(f"{'Would' if test else 'Did'} {done}: {', '.join(self.changes)}.")
        else:
            comments.append(nothing)
        return {"changes": self.changes, "comments": comments, "errors": self.errors}


def portal(
    spec: PortalSpec, found: bool, present: bool, test: bool, change: Callable[[], None]
) -> dict:
    """``ensure_portal``'s outcome on either platform: nothing to do when the portal is
    already as wanted (``found == present``); else ``change()`` adds or removes it, or in
    test mode only checks that it could (an ``IscsiError`` is the outcome's error)."""
    report = Outcome(spec.secrets)
    label = spec.portal.label
    if found == present:
        report.comments.append(f"Portal {label} is {'present' if present else 'absent'}.")
        return report.result()
    try:
        change()
    except IscsiError as exc:
        report.error(f"portal {label}: {exc}")
        report.comments.append(f"Portal {label}: {exc}")
        return report.result()
    report.changes[f"portal {label}"] = {
        "old": "present" if found else "absent",
        "new": "present" if present else "absent",
    }
    verb = (
        ("Would add" if test else "Added") if present else ("Would remove" if test else "Removed")
    )
    report.comments.append(f"{verb} portal {label}.")
    return report.result()


def state_return(name: str, outcome: dict, test: bool) -> dict:
    """A state's return from an ``ensure_*`` outcome: False on errors, None for pending
    changes in test mode, else True."""
    if outcome["errors"]:
        result: bool | None = False
    elif outcome["changes"] and test:
        result = None
    else:
        result = True
    return {
        "name": name,
        "result": result,
        "changes": outcome["changes"],
        "comment": " ".join(outcome["comments"]),
    }


def persistence(
    spec: PersistenceSpec,
    report: dict[str, dict],
    logins: list[dict],
    disks: list[str],
    test: bool,
) -> dict:
    """The outcome of ``ensure_persistence``: the per-session ``report``, the per-login
    report of the persistent logins removed, and the ``disks`` (with their volumes) that
    will be missing after the next restart."""
    outcome = Outcome(spec.secrets)

    def having(*statuses: str) -> dict[str, dict]:
        return {sid: entry for sid, entry in report.items() if entry["status"] in statuses}

    changed = having(spec.done, f"would_{spec.op}")
    for sid, entry in changed.items():
        outcome.changes[sid] = {
            "TargetNodeAddress": entry.get("TargetNodeAddress"),
            "IsPersistent": {"old": not spec.persistent, "new": spec.persistent},
        }
    failures = having("failed")
    if failures:
        text = "; ".join(
            f"{sid} ({e.get('TargetNodeAddress')}): {e.get('error')}" for sid, e in failures.items()
        )
        outcome.error(text)
        outcome.comments.append(f"Failed for {len(failures)} session(s): {text}.")
    if changed:
        made = "Would make" if test else "Made"
        listed = ", ".join(f"{sid} ({e.get('TargetNodeAddress')})" for sid, e in changed.items())
        outcome.comments.append(f"{made} {len(changed)} session(s) {spec.adjective}: {listed}.")
    already = having(spec.skip)
    if already:
        outcome.comments.append(f"{len(already)} matching session(s) already {spec.adjective}.")
    missing = having("not_found")
    if missing:
        outcome.comments.append(f"No such session (nothing to do): {', '.join(missing)}.")
    _logins(outcome, logins, test)
    warnings = dict.fromkeys(e["warning"] for e in [*report.values(), *logins] if e.get("warning"))
    outcome.comments += [f"Warning: {w}." for w in warnings]
    if disks:
        outcome.comments.append(
            f"After the next restart these will be missing: {'; '.join(disks)}."
        )
    if not report and not logins:
        outcome.comments.append(f"No iSCSI session matches; the policy holds ({spec.adjective}).")
    return outcome.result()


def _logins(outcome: Outcome, logins: list[dict], test: bool) -> None:
    removed = [e for e in logins if e["status"] in ("removed", "would_remove")]
    for entry in logins:
        label = login_label(entry)
        if entry in removed:
            outcome.changes[label] = {
                "entries": entry["entries"],
                "old": "present",
                "new": "removed",
            }
        else:
            outcome.error(f"{label}: {entry.get('error')}")
            outcome.comments.append(f"Failed to remove {label}: {entry.get('error')}.")
    if removed:
        verb = "Would remove" if test else "Removed"
        targets = ", ".join(sorted({e["TargetName"] for e in removed}))
        outcome.comments.append(
            f"{verb} {sum(e['entries'] for e in removed)} persistent login(s) without a "
            f"persistent session: {targets}."
        )


def disk_names(sessions: list[dict]) -> list[str]:
    """``disk N (name) with E:, C:\\mnt`` (or ``/dev/sdX``) for each disk behind
    ``sessions``, once each."""
    disks = []
    for session in sessions:
        for disk in session.get("Disks") or []:
            volumes = [
                v.get("DriveLetter") or (v.get("AccessPaths") or [""])[0]
                for v in disk.get("Volumes") or []
            ]
            shown = ", ".join(f"{v}:" if len(v) == 1 else v for v in volumes)
            where = f" with {shown}" if volumes else ""
            disks.append(f"disk {disk.get('Number')} ({disk.get('FriendlyName')}){where}")
        disks += [f"/dev/{name}" for name in session.get("AttachedDisks") or []]  # Linux
    return list(dict.fromkeys(disks))
