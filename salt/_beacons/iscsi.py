"""
Watch iSCSI persistence: fire while the host breaks this minion's pillar policy, and
report new persistent registrations.

Pair it with the reactor ``salt://reactor/iscsi_enforce.sls`` so that a violation is
undone by applying the ``iscsi`` formula to the minion that reported it. Configure it in
the minion config, or in pillar (if pillar defines ``beacons``, beacons in the minion
config are not run):

.. code-block:: yaml

    beacons:
      iscsi:
        - interval: 5            # seconds between checks; the first backoff step
        # optional:
        # - backoff_max: 300     # longest wait between two violation events
        # - timeout: 10          # seconds a check may take; then PowerShell is stopped
        # - targets: 'iqn.1991-05.com.contoso:*'           # registrations reported
        # - exclude_targets: 'iqn.1991-05.com.contoso:db-*'
        # - report_existing: False   # True: report what is persistent at first start

Events:

- ``salt/beacon/<minion id>/iscsi/violation``: level-triggered. While any session or
  persistent login breaks the pillar policy (``iscsi:policy``), one event lists them all
  (``count``, ``violations``: rule, kind, target, session or portal), again after
  ``interval``, 2x, 4x ... seconds up to ``backoff_max``, until the policy holds. Nothing
  is fired while a state run is in progress on the minion; the check goes on. So a
  dropped event, a master restart or a lost job delays remediation, never cancels it.
- ``salt/beacon/<minion id>/iscsi/registered``: a new persistent registration, with
  ``kind: session`` and the session's fields, or ``kind: persistent_login`` and the
  entry's fields. Informational: enforcement does not depend on it.

A tick never blocks the minion: the check runs in a background thread (a hung PowerShell
is stopped after ``timeout``), and a tick that finds nothing new asks a PowerShell kept
open between ticks for a digest only. ``disable_during_state_run`` is not needed: the
beacon already holds its events during state runs without skipping its checks.

All the work is done by ``iscsi.beacon_events`` in the execution module.
"""

from __future__ import annotations

import logging

import salt.utils.beacons

log = logging.getLogger(__name__)

__virtualname__ = "iscsi"

DEFAULTS = {
    "interval": 1,
    "timeout": 10,
    "backoff_max": 300,
    "targets": None,
    "exclude_targets": None,
    "report_existing": False,
}
_FAULT = "iscsi.beacon.fault"


def __virtual__():
    return __virtualname__


def _globs_ok(value) -> bool:
    if value is None:
        return True
    items = [value] if isinstance(value, str) else value
    return (
        isinstance(items, list)
        and bool(items)
        and all(isinstance(i, str) and i.strip() for i in items)
    )


def _positive(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value > 0


def validate(config):
    """Check the beacon configuration (a list of one-key dicts)."""
    if not isinstance(config, list) or not all(isinstance(item, dict) for item in config):
        return False, "iscsi beacon: configuration must be a list of single-key mappings"
    merged = salt.utils.beacons.list_to_dict(config)
    for key in ("targets", "exclude_targets"):
        if not _globs_ok(merged.get(key)):
            return False, f"iscsi beacon: {key} must be a glob or a non-empty list of globs"
    if not isinstance(merged.get("report_existing", False), bool):
        return False, "iscsi beacon: report_existing must be True or False"
    for key in ("timeout", "backoff_max", "interval"):
        if not _positive(merged.get(key, DEFAULTS[key])):
            return False, f"iscsi beacon: {key} must be a positive number of seconds"
    return True, "Valid beacon configuration"


def beacon(config):
    """The events of this tick (see the module docstring)."""
    cfg = {**DEFAULTS, **salt.utils.beacons.list_to_dict(config)}
    try:
        events = __salt__["iscsi.beacon_events"](**{key: cfg[key] for key in DEFAULTS})
    except Exception as exc:  # pylint: disable=broad-except
        # A beacon must never take the minion down: log once, retry next tick.
        text = f"{type(exc).__name__}: {exc}"
        if __context__.get(_FAULT) != text:
            log.error("iscsi beacon: tick failed, retrying next tick: %s", text)
        __context__[_FAULT] = text
        return []
    __context__.pop(_FAULT, None)
    return events
