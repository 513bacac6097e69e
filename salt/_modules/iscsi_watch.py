"""
Watch iSCSI persistence cheaply: what the ``iscsi`` beacon runs each tick.

Part of the ``iscsi`` execution module (the functions load under ``iscsi.``); see
``salt/_modules/iscsi.py`` for configuration.

:depends: the ``saltext_win_iscsi`` library (``salt/_utils``, synced with ``saltutil.sync_all``)
:platform: Windows
"""

from __future__ import annotations

import functools
import logging
import os

try:
    import saltext_win_iscsi

    saltext_win_iscsi = saltext_win_iscsi.current()
    from saltext_win_iscsi import hosts
    from saltext_win_iscsi import watch as watching
    from saltext_win_iscsi.beacon.monitor import Monitor, MonitorSettings, WindowsChecker
    from saltext_win_iscsi.errors import IscsiInputError
    from saltext_win_iscsi.openiscsi import nodedb
    from saltext_win_iscsi.policy import Policy, PolicyError
    from saltext_win_iscsi.selection import Selector
    from saltext_win_iscsi.windows import channels

    LIBRARY_ERROR = None
except ImportError as exc:  # the library was not synced (salt/_utils) or installed
    LIBRARY_ERROR = str(exc)

log = logging.getLogger(__name__)

__virtualname__ = "iscsi"

WATCH_CHANNEL_KEY = "iscsi.watch_channel"
MONITOR_KEY = "iscsi.monitor"
POLICY_ERROR_KEY = "iscsi.monitor.policy_error"
BEACON_CACHE_FILE = "iscsi_beacon.json"


def __virtual__():
    if LIBRARY_ERROR is not None:
        return (
            False,
            f"iscsi: cannot import the saltext_win_iscsi library ({LIBRARY_ERROR}); "
            "run saltutil.sync_all (it syncs salt/_utils) or install the wheel",
        )
    return hosts.virtual(__virtualname__, __opts__, __pillar__)


def _backend():
    return hosts.local_backend(
        __salt__["config.get"]("iscsi.powershell", None),
        __salt__["config.get"]("iscsi.iscsiadm", None),
    )


def watch(
    previous_digest=None,
    target_node_address=None,
    exclude_target_node_address=None,
    keep_open=False,
    timeout=None,
):
    """
    Tell cheaply whether persistence changed since ``previous_digest``.

    Asks Windows for a digest of the persistent sessions' ids and of the persistent-login
    list (one small answer); only when
    it differs from ``previous_digest`` are the persistent sessions read and returned. The
    ``iscsi`` beacon calls this every tick with ``keep_open=True``, so that one PowerShell
    (process or runspace) serves all ticks instead of one process per tick.

    previous_digest
        The ``digest`` of the previous call; ``None`` on a first call.

    target_node_address, exclude_target_node_address
        Globs (as for ``iscsi.get_sessions``) choosing which persistent sessions are listed
        in ``selected`` (all of them when not given).

    keep_open
        Keep the PowerShell running for the next call from this process.

    timeout
        Seconds to wait for PowerShell (default: ``iscsi.timeout``).

    Returns ``{"digest", "count", "changed"}``, plus, when ``changed``, ``"sessions"``
    (every session, as ``iscsi.get_sessions``), ``"selected"`` (ids of the persistent
    sessions the globs match) and ``"logins"`` (every persistent login, as
    ``iscsi.get_persistent_logins``, each with ``selected``).

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.watch
        salt '*' iscsi.watch previous_digest=5e0c...9a1f
    """
    select = Selector(
        target_node_address=target_node_address,
        exclude_target_node_address=exclude_target_node_address,
    )
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
    ):
        raise IscsiInputError(f"timeout must be a positive number, not {timeout!r}")
    kept = __context__.pop(WATCH_CHANNEL_KEY, None) if keep_open else None

    def work(opener):
        result, channel = watching.watch(opener, select, previous_digest, kept, bool(keep_open))
        if channel is not None:
            __context__[WATCH_CHANNEL_KEY] = channel
        return result

    if _backend() == hosts.OPEN_ISCSI:
        cache = __context__.setdefault("iscsi.nodedb_cache", {})
        adm = hosts.iscsiadm(__salt__["config.get"])
        dirs = hosts.node_dirs(__salt__["config.get"])
        return nodedb.watch(adm, select, previous_digest, node_dirs=dirs, cache=cache)
    config = hosts.powershell_config(__salt__["config.get"])
    # killable: the beacon must be able to stop a hung check (never the runspace)
    return work(functools.partial(channels.open_channel, config, None, True, timeout))


def beacon_events(
    interval=1,
    timeout=10,
    backoff_max=300,
    targets=None,
    exclude_targets=None,
    report_existing=False,
):
    """
    One tick of the ``iscsi`` beacon: the events to fire now (see the beacon's docs).

    Returns within a fraction of a second: the check (a digest from a PowerShell kept open
    between ticks, the details only when it changed) runs in a background thread whose
    result a later tick collects. While the host breaks this minion's pillar policy, a
    ``violation`` event lists what breaks it, again after ``interval``, 2x, 4x ... seconds
    up to ``backoff_max``; ``registered`` events report new persistent registrations of
    the ``targets`` globs (all by default) minus ``exclude_targets``.

    CLI Example:

    .. code-block:: bash

        salt-call iscsi.beacon_events
    """
    monitor = __context__.get(MONITOR_KEY)
    if monitor is None:
        if _backend() == hosts.OPEN_ISCSI:
            checker = nodedb.OpenIscsiChecker(
                hosts.iscsiadm(__salt__["config.get"]), hosts.node_dirs(__salt__["config.get"])
            )
        else:
            config = hosts.powershell_config(__salt__["config.get"])
            # killable: a hung check is stopped after its timeout (never the runspace)
            checker = WindowsChecker(
                lambda seconds: channels.open_channel(config, None, killable=True, timeout=seconds)
            )
        monitor = Monitor(checker, os.path.join(__opts__["cachedir"], BEACON_CACHE_FILE))
        __context__[MONITOR_KEY] = monitor
    try:
        policy = Policy.from_pillar(__pillar__)
        __context__.pop(POLICY_ERROR_KEY, None)
    except PolicyError as exc:
        if __context__.get(POLICY_ERROR_KEY) != str(exc):
            log.error("iscsi beacon: not enforcing the policy: %s", exc)
        __context__[POLICY_ERROR_KEY] = str(exc)
        policy = None
    settings = MonitorSettings(
        interval=float(interval),
        timeout=float(timeout),
        backoff_max=float(backoff_max),
        report_existing=bool(report_existing),
        targets=Selector(target_node_address=targets, exclude_target_node_address=exclude_targets),
    )
    return monitor.tick(settings, policy, lambda: bool(__salt__["saltutil.is_running"]("state.*")))
