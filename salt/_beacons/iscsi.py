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
        - interval: 5            # seconds between checks and the first backoff step;
                                 # Salt runs beacons every second when it is not set
        # optional:
        # - backoff_max: 300     # longest wait between two violation events
        # - timeout: 10          # seconds a check may take; then PowerShell is stopped
        # - targets: 'iqn.1991-05.com.contoso:*'           # registrations reported
        # - exclude_targets: 'iqn.1991-05.com.contoso:db-*'
        # - report_existing: False   # True: report what is persistent at first start
        # - readiness_every: 30  # read the host's readiness (iscsi:policy:readiness) on
        #                        # every 30th check; idle ticks in between stay cheap

Events:

- ``salt/beacon/<minion id>/iscsi/violation``: level-triggered. While any session or
  persistent login breaks the pillar policy (``iscsi:policy``), one event lists them all
  (``count``, ``violations``: rule, kind, target, session or portal; ``kind: readiness``
  with the item and the problem for a readiness rule, read every ``readiness_every``
  checks), again after
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

All the work is done by ``iscsi.beacon_events`` in the execution module; ``salt-call
iscsi.beacon_settings`` shows the options with their defaults.
"""

import logging

import salt.utils.beacons
from salt.exceptions import SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "iscsi"

_FAULT = "iscsi.beacon.fault"


def __virtual__():
    # Nothing to import: the beacons loader does not see the synced library (salt/_utils)
    # until the execution module has loaded it, so the beacon asks the module for all.
    return __virtualname__


def validate(config):
    """Check the beacon configuration (a list of one-key dicts)."""
    if not isinstance(config, list) or not all(isinstance(item, dict) for item in config):
        return False, "iscsi beacon: configuration must be a list of single-key mappings"
    if "iscsi.beacon_settings" not in __salt__:
        return False, "iscsi beacon: the iscsi execution module is not loaded on this minion"
    try:
        __salt__["iscsi.beacon_settings"](**salt.utils.beacons.list_to_dict(config))
    except SaltInvocationError as exc:
        return False, str(exc)
    return True, "Valid beacon configuration"


def beacon(config):
    """The events of this tick (see the module docstring)."""
    try:
        events = __salt__["iscsi.beacon_events"](**salt.utils.beacons.list_to_dict(config))
    except Exception as exc:  # a beacon must never take the minion down
        # Logged once per distinct fault; retried next tick.
        text = f"{type(exc).__name__}: {exc}"
        if __context__.get(_FAULT) != text:
            log.error("iscsi beacon: tick failed, retrying next tick: %s", text)
        __context__[_FAULT] = text
        return []
    __context__.pop(_FAULT, None)
    return events
