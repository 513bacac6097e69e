"""
Manage iSCSI initiator sessions and their persistence: which sessions reconnect at boot.

On Windows it wraps ``Get-IscsiSession``, ``Unregister-IscsiSession``,
``Register-IscsiSession`` and the rest of the ``iSCSI`` PowerShell module, locally or on
remote computers over WinRM; on Linux minions it manages open-iscsi's node records through
``iscsiadm``. Sessions that must not reconnect at boot can be found and made
non-persistent from the CLI, from states and from the reactor.

:depends: the ``saltext_win_iscsi`` library (``salt/_utils``, synced with
    ``saltutil.sync_all``, or the wheel); on Windows: Windows PowerShell 5.1 and the
    ``iSCSI`` module (Windows Server 2016 or newer); on Linux: open-iscsi; for remote
    computers: pywinrm
:platform: Windows, Linux

On Windows every call runs one fixed, versioned PowerShell script, in one PowerShell
process whatever the number of sessions; requests travel to it as data (base64-encoded
JSON), never as text pasted into PowerShell source. On Linux every value reaches iscsiadm
as an argv item, never through a shell. The work is done by the ``saltext_win_iscsi``
library; this module reads configuration and checks arguments.

Minion configuration (minion config or pillar, read with ``config.get``):

.. code-block:: yaml

    # PowerShell to run: default Windows PowerShell 5.1 (powershell.exe); 'runspace'
    # for Salt's in-process runspace (the beacon still uses a process)
    iscsi.powershell: C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe
    # seconds one request (PowerShell or iscsiadm) may take before it is stopped (default 120)
    iscsi.timeout: 120
    # Linux: iscsiadm (default: found on PATH or in sbin) and the node database folders
    iscsi.iscsiadm: /usr/sbin/iscsiadm
    iscsi.node_dirs: [/etc/iscsi/nodes, /var/lib/iscsi/nodes]
    # Linux, iscsi.diagnose: systemctl and pidof (default: found on PATH)
    iscsi.systemctl: /usr/bin/systemctl
    iscsi.pidof: /usr/bin/pidof
    # which initiator this minion manages: windows or open-iscsi (default: what it has)
    iscsi.backend: windows
    # Windows under WDAC/AppLocker: an installed, signed copy of this version's main.ps1,
    # run with -File (checked against the shipped script before every start)
    iscsi.script_path: C:\\ProgramData\\saltext-iscsi\\main.ps1
    # Linux: lsblk (mounted disks, for iscsi.absent; default: found on PATH) and iscsid.conf
    # (the defaults of new node records)
    iscsi.lsblk: /usr/bin/lsblk
    iscsi.iscsid_conf: /etc/iscsi/iscsid.conf

Mapping of ``Unregister-IscsiSession``'s parameters:

=========================  ==========================================================
Unregister-IscsiSession    this module
=========================  ==========================================================
-SessionIdentifier         ``session_identifier`` (one id, a list, or ``id1,id2``)
-InputObject (pipeline)    ``sessions`` (session dicts as ``iscsi.get_sessions`` returns)
-PassThru                  ``passthru=True``: the changed sessions as they are afterwards
-AsJob                     Salt's own ``salt --async`` (then ``salt-run jobs.lookup_jid``)
-CimSession                ``computer_name`` (remote computers over WinRM)
-ThrottleLimit             ``throttle_limit``: computers worked on at once; 0 means 32
-WhatIf (common)           ``test=True``
=========================  ==========================================================
"""

import logging
import os

try:
    import saltext_win_iscsi

    saltext_win_iscsi = saltext_win_iscsi.current()
    from saltext_win_iscsi import backend, outcome
    from saltext_win_iscsi.beacon.monitor import Monitor, MonitorSettings
    from saltext_win_iscsi.config import Settings
    from saltext_win_iscsi.errors import IscsiInputError
    from saltext_win_iscsi.model import Portal, authentication, checked_name
    from saltext_win_iscsi.policy import Policy, PolicyError
    from saltext_win_iscsi.selection import Selector, as_list, login_selector
    from saltext_win_iscsi.spec import DISK_TIMEOUT, PersistenceSpec, PortalSpec, TargetSpec

    LIBRARY_ERROR = None
except ImportError as exc:  # the library was not synced (salt/_utils) or installed
    LIBRARY_ERROR = str(exc)

log = logging.getLogger(__name__)

__virtualname__ = "iscsi"

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
    ok, why = backend.available(Settings.from_opts(__opts__, __pillar__))
    return __virtualname__ if ok else (False, why)


def _settings():
    return Settings.read(__salt__["config.get"], __salt__["sdb.get"])


def _run(work, computer_name=None, profile=None, throttle_limit=0, failed=None):
    """``work(backend)`` on this host or each remote computer; the exit code says if any
    failed."""
    result, any_failed = backend.run(
        work, _settings(), computer_name, profile, throttle_limit, failed or (lambda r: False)
    )
    if any_failed:
        __context__["retcode"] = 1
    return result


def _test(test):
    return bool(__opts__.get("test", False) if test is None else test)


def _outcome_failed(result):
    return bool(result.get("errors"))


def _selector(session_identifier, sessions, target, initiator, portal, exclude):
    select = Selector(
        session_identifier=session_identifier,
        sessions=sessions,
        target_node_address=target,
        initiator_node_address=initiator,
        target_portal=portal,
        exclude_target_node_address=exclude,
    )
    select.require()
    return select


def _user(chap_username):
    """A CHAP user name travels as data, whatever its characters."""
    if chap_username is not None and not isinstance(chap_username, str):
        raise IscsiInputError("chap_username must be a string")
    return chap_username or None


def _seconds(value, name, default):
    """A number of seconds (0 or more); ``default`` when not given."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise IscsiInputError(f"{name} must be a number of seconds (0 or more), not {value!r}")
    return float(value)


def _portal(address, port, initiator_portal_address=None):
    return Portal.of(address, port, initiator_portal_address)


def _portal_spec(address, port, initiator, authentication_type, chap_username, chap_secret):
    return PortalSpec(
        portal=_portal(address, port, initiator),
        authentication=authentication(authentication_type),
        chap_username=_user(chap_username),
        chap_secret=_settings().secret(chap_secret),
    )


# --------------------------------------------------------------------------------------
# Sessions and their persistence
# --------------------------------------------------------------------------------------


def version():
    """
    The version of the extension's library this minion runs, where it was loaded from, and
    what manages this host's initiator (``windows``, or ``open-iscsi (<iscsiadm path>)`` on
    Linux minions).

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.version
    """
    return {
        "version": saltext_win_iscsi.__version__,
        "library": str(saltext_win_iscsi.PACKAGE),
        "backend": backend.describe(_settings()),
    }


def get_sessions(
    session_identifier=None,
    target_node_address=None,
    initiator_node_address=None,
    target_portal=None,
    exclude_target_node_address=None,
    is_persistent=None,
    connections=False,
    disks=False,
    computer_name=None,
    profile=None,
    throttle_limit=0,
):
    """
    List iSCSI sessions as ``Get-IscsiSession`` reports them.

    Each session is a dict with the cmdlet's own field names (SessionIdentifier,
    TargetNodeAddress, InitiatorNodeAddress, IsPersistent, IsConnected, ...). On Linux
    minions the same names are filled from ``iscsiadm -m session -P 3``, plus what only
    open-iscsi has (``StartupMode``, ``AttachedDisks``, ...).

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
        port). Costs one more query per session on Windows; implied by ``target_portal``.

    disks
        Add each session's disks (``Disks``: ``Get-Disk -IscsiSession``: Number,
        FriendlyName, SerialNumber, Size, IsBoot, IsSystem, IsClustered, IsOffline) with
        their ``Volumes`` (DriveLetter, AccessPaths: mount points; ``IsBound`` and
        ``BoundPaths``: on the initiator's persistently bound list, which the iSCSI service
        waits for at start-up). ``DisksUnknown`` is true where no disk could be associated
        on a failover-cluster node (Windows may not link clustered disks to the session).
        On Linux the disks are always in ``AttachedDisks``.

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
        salt '*' iscsi.get_sessions disks=True
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
        lambda host: host.get_sessions(select, bool(connections), bool(disks)),
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
    (``Unregister-IscsiSession``; on Linux: the session's node record gets
    ``node.startup = manual``). The sessions stay connected.

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
    Windows: once a target has no persistent login left, its volumes leave the bound
    list (``volumes_unbound``). Linux: ``warning`` says when iscsid.conf's default
    ``node.startup = automatic`` would make the record persistent again at the next
    plain rediscovery (policy ``defaults``, state ``iscsi.initiator_defaults``).

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.unregister_session session_identifier=fffffa800d008430-4000013700000001
        salt '*' iscsi.unregister_session target_node_address='iqn.1991-05.com.contoso:*'
        salt '*' iscsi.unregister_session target_node_address='*:backup-*' test=True
        salt linux-mgmt iscsi.unregister_session computer_name=win01,win02 target_node_address='*:backup-*' throttle_limit=10
    """
    spec = PersistenceSpec(
        _selector(
            session_identifier,
            sessions,
            target_node_address,
            initiator_node_address,
            target_portal,
            exclude_target_node_address,
        ),
        persistent=False,
    )
    test, passthru = _test(test), bool(passthru)
    return _run(
        lambda host: host.change_persistence(spec, test, passthru),
        computer_name,
        profile,
        throttle_limit,
        failed=outcome.failed,
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
    allow_unclaimed_multipath=False,
    passthru=False,
    test=None,
    computer_name=None,
    profile=None,
    throttle_limit=0,
):
    """
    Make iSCSI sessions persistent, so they reconnect at restart
    (``Register-IscsiSession``; on Linux: ``node.startup = automatic``), the inverse of
    ``iscsi.unregister_session``.

    Sessions are selected as for ``iscsi.unregister_session``.

    is_multipath_enabled
        ``-IsMultipathEnabled``: reconnect with MPIO (Windows).

    chap_username, chap_secret
        ``-ChapUsername`` / ``-ChapSecret`` (Windows). Arguments given on the command line
        are kept in the job cache: pass the secret as an ``sdb://`` URI, or from a state
        with pillar data. The secret never appears in a log, a return or an error.

    force
        Register a session that is already persistent again. Each registration adds a
        persistent login that reconnects at restart (what MPIO set-ups do on purpose).

    allow_unclaimed_multipath
        With the MPIO flag, go on although the host's MPIO does not claim iSCSI disks
        (Windows; otherwise refused before anything changes: each path would show the LUN
        as a disk of its own, which can corrupt data). Default ``False``.

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
    spec = PersistenceSpec(
        _selector(
            session_identifier,
            sessions,
            target_node_address,
            initiator_node_address,
            target_portal,
            exclude_target_node_address,
        ),
        persistent=True,
        force=bool(force),
        multipath=bool(is_multipath_enabled),
        chap_username=_user(chap_username),
        chap_secret=_settings().secret(chap_secret),
        allow_unclaimed_multipath=bool(allow_unclaimed_multipath),
    )
    test, passthru = _test(test), bool(passthru)
    return _run(
        lambda host: host.change_persistence(spec, test, passthru),
        computer_name,
        profile,
        throttle_limit,
        failed=outcome.failed,
    )


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
    registration, whether or not the target has a live session today (Windows: WMI
    ``MSiSCSIInitiator_PersistentLoginClass``; Linux: the node records with
    ``node.startup = automatic``).

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
        lambda host: host.get_persistent_logins(select), computer_name, profile, throttle_limit
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
    therefore cannot see (Windows: ``iscsicli RemovePersistentTarget``; Linux: the records
    get ``node.startup = manual`` and stay). Live sessions stay connected.

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
    ``error``. Any failure sets the exit code to 1. Windows removes a login without a
    portal on every portal of its target: removing such a login alone while the target
    has other logins is refused (``failed``, changing nothing), and a login that vanished
    with the chosen ones without being selected is reported ``failed`` (register it again
    if it is wanted).

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.remove_persistent_login target_node_address='iqn.1991-05.com.contoso:backup-*'
        salt '*' iscsi.remove_persistent_login target_node_address='*' target_portal='10.0.9.*' test=True
    """
    if target_node_address is None:
        raise IscsiInputError("target_node_address is required (a glob on the target IQN)")
    select = login_selector(target_node_address, target_portal, exclude_target_node_address)
    test = _test(test)
    return _run(
        lambda host: host.remove_persistent_logins(select, test),
        computer_name,
        profile,
        throttle_limit,
        failed=outcome.failed,
    )


def ensure_persistence(
    persistent=False,
    session_identifier=None,
    target_node_address=None,
    initiator_node_address=None,
    target_portal=None,
    exclude_target_node_address=None,
    persistent_logins=True,
    is_multipath_enabled=False,
    chap_username=None,
    chap_secret=None,
    allow_unclaimed_multipath=False,
    test=None,
    computer_name=None,
    profile=None,
    throttle_limit=0,
):
    """
    Make the selected sessions persistent or not, in one host session (one PowerShell
    process on Windows): what the ``iscsi.persistent`` and ``iscsi.not_persistent`` states
    run.

    persistent
        ``False`` (default): the sessions must not reconnect at boot; ``True``: they must.

    session_identifier, target_node_address, initiator_node_address, target_portal, exclude_target_node_address
        The selection, as for ``iscsi.unregister_session`` (at least one of the first four).

    persistent_logins
        Making sessions non-persistent, also remove the persistent logins to the selected
        targets that no persistent live session stands for (targets unreachable today that
        would reconnect at the next boot); needs ``target_node_address`` or
        ``target_portal``. Default ``True``.

    is_multipath_enabled, chap_username, chap_secret, allow_unclaimed_multipath
        How a registration reconnects, as for ``iscsi.register_session``.

    Returns ``{"changes", "comments", "errors"}``; after making sessions non-persistent the
    comments name the disks and volumes that will be missing after the next restart.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.ensure_persistence target_node_address='iqn.1991-05.com.contoso:backup-*' test=True
        salt '*' iscsi.ensure_persistence persistent=True target_node_address='*:db-*'
    """
    select = _selector(
        session_identifier,
        None,
        target_node_address,
        initiator_node_address,
        target_portal,
        exclude_target_node_address,
    )
    wants_logins = not persistent and persistent_logins and (target_node_address or target_portal)
    spec = PersistenceSpec(
        select,
        persistent=bool(persistent),
        multipath=bool(is_multipath_enabled),
        chap_username=_user(chap_username),
        chap_secret=_settings().secret(chap_secret),
        allow_unclaimed_multipath=bool(allow_unclaimed_multipath),
        logins=login_selector(
            target_node_address or "*", target_portal, exclude_target_node_address
        )
        if wants_logins
        else None,
    )
    test = _test(test)
    return _run(
        lambda host: host.ensure_persistence(spec, test),
        computer_name,
        profile,
        throttle_limit,
        failed=_outcome_failed,
    )


def diagnose(observations=False, computer_name=None, profile=None, throttle_limit=0):
    """
    Say whether this host is ready for iSCSI, changing nothing: each fact with its value
    and a verdict (``ok``, ``warn``, ``fail``, ``unknown``) and, unless ``ok``, why.

    Windows (one PowerShell process): PowerShell's edition, version and language mode, the
    iSCSI module, the MSiSCSI service's state and start type, the "iSCSI Service" firewall
    rules, the Multipath-IO feature, whether MSDSM claims iSCSI devices and its global
    load-balance policy, the initiator's node names, the initiator driver's timers
    (``LinkDownTime``, ``MaxRequestHoldTime``, ...), the disk ``TimeOutValue`` and MPIO's
    ``PDORemovePeriod``. Linux: whether iscsid runs and starts at boot, iscsid.conf's
    ``node.startup``, ``replacement_timeout`` and noop timeouts, the initiator name,
    multipathd. A fact that cannot be read is ``unknown`` and says why; the call itself
    does not fail for it.

    observations
        True: also return ``observations``, the read-only observations the project's
        simulated Windows host loads (``ISCSI_SIM_OBSERVATIONS``): which session fields are
        null, the addresses sessions and connections show, WMI's persistent logins against
        ``iscsicli ListPersistentTargets``, the shape of a not-found error. Nothing is
        changed on the host; attach it to bug reports.

    computer_name, profile, throttle_limit
        Diagnose remote Windows computers over WinRM instead, as for ``iscsi.get_sessions``.

    Returns ``{"platform", "verdicts": {"ok": n, ...}, "items": {name: {"value",
    "verdict", "why"}}}``.

    CLI Example:

    .. code-block:: bash

        salt-call iscsi.diagnose
        salt-call iscsi.diagnose observations=True --out=json > iscsi-observations.json
    """
    if not isinstance(observations, bool):
        raise IscsiInputError("observations must be True or False")
    return _run(lambda host: host.diagnose(observations), computer_name, profile, throttle_limit)


def ensure_ready(
    service=None,
    mpio_claims_iscsi=None,
    timers=None,
    disk_timeout=None,
    pdo_remove_period=None,
    initiator_name=None,
    iscsid_conf=None,
    test=None,
):
    """
    Make the host as the readiness rules want it (what the ``iscsi.ready`` state runs; the
    rules as under ``iscsi:policy:readiness``, see ``pillar.example``). On Windows one
    PowerShell process diagnoses, fixes in one request (start type and start of MSiSCSI,
    MSDSM's claim of iSCSI devices, the initiator's timers, the disk ``TimeOutValue``,
    ``PDORemovePeriod``) and diagnoses again; on Linux ``iscsid.conf``'s values are written.
    What is not changed by this (the initiator's name, a stopped iscsid) is an error that
    says what to do.

    service, mpio_claims_iscsi
        True: the service must run and start at boot; MSDSM must claim iSCSI devices.

    timers, disk_timeout, pdo_remove_period
        Windows: ``{LinkDownTime: 35, ...}`` (seconds) and whole seconds.

    initiator_name
        A glob every initiator name must match (checked, never changed).

    iscsid_conf
        Linux: ``{node.session.timeo.replacement_timeout: 120, ...}``.

    Returns ``{"changes", "comments", "errors"}``.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.ensure_ready service=True timers='{LinkDownTime: 35}' test=True
    """
    rules = {
        "service": service,
        "mpio_claims_iscsi": mpio_claims_iscsi,
        "timers": timers,
        "disk_timeout": disk_timeout,
        "pdo_remove_period": pdo_remove_period,
        "initiator_name": initiator_name,
        "iscsid_conf": iscsid_conf,
    }
    policy = Policy.parse({"readiness": {k: v for k, v in rules.items() if v is not None}})
    test = _test(test)
    return _run(
        lambda host: host.ensure_ready(policy.readiness_items, test), failed=_outcome_failed
    )


def ensure_defaults(node_startup=None, test=None):
    """
    Make the initiator's defaults for new node records as given (what the
    ``iscsi.initiator_defaults`` state runs). Linux (open-iscsi) only has such defaults, in
    ``iscsid.conf`` (``iscsi.iscsid_conf``): a discovery gives new records its
    ``node.startup``, and a plain rediscovery rewrites existing ones with it, so where it is
    ``automatic`` targets the policy keeps non-persistent come back at the next boot. On
    Windows there is nothing to manage and nothing is changed.

    node_startup
        ``manual`` (what keeps rediscovered targets away) or ``automatic``.

    Returns ``{"changes", "comments", "errors"}``.

    CLI Example:

    .. code-block:: bash

        salt -G 'kernel:Linux' iscsi.ensure_defaults node_startup=manual test=True
    """
    wanted = Policy.parse({"defaults": {"node_startup": node_startup}}).defaults
    test = _test(test)
    return _run(lambda host: host.ensure_defaults(wanted, test), failed=_outcome_failed)


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
        return {"states": Policy.from_pillar(__pillar__).states(), "error": None}
    except PolicyError as exc:
        return {"states": [], "error": str(exc)}


def check_policy(computer_name=None, profile=None, throttle_limit=0):
    """
    Evaluate this minion's pillar policy against the host now, changing nothing.

    One host session reads the sessions and the persistent-login list; each persistent
    session and each persistent login that a rule forbids is a violation, and so is each
    path of a ``connected`` rule that is not as wanted.

    computer_name, profile, throttle_limit
        Evaluate on remote Windows computers over WinRM instead, as for
        ``iscsi.get_sessions``.

    Returns ``{"compliant": bool, "rules": n, "violations": [{"rule", "kind", "target",
    "session" or "portal"/"entries"}, ...], "risks": [...]}``: ``risks`` name what may break
    the policy later (on Linux: new node records getting ``node.startup = automatic`` while
    ``not_persistent`` rules forbid persistence). A malformed policy raises an error naming
    the pillar key.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.check_policy
    """
    policy = Policy.from_pillar(__pillar__)
    return _run(lambda host: host.check_policy(policy), computer_name, profile, throttle_limit)


# --------------------------------------------------------------------------------------
# The initiator's lifecycle: portals, targets, connections
# --------------------------------------------------------------------------------------


def get_target_portals(computer_name=None, profile=None, throttle_limit=0):
    """
    List the initiator's target portals (``Get-IscsiTargetPortal``): address, port,
    initiator portal address and instance, digest flags.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.get_target_portals
    """
    return _run(lambda host: host.get_target_portals(), computer_name, profile, throttle_limit)


def add_target_portal(
    target_portal_address,
    target_portal_port=None,
    initiator_portal_address=None,
    authentication_type=None,
    chap_username=None,
    chap_secret=None,
    test=None,
    computer_name=None,
    profile=None,
    throttle_limit=0,
):
    """
    Add a target portal and discover the targets it offers (``New-IscsiTargetPortal``).

    target_portal_address, target_portal_port
        The portal (IP address or DNS name; port 3260 by default).

    initiator_portal_address
        The local address discovery goes out from (choose the NIC for MPIO paths).

    authentication_type, chap_username, chap_secret
        CHAP for the discovery session: ``none``, ``one-way`` or ``mutual``. Give the
        secret as an ``sdb://`` URI: arguments land in the job cache.

    Returns ``{"portal", "status"}``: ``added`` or ``would_add`` (test).

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.add_target_portal 10.0.0.5
        salt '*' iscsi.add_target_portal 10.0.1.5 initiator_portal_address=10.0.1.21
    """
    spec = _portal_spec(
        target_portal_address,
        target_portal_port,
        initiator_portal_address,
        authentication_type,
        chap_username,
        chap_secret,
    )
    test = _test(test)
    return _run(
        lambda host: host.add_target_portal(spec, test), computer_name, profile, throttle_limit
    )


def remove_target_portal(
    target_portal_address,
    target_portal_port=None,
    test=None,
    computer_name=None,
    profile=None,
    throttle_limit=0,
):
    """
    Remove a target portal (``Remove-IscsiTargetPortal``). Connected sessions stay.

    Returns ``{"portal", "status"}``: ``removed`` or ``would_remove`` (test).

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.remove_target_portal 10.0.0.5
    """
    portal = _portal(target_portal_address, target_portal_port)
    test = _test(test)
    return _run(
        lambda host: host.remove_target_portal(portal, test), computer_name, profile, throttle_limit
    )


def update_target_portal(
    target_portal_address,
    target_portal_port=None,
    computer_name=None,
    profile=None,
    throttle_limit=0,
):
    """
    Discover again what a portal offers (``Update-IscsiTargetPortal``).

    Returns ``{"portal", "status": "refreshed"}``.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.update_target_portal 10.0.0.5
    """
    portal = _portal(target_portal_address, target_portal_port)
    return _run(
        lambda host: host.update_target_portal(portal), computer_name, profile, throttle_limit
    )


def ensure_portal(
    target_portal_address,
    target_portal_port=None,
    present=True,
    initiator_portal_address=None,
    authentication_type=None,
    chap_username=None,
    chap_secret=None,
    test=None,
    computer_name=None,
    profile=None,
    throttle_limit=0,
):
    """
    Make a target portal configured (``present=True``, which discovers its targets) or not,
    in one host session: what the ``iscsi.portal_present`` and ``iscsi.portal_absent``
    states run. Sessions stay either way.

    target_portal_address, target_portal_port, initiator_portal_address, authentication_type, chap_username, chap_secret
        As for ``iscsi.add_target_portal``.

    Returns ``{"changes", "comments", "errors"}``.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.ensure_portal 10.0.1.5 initiator_portal_address=10.0.1.21 test=True
        salt '*' iscsi.ensure_portal 10.0.9.5 present=False
    """
    spec = _portal_spec(
        target_portal_address,
        target_portal_port,
        initiator_portal_address,
        authentication_type,
        chap_username,
        chap_secret,
    )
    present, test = bool(present), _test(test)
    return _run(
        lambda host: host.ensure_portal(spec, present, test),
        computer_name,
        profile,
        throttle_limit,
        failed=_outcome_failed,
    )


def get_targets(node_address=None, computer_name=None, profile=None, throttle_limit=0):
    """
    List the discovered targets (``Get-IscsiTarget``): ``NodeAddress``, ``IsConnected``.

    node_address
        Only targets matching this glob (or any of a list).

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.get_targets
        salt '*' iscsi.get_targets node_address='iqn.1991-05.com.contoso:db-*'
    """
    select = Selector(target_node_address=node_address)
    return _run(lambda host: host.get_targets(select), computer_name, profile, throttle_limit)


def _portals(portals):
    """The paths of ensure_connected: a portal, or a list of them."""
    if isinstance(portals, (str, dict)):
        portals = as_list(portals, "portals") if isinstance(portals, str) else [portals]
    if portals is not None and not isinstance(portals, (list, tuple)):
        raise IscsiInputError("portals must be a portal or a list of portals")
    return tuple(Portal.parse(p) for p in portals or ())


def _target_spec(
    node_address,
    portals,
    persistent,
    multipath,
    authentication_type,
    chap_username,
    chap_secret,
    initiator_chap_secret=None,
    allow_unclaimed_multipath=False,
):
    """A TargetSpec from arguments; secrets resolved from sdb:// URIs, length-checked."""
    settings = _settings()
    return TargetSpec(
        node_address=checked_name(node_address, "node_address"),
        portals=portals,
        persistent=bool(persistent),
        multipath=bool(multipath),
        authentication=authentication(authentication_type)
        or ("ONEWAYCHAP" if chap_secret is not None else "NONE"),
        chap_username=_user(chap_username),
        chap_secret=settings.secret(chap_secret),
        initiator_chap_secret=settings.secret(initiator_chap_secret, "initiator_chap_secret"),
        allow_unclaimed_multipath=bool(allow_unclaimed_multipath),
    )


def connect_target(
    node_address,
    target_portal_address=None,
    target_portal_port=None,
    initiator_portal_address=None,
    is_persistent=False,
    is_multipath_enabled=False,
    authentication_type=None,
    chap_username=None,
    chap_secret=None,
    allow_unclaimed_multipath=False,
    test=None,
    computer_name=None,
    profile=None,
    throttle_limit=0,
):
    """
    Connect to a discovered target over one path (``Connect-IscsiTarget``).

    node_address
        The target's IQN.

    target_portal_address, target_portal_port, initiator_portal_address
        The path: which portal, from which local address (MPIO paths differ here).
        Without a portal, Windows picks one.

    is_persistent
        Reconnect at boot (adds a persistent login).

    is_multipath_enabled
        Allow more sessions to the same target (MPIO).

    authentication_type, chap_username, chap_secret
        ``none``, ``one-way`` or ``mutual`` CHAP (mutual also needs the initiator's
        secret, ``iscsi.set_initiator_chap_secret``).

    allow_unclaimed_multipath
        With the MPIO flag, go on although the host's MPIO does not claim iSCSI disks
        (Windows; otherwise refused before anything changes: each path would show the LUN
        as a disk of its own, which can corrupt data). Default ``False``.

    Returns ``{"target", "portal", "status"}``: ``connected`` or ``would_connect``.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.connect_target iqn.1991-05.com.contoso:db-01 target_portal_address=10.0.1.5 is_persistent=True
    """
    path = ()
    if target_portal_address is not None:
        path = (_portal(target_portal_address, target_portal_port, initiator_portal_address),)
    spec = _target_spec(
        node_address,
        path,
        is_persistent,
        is_multipath_enabled,
        authentication_type,
        chap_username,
        chap_secret,
        allow_unclaimed_multipath=allow_unclaimed_multipath,
    )
    test = _test(test)
    return _run(
        lambda host: host.connect_target(spec, test), computer_name, profile, throttle_limit
    )


def disconnect_target(
    node_address=None,
    session_identifier=None,
    test=None,
    computer_name=None,
    profile=None,
    throttle_limit=0,
):
    """
    Disconnect sessions (``Disconnect-IscsiTarget``): all sessions of the targets matching
    ``node_address`` (a glob), or the sessions ``session_identifier`` names. Persistent
    logins stay: the target comes back at boot unless unregistered first (``iscsi.absent``
    does both, in that order).

    Returns per session id: ``disconnected``, ``would_disconnect``, ``not_found`` or
    ``failed`` with the Windows error (e.g. a disk in use).

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.disconnect_target node_address='iqn.1991-05.com.contoso:scratch-*'
        salt '*' iscsi.disconnect_target session_identifier=fffffa800d008430-4000013700000001
    """
    select = Selector(session_identifier=session_identifier, target_node_address=node_address)
    select.require()
    test = _test(test)
    return _run(
        lambda host: host.disconnect_target(select, test),
        computer_name,
        profile,
        throttle_limit,
        failed=outcome.failed,
    )


def rescan(computer_name=None, profile=None, throttle_limit=0):
    """
    Ask the host to look again for LUNs and disks, e.g. after the array mapped a new LUN
    to a connected target: ``Update-HostStorageCache`` on Windows (one PowerShell process),
    ``iscsiadm -m session -R`` (every session) on Linux.

    computer_name, profile, throttle_limit
        Remote Windows computers over WinRM, as for ``iscsi.get_sessions``.

    Returns ``{"status": "rescanned"}``.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.rescan
        salt linux-mgmt iscsi.rescan computer_name=win01,win02
    """
    return _run(lambda host: host.rescan(), computer_name, profile, throttle_limit)


def set_initiator_chap_secret(chap_secret, computer_name=None, profile=None, throttle_limit=0):
    """
    Set the initiator's own CHAP secret, which targets check in mutual CHAP
    (``Set-IscsiChapSecret``). Give it as an ``sdb://`` URI: arguments land in the job cache.

    Returns ``{"status": "changed"}``.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.set_initiator_chap_secret sdb://vault/iscsi/initiator
    """
    secret = _settings().secret(chap_secret)
    return _run(
        lambda host: host.set_initiator_chap_secret(secret), computer_name, profile, throttle_limit
    )


def ensure_connected(
    node_address,
    portals=None,
    persistent=True,
    multipath=False,
    authentication=None,
    chap_username=None,
    chap_secret=None,
    initiator_chap_secret=None,
    allow_unclaimed_multipath=False,
    disk_timeout=None,
    test=None,
    computer_name=None,
    profile=None,
    throttle_limit=0,
):
    """
    Make a target connected as described, in one host session (what the
    ``iscsi.connected`` state runs): add missing portals, discover, connect each missing
    path, and fix persistence where it differs (a persistent login with the wrong MPIO flag
    or authentication is unregistered and registered again with the wanted options). Then
    reads the host again and reports what still differs as ``errors``.

    portals
        The paths: ``address[:port]`` strings or mappings with ``address``, ``port``,
        ``initiator_portal_address``; one session per path. None: one session, any path.

    persistent, multipath, authentication, chap_username, chap_secret, initiator_chap_secret
        How it must reconnect; ``authentication``: ``none``, ``one-way`` or ``mutual``.

    allow_unclaimed_multipath
        As for ``iscsi.connect_target``.

    disk_timeout
        Seconds to wait for the disks of a session this call made (default 30); if none
        appears, "session up, no disk" is an error (where the host cannot tell the disks,
        ``DisksUnknown``, a comment says so, without waiting).

    Returns ``{"changes", "comments", "errors"}``.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.ensure_connected iqn.1991-05.com.contoso:db-01 portals='[10.0.1.5, 10.0.2.5]' multipath=True test=True
    """
    spec = _target_spec(
        node_address,
        _portals(portals),
        persistent,
        multipath,
        authentication,
        chap_username,
        chap_secret,
        initiator_chap_secret,
        allow_unclaimed_multipath,
    )
    spec.check_credentials()
    test, wait = _test(test), _seconds(disk_timeout, "disk_timeout", DISK_TIMEOUT)
    return _run(
        lambda host: host.ensure_connected(spec, test, wait),
        computer_name,
        profile,
        throttle_limit,
        failed=_outcome_failed,
    )


def ensure_absent(
    node_address,
    force=False,
    keep_portals=None,
    test=None,
    computer_name=None,
    profile=None,
    throttle_limit=0,
):
    """
    Make targets gone, in the order that keeps them from coming back (what the
    ``iscsi.absent`` state runs): unregister their sessions, disconnect them, remove the
    persistent logins left, then remove the portals they used that nothing else uses (nor
    ``keep_portals``). Refuses, changing nothing, when a session carries a boot, system or
    clustered disk or an online volume, unless ``force``.

    node_address
        A glob (or list) on the target IQN.

    Returns ``{"changes", "comments", "errors"}``.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.ensure_absent 'iqn.1991-05.com.contoso:old-*' test=True
    """
    targets = as_list(node_address, "node_address")
    keep = [Portal.parse(p) for p in as_list(keep_portals, "keep_portals") or []]
    force, test = bool(force), _test(test)
    return _run(
        lambda host: host.ensure_absent(targets, force, keep, test),
        computer_name,
        profile,
        throttle_limit,
        failed=_outcome_failed,
    )


# --------------------------------------------------------------------------------------
# The beacon's tick
# --------------------------------------------------------------------------------------


def beacon_settings(**config):
    """
    The ``iscsi`` beacon's options, checked, with the defaults filled in (what the beacon
    validates its configuration with). Other keys are Salt's own and ignored.

    CLI Example:

    .. code-block:: bash

        salt-call iscsi.beacon_settings
        salt-call iscsi.beacon_settings interval=5 backoff_max=600
    """
    return MonitorSettings.from_config(config).options()


def beacon_events(**config):
    """
    One tick of the ``iscsi`` beacon: the events to fire now (the beacon's options as
    keyword arguments; see the beacon's documentation).

    Returns within a fraction of a second: the check (on Windows a digest from a
    PowerShell kept open between ticks, the details only when it changed) runs in a
    background thread whose result a later tick collects. While the host breaks this
    minion's pillar policy, a ``violation`` event lists what breaks it, again after
    ``interval``, 2x, 4x ... seconds up to ``backoff_max``; ``registered`` events report
    new persistent registrations of the ``targets`` globs (all by default) minus
    ``exclude_targets``.

    CLI Example:

    .. code-block:: bash

        salt-call iscsi.beacon_events
        salt-call iscsi.beacon_events interval=5 targets='iqn.1991-05.com.contoso:*'
    """
    settings = MonitorSettings.from_config(config)
    monitor = __context__.get(MONITOR_KEY)
    if monitor is None:
        checker = backend.backend_for(_settings()).checker()
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
    return monitor.tick(settings, policy, lambda: bool(__salt__["saltutil.is_running"]("state.*")))
