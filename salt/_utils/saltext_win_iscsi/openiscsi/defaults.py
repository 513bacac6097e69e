"""The initiator's defaults for new node records, in ``iscsid.conf``.

A discovery writes new node records with iscsid.conf's ``node.startup`` (Debian ships
``manual``, RHEL-family systems ``automatic``); a plain discovery even rewrites existing
ones with it. So where the default is ``automatic``, a rediscovery makes a target the
policy keeps non-persistent persistent again; managing the default keeps it away.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from saltext_win_iscsi.errors import IscsiError
from saltext_win_iscsi.outcome import Outcome

STARTUP_KEY = "node.startup"
BUILT_IN_STARTUP = "manual"  # what iscsiadm uses when iscsid.conf says nothing


def initiator_defaults(path: str) -> dict[str, str]:
    """The defaults new records get, by the policy's ``defaults`` keys."""
    return {"node_startup": default_startup(path) or BUILT_IN_STARTUP}


REDISCOVERY_WARNING = (
    "iscsid.conf gives new node records node.startup = automatic: a discovery "
    "(iscsiadm -m discovery) makes this target's record automatic again; set the default "
    "to manual (pillar iscsi:policy:defaults:node_startup, state iscsi.initiator_defaults)"
)


def rediscovery_warning(path: str) -> str | None:
    """Why a record made ``manual`` may not stay so, or None."""
    return REDISCOVERY_WARNING if initiator_defaults(path)["node_startup"] == "automatic" else None


def default_startup(path: str) -> str | None:
    """``node.startup`` for new records: iscsid.conf's active line (the last one), or
    None when the file has none (iscsiadm then uses ``manual``)."""
    return conf_value(path, STARTUP_KEY)


def conf_value(path: str, key: str) -> str | None:
    """iscsid.conf's active value of ``key`` (its last line), or None when it has none."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IscsiError(f"iSCSI: cannot read {path}: {exc}") from None
    found = None
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() == key:
            found = value.strip()
    return found


def set_conf_value(path: str, key: str, value: str) -> None:
    """Make ``key = value`` iscsid.conf's only active line for ``key``; the rest of the
    file (comments included) stays as it is."""
    target = Path(path)
    try:
        lines = target.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    kept = [ln for ln in lines if ln.partition("=")[0].strip() != key]
    at = next(
        (i for i, ln in enumerate(lines) if ln.partition("=")[0].strip() == key),
        len(kept),
    )
    kept.insert(min(at, len(kept)), f"{key} = {value}")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".iscsid.conf-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write("\n".join(kept) + "\n")
        os.chmod(tmp, target.stat().st_mode & 0o777 if target.exists() else 0o600)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def ensure_defaults(path: str, wanted: dict[str, str], test: bool) -> dict:
    """The defaults of new records as ``wanted`` (the policy's ``defaults``)."""
    report = Outcome()
    have = initiator_defaults(path)
    for key, value in wanted.items():
        if have[key] == value:
            report.comments.append(f"New node records get node.startup = {value} ({path}).")
            continue
        report.changes[f"{path}: node.startup"] = {"old": have[key], "new": value}
        if test:
            report.comments.append(f"Would set node.startup = {value} in {path}.")
            continue
        try:
            set_conf_value(path, STARTUP_KEY, value)
        except OSError as exc:
            report.changes.clear()
            report.error(f"cannot write {path}: {exc}")
            continue
        report.comments.append(f"Set node.startup = {value} in {path}: new node records get it.")
    now = initiator_defaults(path) if not test else have
    for key, value in wanted.items():
        if not test and now[key] != value:
            report.error(f"after the change, {path} still gives node.startup = {now[key]}")
    return report.result()
