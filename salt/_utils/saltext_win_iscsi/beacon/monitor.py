"""The beacon's brain: checks that never block the minion, and events that lose nothing.

Each beacon tick calls ``Monitor.tick``. The check itself (a digest from a PowerShell kept
open; sessions and logins only when the digest changed) runs in a worker thread: a tick
that starts one waits for it at most ``TICK_WAIT`` seconds and otherwise collects its
result on a later tick; a tick that finds one still running does not wait at all. So a
hung PowerShell (stopped after ``timeout``) never holds the minion's main loop.

Two kinds of events:

- ``violation`` (level-triggered, what enforcement hangs on): while anything on the host
  breaks this minion's pillar policy, one event lists all violations, again after
  ``interval``, 2x, 4x ... capped at ``backoff_max`` seconds, until the policy holds. A
  dropped event, a master restart or a lost job therefore delays remediation, never
  cancels it. No event is fired while a state run is in progress on the minion (the
  remediation itself, usually): the check goes on, and the next event waits for it.
- Readiness (``iscsi:policy:readiness``: the service, MPIO's claim, timers, ...) is read
  at a slower cadence, on every ``readiness_every``-th check (and on the first), and only
  when the policy has readiness rules, so an idle tick stays one digest request; while it
  is breached, on every check (a host being fixed is not idle). Its breaches are
  violations like the others. A host whose sessions cannot be read (its
  iSCSI service stopped) still has its readiness read and reported.
- ``registered`` (edge-triggered, informational): a new persistent registration, as
  ``registrations`` decides. What was seen is kept in a cache file so that a restart
  neither re-reports everything nor misses what happened meanwhile; only a missing file
  means "first run" (baseline), an unreadable one is logged as an error.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from saltext_win_iscsi.beacon import registrations
from saltext_win_iscsi.errors import IscsiInputError
from saltext_win_iscsi.policy import Policy
from saltext_win_iscsi.selection import Selector

log = logging.getLogger(__name__)

TICK_WAIT = 0.25  # seconds a tick waits for a check before leaving it to the next tick
MAX_LISTED = 50  # violations listed in one event (the count is always complete)


def _seconds(config: dict, key: str, default: float) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise IscsiInputError(f"iscsi beacon: {key} must be a positive number of seconds")
    return float(value)


def _count(config: dict, key: str, default: int) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise IscsiInputError(f"iscsi beacon: {key} must be a whole number of checks, 1 or more")
    return value


def _globs(config: dict, key: str) -> object:
    value = config.get(key)
    items = [value] if isinstance(value, str) else value
    if value is not None and not (
        isinstance(items, list) and items and all(isinstance(i, str) and i.strip() for i in items)
    ):
        raise IscsiInputError(f"iscsi beacon: {key} must be a glob or a non-empty list of globs")
    return value


@dataclass(frozen=True)
class MonitorSettings:
    """The beacon's options (its configuration's keys) and their defaults, stated once."""

    # Seconds between checks and the first backoff step. Salt itself runs the beacon every
    # `interval` seconds, once a second when it is not set.
    interval: float = 1.0
    timeout: float = 10.0  # seconds one check may take; then PowerShell is stopped
    backoff_max: float = 300.0  # longest wait between two violation events
    report_existing: bool = False  # first run: report what is persistent already
    targets: Selector = Selector()  # which registrations are reported
    # Readiness (iscsi:policy:readiness) is read on every n-th check: with the default
    # interval, every 30 s. 1: on every check.
    readiness_every: int = 30

    @classmethod
    def from_config(cls, config: dict) -> MonitorSettings:
        """The beacon's merged configuration, checked (IscsiInputError names the key).
        Other keys are Salt's own (``enabled``, ``disable_during_state_run``...)."""
        defaults = cls()
        report_existing = config.get("report_existing", defaults.report_existing)
        if not isinstance(report_existing, bool):
            raise IscsiInputError("iscsi beacon: report_existing must be True or False")
        return cls(
            interval=_seconds(config, "interval", defaults.interval),
            timeout=_seconds(config, "timeout", defaults.timeout),
            backoff_max=_seconds(config, "backoff_max", defaults.backoff_max),
            report_existing=report_existing,
            readiness_every=_count(config, "readiness_every", defaults.readiness_every),
            targets=Selector(
                target_node_address=_globs(config, "targets"),
                exclude_target_node_address=_globs(config, "exclude_targets"),
            ),
        )

    def options(self) -> dict:
        """The settings as the beacon's configuration keys."""
        return {
            "interval": self.interval,
            "timeout": self.timeout,
            "backoff_max": self.backoff_max,
            "report_existing": self.report_existing,
            "readiness_every": self.readiness_every,
            "targets": self.targets.targets,
            "exclude_targets": self.targets.excluded_targets,
        }


@dataclass(frozen=True)
class Scope:
    """What a check reads, for the policy at hand. Without rules on sessions as such
    (``connected``, ``absent``), persistence is decided by the persistent-login list
    alone, so an idle check does not enumerate the sessions at all."""

    sessions: bool = True
    connections: bool = False

    @classmethod
    def of(cls, policy: Policy) -> Scope:
        return cls(sessions=policy.needs_sessions, connections=policy.needs_connections)


@dataclass(frozen=True)
class Snapshot:
    """What a check read: the sessions, the persistent logins, and the initiator's
    defaults for new records (None where the platform has none)."""

    sessions: list[dict]
    logins: list[dict]
    defaults: dict | None = None


class Checker(Protocol):
    """How one platform answers a check (used from the worker thread only)."""

    def look(
        self, previous_digest: str | None, scope: Scope, timeout: float
    ) -> tuple[str, Snapshot | None]:
        """``(digest, snapshot)``; the snapshot None if the digest is ``previous_digest``."""
        ...

    def readiness(self, timeout: float) -> dict[str, dict]:
        """The host's readiness items (``iscsi.diagnose``'s), for readiness rules."""
        ...

    def close(self) -> None: ...


@dataclass
class _Look:
    """One finished check: a new snapshot (or None if the digest is unchanged) or an error."""

    digest: str | None = None
    snapshot: Snapshot | None = None
    with_connections: bool = False
    error: BaseException | None = None
    readiness: dict[str, dict] | None = None  # read on this check: the items


class Monitor:
    """One per minion process; kept by the execution module between ticks."""

    def __init__(
        self,
        checker: Checker,
        cache_path: str | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._checker = checker
        self._cache_path = cache_path
        self._clock = clock
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._finished: _Look | None = None
        self._digest: str | None = None
        self._snapshot: Snapshot | None = None
        self._with_connections = False
        self._evaluated: tuple[int, Policy] | None = None
        self._violations: list[dict] = []
        self._known: dict | None = None
        self._known_loaded = False
        self._fault: str | None = None
        self._fires = 0
        self._next_fire = 0.0
        self._generation = 0  # snapshots seen, to re-evaluate only when something changed
        self._checks = 0  # checks started, for the readiness cadence
        self._readiness: dict[str, dict] | None = None  # the latest readiness items

    # -- the check, in a worker thread ------------------------------------------------

    def _check(self, digest: str | None, scope: Scope, timeout: float, readiness: bool) -> None:
        look = _Look()
        if readiness:
            try:
                look.readiness = self._checker.readiness(timeout)
            except Exception as exc:
                log.warning("iscsi beacon: cannot read the host's readiness: %s", exc)
        try:
            look.digest, look.snapshot = self._checker.look(digest, scope, timeout)
            look.with_connections = scope.connections
        except Exception as exc:
            look.error = exc
        with self._lock:
            self._finished = look

    def _start_check(self, settings: MonitorSettings, policy: Policy) -> threading.Thread:
        scope = Scope.of(policy)
        if self.violations(policy) and not scope.sessions:
            # While violating, every session's state is in the digest: a remediation and a
            # new registration of the same target between two checks leave the login list
            # as it was, and would otherwise go unseen (a stale snapshot, a lost event).
            scope = Scope(sessions=True, connections=scope.connections)
        # Re-read everything when the digest is unknown or connections are newly needed.
        digest = self._digest if (self._with_connections or not scope.connections) else None
        readiness = bool(policy.readiness) and (
            self._checks % settings.readiness_every == 0
            or bool(policy.readiness_violations(self._readiness))
        )
        self._checks += 1
        self._worker = threading.Thread(
            target=self._check,
            args=(digest, scope, settings.timeout, readiness),
            name="iscsi-beacon-check",
            daemon=True,
        )
        self._worker.start()
        return self._worker

    def _collect(self) -> _Look | None:
        with self._lock:
            look, self._finished = self._finished, None
        return look

    # -- one tick ---------------------------------------------------------------------

    def tick(
        self,
        settings: MonitorSettings,
        policy: Policy | None,
        state_running: Callable[[], bool],
    ) -> list[dict]:
        """The events to fire now. ``policy`` None: the pillar policy is malformed (the
        caller logged why); nothing is enforced then, registrations are still reported."""
        if self._worker is None or not self._worker.is_alive():
            worker = self._start_check(settings, policy or Policy())
            # A fresh check usually answers within milliseconds: collect it on this tick.
            # One still running from an earlier tick (a hang) is not waited for at all.
            worker.join(TICK_WAIT)
        events: list[dict] = []
        look = self._collect()
        if look is not None:
            events += self._take(look, settings)
        if policy is not None:
            events += self._violation_events(settings, policy, state_running)
        return events

    def _take(self, look: _Look, settings: MonitorSettings) -> list[dict]:
        if look.readiness is not None and look.readiness != self._readiness:
            self._readiness = look.readiness
            self._generation += 1
        if look.error is not None:
            self._digest = None  # re-read everything once PowerShell answers again
            self._report_fault(look.error)
            return []
        if self._fault is not None:
            log.info("iscsi beacon: checks work again")
            self._fault = None
        self._digest = look.digest
        if look.snapshot is None:
            return []
        self._snapshot = look.snapshot
        self._with_connections = look.with_connections
        self._generation += 1
        return self._registration_events(settings, look.snapshot.sessions, look.snapshot.logins)

    def _report_fault(self, exc: BaseException) -> None:
        text = f"{type(exc).__name__}: {exc}"
        if self._fault != text:
            log.error("iscsi beacon: check failed, retrying next tick: %s", text)
        else:
            log.debug("iscsi beacon: still failing: %s", text)
        self._fault = text

    # -- violations: level-triggered ------------------------------------------------------

    def violations(self, policy: Policy) -> list[dict]:
        """The policy's violations on the latest snapshot and readiness items
        (re-evaluated only on change)."""
        if self._snapshot is None and self._readiness is None:
            return []
        if self._evaluated != (self._generation, policy):
            snapshot = self._snapshot
            if snapshot is None:  # the sessions could not be read yet: readiness alone
                self._violations = policy.readiness_violations(self._readiness)
            else:
                self._violations = policy.violations(
                    snapshot.sessions, snapshot.logins, snapshot.defaults, self._readiness
                )
            self._evaluated = (self._generation, policy)
        return self._violations

    def _violation_events(
        self, settings: MonitorSettings, policy: Policy, state_running: Callable[[], bool]
    ) -> list[dict]:
        violations = self.violations(policy)
        if not violations:
            self._fires, self._next_fire = 0, 0.0
            return []
        now = self._clock()
        if now < self._next_fire or state_running():
            return []
        self._fires += 1
        wait = min(settings.backoff_max, settings.interval * 2 ** (self._fires - 1))
        self._next_fire = now + wait
        return [
            {
                "tag": "violation",
                "count": len(violations),
                "attempt": self._fires,
                "violations": violations[:MAX_LISTED],
            }
        ]

    # -- registrations: edge-triggered, remembered across restarts ------------------------

    def _registration_events(
        self, settings: MonitorSettings, sessions: list[dict], logins: list[dict]
    ) -> list[dict]:
        known = self._load_known()
        if known is None:
            if settings.report_existing:
                fire = [s for s in sessions if s.get("IsPersistent")]
                targets = {str(s.get("TargetNodeAddress")).lower() for s in fire}
                fire_logins = [lg for lg in logins if str(lg["TargetName"]).lower() not in targets]
            else:
                fire, fire_logins = [], []  # first run: a baseline only
        else:
            fire = registrations.new_sessions(known, sessions)
            fire_logins = registrations.new_logins(known, logins, fire)
        now = registrations.knowledge(sessions, logins)
        if now != known:
            self._save_known(now)
        self._known = now
        select = settings.targets
        events = [
            {"tag": "registered", "kind": "session", **session}
            for session in fire
            if select(session)
        ]
        events += [
            {
                "tag": "registered",
                "kind": "persistent_login",
                "TargetNodeAddress": lg["TargetName"],
                **lg,
            }
            for lg in fire_logins
            if select.selects_login(lg)
        ]
        return events

    def _load_known(self) -> dict | None:
        if self._known_loaded:
            return self._known
        self._known_loaded = True
        if not self._cache_path:
            return None
        try:
            with open(self._cache_path, encoding="utf-8") as handle:
                known = json.load(handle)
        except FileNotFoundError:
            return None  # first run on this minion
        except (OSError, ValueError) as exc:
            known = exc
        if not registrations.valid_knowledge(known):
            log.error(
                "iscsi beacon: %s is unreadable (%s); registrations made while the minion was "
                "down are not reported as such. Policy violations are checked as always.",
                self._cache_path,
                known if isinstance(known, Exception) else "not the expected content",
            )
            return None
        self._known = known
        return known

    def _save_known(self, known: dict) -> None:
        if not self._cache_path:
            return
        tmp = f"{self._cache_path}.tmp"
        try:
            os.makedirs(os.path.dirname(self._cache_path) or ".", exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump(known, handle)
            os.replace(tmp, self._cache_path)
        except OSError as exc:
            log.warning("iscsi beacon: cannot save what it saw to %s: %s", self._cache_path, exc)

    def close(self) -> None:
        """Stop the kept PowerShell (module unload, tests)."""
        if self._worker is None or not self._worker.is_alive():
            self._checker.close()
