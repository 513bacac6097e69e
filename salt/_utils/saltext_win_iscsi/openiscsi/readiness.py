"""A Linux host's readiness facts for ``iscsi.diagnose``: iscsid and multipathd (systemd's
units, or the process list where systemd is not PID 1), iscsid.conf's defaults, the
initiator name. Each fact is read on its own: one that cannot be read carries its error.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from saltext_win_iscsi import diagnosis
from saltext_win_iscsi.diagnosis import ISCSID_CONF_DEFAULTS
from saltext_win_iscsi.errors import IscsiError, safe_text
from saltext_win_iscsi.openiscsi.defaults import conf_value, set_conf_value
from saltext_win_iscsi.openiscsi.iscsiadm import run_program

# The initiator's name file lives beside iscsid.conf (/etc/iscsi on every distribution).
INITIATOR_NAME_FILE = "initiatorname.iscsi"
# What systemctl prints where systemd is not PID 1 (containers, chroots, the test VM).
NO_SYSTEMD = ("not been booted with systemd", "Failed to connect to bus", "Running in chroot")


class Programs:
    """systemctl and pidof, as configured (``iscsi.systemctl``, ``iscsi.pidof``)."""

    def __init__(self, systemctl: str | None, pidof: str | None, timeout: float) -> None:
        self.systemctl = systemctl or shutil.which("systemctl") or "systemctl"
        self.pidof = pidof or shutil.which("pidof") or "pidof"
        self.timeout = timeout

    def _run(self, argv: list[str], install: str) -> tuple[int, str, str]:
        return run_program(argv, self.timeout, " ".join(argv), install)

    def unit_state(self, verb: str, unit: str) -> str | None:
        """``systemctl <verb> <unit>``'s answer (``active``, ``enabled``, ...), or None
        where systemd is not running (``is-active`` needs it; ``is-enabled`` does not)."""
        code, out, err = self._run([self.systemctl, verb, unit], "install systemd")
        if any(marker in err for marker in NO_SYSTEMD):
            return None
        answer = out.strip()
        if answer:
            return answer
        if code != 0 and "No such file" in err:
            return "not-found"
        raise IscsiError(f"iSCSI: systemctl {verb} {unit} failed: {safe_text(err.strip())}")

    def pids(self, program: str) -> list[str]:
        code, out, _err = self._run([self.pidof, program], "install procps")
        return out.split() if code == 0 else []

    def running(self, program: str, units: tuple[str, ...]) -> dict:
        """``{"running", "seen_by"}``: systemd's units active, or ``pidof`` without systemd."""
        states = {unit: self.unit_state("is-active", unit) for unit in units}
        if all(state is not None for state in states.values()):
            return {
                "running": any(state == "active" for state in states.values()),
                "seen_by": "systemctl is-active: "
                + ", ".join(f"{u} {s}" for u, s in states.items()),
            }
        pids = self.pids(program)
        return {
            "running": bool(pids),
            "seen_by": f"pidof {program} (systemd is not PID 1): "
            + (" ".join(pids) if pids else "no process"),
        }


def _read(facts: dict, name: str, read: Callable[[], Any]) -> None:
    try:
        facts[name] = {"value": read()}
    except (IscsiError, OSError) as exc:
        facts[name] = {"error": str(exc)}


def initiator_name(iscsid_conf: str) -> str | None:
    path = Path(os.path.dirname(iscsid_conf) or ".") / INITIATOR_NAME_FILE
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "InitiatorName" and not line.lstrip().startswith("#"):
            return value.strip()
    return None


def _conf(iscsid_conf: str, key: str) -> dict:
    value = conf_value(iscsid_conf, key)
    if value is None:
        return {"value": ISCSID_CONF_DEFAULTS[key], "source": "built-in"}
    return {"value": value, "source": iscsid_conf}


def facts(iscsid_conf: str, programs: Programs) -> dict:
    """Raw facts by ``diagnosis.LINUX_FACTS`` names."""
    found: dict[str, dict] = {}
    _read(
        found,
        "iscsid.running",
        lambda: programs.running("iscsid", ("iscsid.service", "iscsid.socket")),
    )
    _read(
        found,
        "iscsid.enabled",
        lambda: {
            u: programs.unit_state("is-enabled", u) for u in ("iscsid.service", "iscsid.socket")
        },
    )
    _read(found, "initiator.names", lambda: initiator_name(iscsid_conf))
    for key in ISCSID_CONF_DEFAULTS:
        _read(found, f"iscsid_conf.{key}", functools.partial(_conf, iscsid_conf, key))
    _read(
        found, "multipathd.running", lambda: programs.running("multipathd", ("multipathd.service",))
    )
    return found


# What iscsi.ready changes on Linux: iscsid.conf's values (new node records get them).
FIXABLE = {f"iscsid_conf.{key}" for key in ISCSID_CONF_DEFAULTS}


def ensure_ready(iscsid_conf: str, programs: Programs, wanted: dict, test: bool) -> dict:
    def items() -> dict[str, dict]:
        return diagnosis.linux(facts(iscsid_conf, programs)).items

    def fix(changes: dict) -> dict[str, str]:
        errors = {}
        for name, change in changes.items():
            try:
                set_conf_value(iscsid_conf, name.split(".", 1)[1], str(change["new"]))
            except OSError as exc:
                errors[name] = f"cannot write {iscsid_conf}: {exc}"
        return errors

    before = diagnosis.breaches(items(), wanted)
    outcome = diagnosis.settle(wanted, before, fix, items, FIXABLE, test)
    if outcome["changes"]:
        outcome["comments"].append(
            f"{iscsid_conf} applies to node records made from now on; existing records keep "
            "their values (iscsiadm -m node -o update)."
        )
    return outcome
