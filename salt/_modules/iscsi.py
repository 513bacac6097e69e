"""
Manage the persistence of Microsoft iSCSI initiator sessions.

Wraps ``Get-IscsiSession``, ``Unregister-IscsiSession`` and ``Register-IscsiSession``
(PowerShell module ``iSCSI``) so that sessions which must not reconnect at boot can be
found and made non-persistent from the CLI, from states and from the reactor.

:depends: Windows Server 2016 or newer (Windows PowerShell 5.1, ``iSCSI`` module); the
    ``saltext_win_iscsi`` library (``salt/_utils``, synced with ``saltutil.sync_all``)
:platform: Windows

Every call runs one fixed, versioned PowerShell script; requests travel to it as data (a
base64-encoded JSON document), never as text pasted into PowerShell source. One PowerShell
process serves a whole call, whatever the number of sessions. The work is done by the
``saltext_win_iscsi`` library; this module reads configuration and checks arguments.

Minion configuration (minion config or pillar, read with ``config.get``):

.. code-block:: yaml

    # PowerShell to run: default Windows PowerShell 5.1 (powershell.exe); 'runspace'
    # for Salt's in-process runspace (the beacon still uses a process)
    iscsi.powershell: C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe
    # seconds one request may take before PowerShell is stopped (default 120)
    iscsi.timeout: 120

Mapping of the cmdlet's parameters
----------------------------------
=====================  ===========================================================
Unregister-IscsiSession  this module
=====================  ===========================================================
-SessionIdentifier     ``session_identifier`` (one id, a list, or ``id1,id2``)
-InputObject           ``sessions`` (session dicts as ``iscsi.get_sessions`` returns)
-PassThru              ``passthru=True``
-AsJob                 Salt's own ``salt --async``
-CimSession            ``computer_name`` (remote computers over WinRM)
-ThrottleLimit         ``throttle_limit``
=====================  ===========================================================
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any

import salt.utils.data
import salt.utils.platform

try:  # Salt 3008 wraps pillar in MaskedDict/MaskedList (plain values, masked repr)
    from salt.utils.secret import expose as _expose
except ImportError:  # Salt 3007

    def _expose(value):
        return value


try:
    import saltext_win_iscsi

    saltext_win_iscsi = saltext_win_iscsi.current()
    from saltext_win_iscsi import channels, fanout, persistence, remote
    from saltext_win_iscsi import watch as watching
    from saltext_win_iscsi.errors import IscsiInputError
    from saltext_win_iscsi.monitor import Monitor, MonitorSettings
    from saltext_win_iscsi.policy import PILLAR_KEY, Policy, PolicyError
    from saltext_win_iscsi.selection import Selector, login_selector

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
            f"iscsi: the saltext_win_iscsi library cannot be imported ({LIBRARY_ERROR}); "
            "run saltutil.sync_all (it syncs salt/_utils) or install the wheel",
        )
    if salt.utils.platform.is_windows() or __opts__.get("iscsi.powershell"):
        return __virtualname__
    if __opts__.get("iscsi.winrm") or __pillar__.get("iscsi.winrm"):
        if channels.HAS_WINRM:
            return __virtualname__
        return (False, "iscsi: iscsi.winrm is configured but pywinrm is not installed")
    return (
        False,
        "iscsi: the Microsoft iSCSI initiator is only on Windows; to manage Windows hosts "
        "from this minion, configure WinRM profiles (iscsi.winrm)",
    )


# --------------------------------------------------------------------------------------
# Configuration and the way to each host
# --------------------------------------------------------------------------------------


def _config(key: str, default: Any = None) -> Any:
    return __salt__["config.get"](f"iscsi.{key}", default)


def _resolve_sdb(uri: str, what: str) -> str:
    value = __salt__["sdb.get"](uri)
    if not value or value == uri:
        raise IscsiInputError(f"{what}: the sdb:// URI did not resolve")
    return str(value)


def _run(
    work: Callable[[persistence.Opener], Any],
    computer_name: Any = None,
    profile: Any = None,
    throttle_limit: Any = 0,
    *,
    failed: Callable[[Any], bool] = lambda result: False,
    killable: bool = False,
    timeout: float | None = None,
) -> Any:
    """Run ``work`` against this host or each remote computer; set the exit code on failure."""
    config = _powershell_config()
    secrets: dict[str, str] = {}

    def resolve(uri: str) -> str:
        if uri not in secrets:
            secrets[uri] = _resolve_sdb(uri, "WinRM password")
        return secrets[uri]

    computers = remote.computers(
        computer_name, profile, _config("winrm", {}), _config("winrm_hosts", {}), resolve
    )
    result, host_failed = fanout.on_each(
        computers,
        throttle_limit,
        lambda computer: work(
            functools.partial(channels.open_channel, config, computer, killable, timeout)
        ),
    )
    per_host = (
        [result]
        if computers is None
        else [r for r in result.values() if not (isinstance(r, dict) and "error" in r)]
    )
    if host_failed or any(failed(r) for r in per_host):
        __context__["retcode"] = 1
    return result


def _powershell_config() -> channels.PowerShellConfig:
    return channels.PowerShellConfig.from_settings(_config("powershell"), _config("timeout"))


def _pillar_policy() -> Policy:
    """This minion's policy from pillar; PolicyError (naming the key) if malformed.

    Read from ``__pillar__`` itself: Salt 3008's ``pillar.get`` masks values outside
    templates (every string becomes ``**********``).
    """
    raw = salt.utils.data.traverse_dict_and_list(__pillar__, PILLAR_KEY, {})
    return Policy.parse(_expose(raw))


def _test_mode(test: Any) -> bool:
    return bool(__opts__.get("test", False) if test is None else test)


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------


def version():
    """
    The version of the extension's library this minion runs, and where it was loaded from.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.version
    """
    return {"version": saltext_win_iscsi.__version__, "library": str(saltext_win_iscsi.PACKAGE)}


def get_sessions(
    session_identifier=None,
    target_node_address=None,
    initiator_node_address=None,
    target_portal=None,
    exclude_target_node_address=None,
    is_persistent=None,
    connections=False,
    computer_name=None,
    profile=None,
    throttle_limit=0,
):
    """
    List iSCSI sessions as ``Get-IscsiSession`` reports them.

    Each session is a dict with the cmdlet's own field names (SessionIdentifier,
    TargetNodeAddress, InitiatorNodeAddress, IsPersistent, IsConnected, ...).

    session_identifier
        Only these sessions: one id, a list, or a comma-separated string.

    target_node_address
        Only sessions whose target IQN matches this glob (or any glob of a list): ``*``
        matches any run of characters, ``?`` one character, everything else itself.
        Matching is case-insensitive, as IQNs are. Regular expressions are not supported.

    initiator_node_address
        Likewise for the initiator IQN.

    target_portal
        Only sessions with a connection to a matching portal, written ``address`` or
        ``address:port`` (IPv6 as ``[address]:port``); globs allowed.

    exclude_target_node_address
        Leave out sessions whose target IQN matches this glob (or any of a list): the
        exceptions of a policy.

    is_persistent
        ``True`` or ``False`` to keep only persistent or non-persistent sessions.

    connections
        Add each session's connections (``Connections``: target and initiator address and
        port). Costs one more query per session; implied by ``target_portal``.

    computer_name
        Act on these remote Windows computers over WinRM instead of this minion
        (``-CimSession``): one name, a list, or ``a,b``. Returns a dict keyed by computer;
        a computer that fails is reported as ``{"error": ...}`` and the others go on.

    profile
        The WinRM connection profile (``iscsi.winrm:<profile>`` in config or pillar);
        default: the first ``iscsi.winrm_hosts`` glob matching the computer, else
        ``default``. Credentials never go on the command line.

    throttle_limit
        At most this many computers at once (``-ThrottleLimit``); 0 means 32.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.get_sessions
        salt '*' iscsi.get_sessions target_node_address='iqn.1991-05.com.contoso:*' is_persistent=True
        salt '*' iscsi.get_sessions session_identifier=fffffa800d008430-4000013700000001
        salt linux-mgmt iscsi.get_sessions computer_name=win01,win02 is_persistent=True
    """
    select = Selector(
        session_identifier=session_identifier,
        target_node_address=target_node_address,
        initiator_node_address=initiator_node_address,
        target_portal=target_portal,
        is_persistent=is_persistent,
        exclude_target_node_address=exclude_target_node_address,
    )
    return _run(
        lambda opener: persistence.get_sessions(opener, select, bool(connections)),
        computer_name,
        profile,
        throttle_limit,
    )


def unregister_session(
    session_identifier=None,
    sessions=None,
    target_node_address=None,
    initiator_node_address=None,
    target_portal=None,
    exclude_target_node_address=None,
    passthru=False,
    test=None,
    computer_name=None,
    profile=None,
    throttle_limit=0,
):
    """
    Remove iSCSI sessions from being persistent, so they do not reconnect at restart
    (``Unregister-IscsiSession``). The sessions stay connected.

    Select sessions with ``session_identifier`` (``-SessionIdentifier``: one id, a list, or a
    comma-separated string), ``sessions`` (``-InputObject``: session dicts as
    ``iscsi.get_sessions`` returns them), and/or the globs ``target_node_address``,
    ``initiator_node_address``, ``target_portal`` and ``exclude_target_node_address`` (see
    ``iscsi.get_sessions``). Given together, they narrow each other. At least one of the
    first five is required.

    passthru
        Return the changed sessions as they are afterwards (``-PassThru``) instead of the
        per-session report; raises if any session failed.

    test
        Report what would change and change nothing (defaults to the minion's ``test``).

    computer_name, profile, throttle_limit
        Remote Windows computers over WinRM (``-CimSession``, ``-ThrottleLimit``), as for
        ``iscsi.get_sessions``.

    Returns a dict keyed by session id, each with ``status``: ``unregistered``,
    ``not_persistent`` (nothing to do), ``not_found``, ``would_unregister`` (test) or
    ``failed`` with ``error``, the Windows error. Any failure sets the exit code to 1.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.unregister_session session_identifier=fffffa800d008430-4000013700000001
        salt '*' iscsi.unregister_session target_node_address='iqn.1991-05.com.contoso:*'
        salt '*' iscsi.unregister_session target_node_address='*:backup-*' test=True
        salt linux-mgmt iscsi.unregister_session computer_name=win01,win02 target_node_address='*:backup-*' throttle_limit=10
    """
    select = Selector(
        session_identifier=session_identifier,
        sessions=sessions,
        target_node_address=target_node_address,
        initiator_node_address=initiator_node_address,
        target_portal=target_portal,
        exclude_target_node_address=exclude_target_node_address,
    )
    select.require()
    test = _test_mode(test)
    return _run(
        lambda opener: persistence.change_persistence(
            opener,
            op="unregister",
            select=select,
            want_persistent=False,
            force=False,
            done_status="unregistered",
            skip_status="not_persistent",
            test=test,
            passthru=passthru,
        ),
        computer_name,
        profile,
        throttle_limit,
        failed=persistence.failed,
    )


def register_session(
    session_identifier=None,
    sessions=None,
    target_node_address=None,
    initiator_node_address=None,
    target_portal=None,
    exclude_target_node_address=None,
    is_multipath_enabled=False,
    chap_username=None,
    chap_secret=None,
    force=False,
    passthru=False,
    test=None,
    computer_name=None,
    profile=None,
    throttle_limit=0,
):
    """
    Make iSCSI sessions persistent, so they reconnect at restart
    (``Register-IscsiSession``), the inverse of ``iscsi.unregister_session``.

    Sessions are selected as for ``iscsi.unregister_session``.

    is_multipath_enabled
        ``-IsMultipathEnabled``: reconnect with MPIO.

    chap_username, chap_secret
        ``-ChapUsername`` / ``-ChapSecret``. Arguments given on the command line are kept
        in the job cache: pass the secret as an ``sdb://`` URI, or from a state with
        pillar data. The secret never appears in a log, a return or an error.

    force
        Register a session that is already persistent again. Each registration adds a
        persistent login that reconnects at restart (what MPIO set-ups do on purpose).

    passthru, test, computer_name, profile, throttle_limit
        As for ``iscsi.unregister_session``.

    Returns a dict keyed by session id, each with ``status``: ``registered``,
    ``already_persistent``, ``not_found``, ``would_register`` (test) or ``failed`` with
    ``error``.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.register_session session_identifier=fffffa800d008430-4000013700000001
        salt '*' iscsi.register_session target_node_address='iqn.*:db-*' is_multipath_enabled=True
        salt '*' iscsi.register_session session_identifier=... chap_username=host1 chap_secret=sdb://vault/iscsi/chap
    """
    select = Selector(
        session_identifier=session_identifier,
        sessions=sessions,
        target_node_address=target_node_address,
        initiator_node_address=initiator_node_address,
        target_portal=target_portal,
        exclude_target_node_address=exclude_target_node_address,
    )
    select.require()
    if chap_username is not None and not isinstance(chap_username, str):
        raise IscsiInputError("chap_username must be a string")
    secret = chap_secret
    if isinstance(secret, str) and secret.startswith("sdb://"):
        secret = _resolve_sdb(secret, "chap_secret")
    if secret is not None and not isinstance(secret, str):
        raise IscsiInputError("chap_secret must be a string")
    # The initiator accepts CHAP secrets of 12 to 16 bytes; checking here keeps the value
    # out of PowerShell's parameter-validation message.
    if secret is not None and not 12 <= len(secret.encode("utf-8")) <= 16:
        raise IscsiInputError("chap_secret must be 12 to 16 bytes long")
    fields = {"is_multipath_enabled": bool(is_multipath_enabled), "chap_username": chap_username}
    secrets = {"chap_secret": secret} if secret is not None else None
    test = _test_mode(test)
    return _run(
        lambda opener: persistence.change_persistence(
            opener,
            op="register",
            select=select,
            want_persistent=True,
            force=bool(force),
            done_status="registered",
            skip_status="already_persistent",
            test=test,
            passthru=passthru,
            fields=fields,
            secrets=secrets,
        ),
        computer_name,
        profile,
        throttle_limit,
        failed=persistence.failed,
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

    # killable: the beacon must be able to stop a hung check (never the runspace)
    return _run(work, killable=True, timeout=timeout)


def get_persistent_logins(
    target_node_address=None,
    target_portal=None,
    exclude_target_node_address=None,
    computer_name=None,
    profile=None,
    throttle_limit=0,
):
    """
    List the initiator's persistent logins: what reconnects at boot, one entry per
    registration, whether or not the target has a live session today
    (WMI ``MSiSCSIInitiator_PersistentLoginClass``).

    Each entry: ``TargetName``, ``InitiatorInstance``, ``InitiatorPortNumber``
    (4294967295 = any port), ``TargetPortalAddress``, ``TargetPortalPort``.

    target_node_address, target_portal, exclude_target_node_address
        Globs as for ``iscsi.get_sessions``.

    computer_name, profile, throttle_limit
        As for ``iscsi.get_sessions``.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.get_persistent_logins
        salt '*' iscsi.get_persistent_logins target_node_address='*:backup-*'
    """
    select = login_selector(target_node_address, target_portal, exclude_target_node_address)
    return _run(
        lambda opener: persistence.get_persistent_logins(opener, select),
        computer_name,
        profile,
        throttle_limit,
    )


def remove_persistent_login(
    target_node_address=None,
    target_portal=None,
    exclude_target_node_address=None,
    test=None,
    computer_name=None,
    profile=None,
    throttle_limit=0,
):
    """
    Remove persistent logins from the initiator's list, so the targets do not reconnect at
    boot, including targets that have no live session today and that session-based cmdlets
    therefore cannot see (``iscsicli RemovePersistentTarget``). Live sessions stay connected.

    target_node_address
        Globs on the target IQN (required).

    target_portal, exclude_target_node_address
        Narrow the selection, as for ``iscsi.get_sessions``.

    test
        Report what would be removed and remove nothing.

    computer_name, profile, throttle_limit
        As for ``iscsi.unregister_session``.

    Returns one entry per distinct login (``entries`` counts duplicates, e.g. MPIO
    registrations), each with ``status``: ``removed``, ``would_remove`` or ``failed`` with
    ``error``. Any failure sets the exit code to 1.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.remove_persistent_login target_node_address='iqn.1991-05.com.contoso:backup-*'
        salt '*' iscsi.remove_persistent_login target_node_address='*' target_portal='10.0.9.*' test=True
    """
    if target_node_address is None:
        raise IscsiInputError("target_node_address is required (a glob on the target IQN)")
    select = login_selector(target_node_address, target_portal, exclude_target_node_address)
    test = _test_mode(test)
    return _run(
        lambda opener: persistence.remove_persistent_logins(opener, select, test),
        computer_name,
        profile,
        throttle_limit,
        failed=persistence.failed,
    )


# --------------------------------------------------------------------------------------
# The pillar policy: one parser for the formula, the beacon and the fleet report
# --------------------------------------------------------------------------------------


def policy_states():
    """
    The states the ``iscsi`` formula renders from this minion's pillar policy
    (``iscsi:policy``, see ``pillar.example``).

    Returns ``{"states": [{"id", "function", "args"}, ...], "error": None}``, or no states
    and an ``error`` naming the malformed pillar key (the formula then fails before
    anything is changed).

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.policy_states
    """
    try:
        policy = _pillar_policy()
    except PolicyError as exc:
        return {"states": [], "error": str(exc)}
    return {
        "states": [
            {"id": rule.state_id, "function": f"iscsi.{rule.kind}", "args": rule.state_args}
            for rule in policy.rules
        ],
        "error": None,
    }


def check_policy(computer_name=None, profile=None, throttle_limit=0):
    """
    Evaluate this minion's pillar policy against the host now, changing nothing.

    One PowerShell process reads the sessions and the persistent-login list; each persistent
    session and each persistent login that a rule forbids is a violation.

    computer_name, profile, throttle_limit
        Evaluate on remote Windows computers over WinRM instead, as for
        ``iscsi.get_sessions``.

    Returns ``{"compliant": bool, "rules": n, "violations": [{"rule", "kind", "target",
    "session" or "portal"/"entries"}, ...]}``. A malformed policy raises an error naming
    the pillar key.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.check_policy
    """
    policy = _pillar_policy()
    return _run(
        lambda opener: persistence.check_policy(opener, policy),
        computer_name,
        profile,
        throttle_limit,
    )


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
        config = _powershell_config()
        monitor = Monitor(
            # killable: a hung check is stopped after its timeout (never the runspace)
            lambda seconds: channels.open_channel(config, None, killable=True, timeout=seconds),
            os.path.join(__opts__["cachedir"], BEACON_CACHE_FILE),
        )
        __context__[MONITOR_KEY] = monitor
    try:
        policy = _pillar_policy()
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
