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

from typing import Any

try:
    import saltext_win_iscsi

    saltext_win_iscsi = saltext_win_iscsi.current()
    from saltext_win_iscsi import hosts
    from saltext_win_iscsi import outcome as reports
    from saltext_win_iscsi.errors import IscsiInputError
    from saltext_win_iscsi.policy import Policy, PolicyError
    from saltext_win_iscsi.selection import Selector, login_selector

    LIBRARY_ERROR = None
except ImportError as exc:  # the library was not synced (salt/_utils) or installed
    LIBRARY_ERROR = str(exc)

__virtualname__ = "iscsi"


def __virtual__():
    if LIBRARY_ERROR is not None:
        return (
            False,
            f"iscsi: cannot import the saltext_win_iscsi library ({LIBRARY_ERROR}); "
            "run saltutil.sync_all (it syncs salt/_utils) or install the wheel",
        )
    return hosts.virtual(__virtualname__, __opts__, __pillar__)


def _run(work, computer_name=None, profile=None, throttle_limit=0, **options):
    """``work`` on this host or each remote computer; the exit code says if any failed."""
    result, failed = hosts.run(
        work,
        computer_name,
        profile,
        throttle_limit,
        config_get=__salt__["config.get"],
        sdb_get=__salt__["sdb.get"],
        **options,
    )
    if failed:
        __context__["retcode"] = 1
    return result


def _test_mode(test: Any) -> bool:
    return bool(__opts__.get("test", False) if test is None else test)


# --------------------------------------------------------------------------------------
# Public functions
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
        "backend": hosts.describe_backend(__salt__["config.get"]),
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

    disks
        Add each session's disks (``Disks``: ``Get-Disk -IscsiSession``: Number,
        FriendlyName, SerialNumber, Size, IsBoot, IsSystem, IsClustered, IsOffline) with
        their ``Volumes`` (DriveLetter, AccessPaths: mount points).

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
        lambda target, backend: backend.get_sessions(
            target, select, bool(connections), bool(disks)
        ),
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
        lambda target, backend: backend.change_persistence(
            target,
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
        failed=reports.failed,
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
        secret = hosts.resolve_sdb(__salt__["sdb.get"], secret, "chap_secret")
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
        lambda target, backend: backend.change_persistence(
            target,
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
        failed=reports.failed,
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
        lambda target, backend: backend.get_persistent_logins(target, select),
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
        lambda target, backend: backend.remove_persistent_logins(target, select, test),
        computer_name,
        profile,
        throttle_limit,
        failed=reports.failed,
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
        policy = Policy.from_pillar(__pillar__)
    except PolicyError as exc:
        return {"states": [], "error": str(exc)}
    # Portals of connected targets stay when an absent target used them too.
    keep = [
        p if isinstance(p, str) else p["address"]
        for rule in policy.of_kind("connected")
        for p in rule.options.get("portals") or ()
    ]
    states = []
    for rule in policy.rules:
        args = dict(rule.state_args)
        if rule.kind == "absent" and keep:
            args["keep_portals"] = keep
        states.append({"id": rule.state_id, "function": f"iscsi.{rule.kind}", "args": args})
    return {"states": states, "error": None}


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
    policy = Policy.from_pillar(__pillar__)
    return _run(
        lambda target, backend: backend.check_policy(target, policy),
        computer_name,
        profile,
        throttle_limit,
    )
