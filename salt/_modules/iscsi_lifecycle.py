"""
The Microsoft iSCSI initiator's lifecycle: target portals, discovery, connecting and
disconnecting targets, mutual CHAP, and the desired states behind ``iscsi.connected`` and
``iscsi.absent``.

Part of the ``iscsi`` execution module (the functions load under ``iscsi.``); configuration
and remote computers as described in ``salt/_modules/iscsi.py``. Every function runs one
PowerShell process; values reach Windows as data, CHAP secrets never as a logged cmdlet
parameter. Pass secrets as ``sdb://`` URIs or from pillar through the states: command-line
arguments land in Salt's job cache.

:depends: the ``saltext_win_iscsi`` library (``salt/_utils``, synced with ``saltutil.sync_all``)
:platform: Windows
"""

from __future__ import annotations

try:
    import saltext_win_iscsi

    saltext_win_iscsi = saltext_win_iscsi.current()
    from saltext_win_iscsi import hosts, spec
    from saltext_win_iscsi.errors import IscsiInputError
    from saltext_win_iscsi.selection import Selector, as_list
    from saltext_win_iscsi.spec import Portal, TargetSpec
    from saltext_win_iscsi.windows import desired, lifecycle
    from saltext_win_iscsi.windows.hostcall import HostCall

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
        lambda opener, _backend: work(opener),
        computer_name,
        profile,
        throttle_limit,
        config_get=__salt__["config.get"],
        sdb_get=__salt__["sdb.get"],
        windows_only=True,
        **options,
    )
    if failed:
        __context__["retcode"] = 1
    return result


def _secret(value, what):
    """A CHAP secret from the argument or an ``sdb://`` URI, length-checked."""
    if value is None:
        return None
    if isinstance(value, str) and value.startswith("sdb://"):
        value = hosts.resolve_sdb(__salt__["sdb.get"], value, what)
    return spec.checked_secret(value, what)


def _test_mode(test):
    return bool(__opts__.get("test", False) if test is None else test)


def _step(fn, test, planned, verb):
    """Run one HostCall step unless testing; report ``planned`` with status ``<verb>ed``
    or, testing, ``would_<verb>``."""

    def work(opener):
        if test:
            return {**planned, "status": f"would_{verb}"}
        with HostCall(opener) as host:
            fn(host)
        return {**planned, "status": f"{verb.rstrip('e')}ed"}

    return work


def _failed_report(result):
    return bool(result.get("errors"))


# -- portals ------------------------------------------------------------------------------


def get_target_portals(computer_name=None, profile=None, throttle_limit=0):
    """
    List the initiator's target portals (``Get-IscsiTargetPortal``): address, port,
    initiator portal address and instance, digest flags.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.get_target_portals
    """
    return _run(lifecycle.get_target_portals, computer_name, profile, throttle_limit)


def add_target_portal(
    target_portal_address,
    target_portal_port=3260,
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
        CHAP for the discovery session: ``none``, ``one-way`` or ``mutual``.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.add_target_portal 10.0.0.5
        salt '*' iscsi.add_target_portal 10.0.1.5 initiator_portal_address=10.0.1.21
    """
    portal = Portal.parse(
        {"address": target_portal_address, "port": target_portal_port},
        initiator_portal_address,
    )
    auth = spec.authentication(authentication_type)
    user = spec.checked_name(chap_username, "chap_username") if chap_username else None
    secret = _secret(chap_secret, "chap_secret")
    secrets = {"chap_secret": secret} if secret else None
    return _run(
        _step(
            lambda host: lifecycle.add_target_portal(host, portal, auth, user, secrets),
            _test_mode(test),
            {"portal": portal.label},
            "add",
        ),
        computer_name,
        profile,
        throttle_limit,
    )


def remove_target_portal(
    target_portal_address,
    target_portal_port=3260,
    test=None,
    computer_name=None,
    profile=None,
    throttle_limit=0,
):
    """
    Remove a target portal (``Remove-IscsiTargetPortal``). Connected sessions stay.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.remove_target_portal 10.0.0.5
    """
    portal = Portal.parse({"address": target_portal_address, "port": target_portal_port})
    return _run(
        _step(
            lambda host: lifecycle.remove_target_portal(host, portal),
            _test_mode(test),
            {"portal": portal.label},
            "remove",
        ),
        computer_name,
        profile,
        throttle_limit,
    )


def update_target_portal(
    target_portal_address,
    target_portal_port=3260,
    computer_name=None,
    profile=None,
    throttle_limit=0,
):
    """
    Discover again what a portal offers (``Update-IscsiTargetPortal``).

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.update_target_portal 10.0.0.5
    """
    portal = Portal.parse({"address": target_portal_address, "port": target_portal_port})
    return _run(
        _step(
            lambda host: lifecycle.update_target_portal(host, portal),
            False,
            {"portal": portal.label},
            "refresh",
        ),
        computer_name,
        profile,
        throttle_limit,
    )


# -- targets --------------------------------------------------------------------------------


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
    return _run(
        lambda opener: lifecycle.get_targets(opener, select), computer_name, profile, throttle_limit
    )


def _spec(
    node_address,
    portals,
    persistent,
    multipath,
    authentication,
    chap_username,
    chap_secret,
    initiator_chap_secret,
):
    if isinstance(portals, (str, dict)):
        portals = as_list(portals, "portals") if isinstance(portals, str) else [portals]
    if portals is not None and not isinstance(portals, (list, tuple)):
        raise IscsiInputError("portals must be a portal or a list of portals")
    auth = spec.authentication(authentication) or (
        "ONEWAYCHAP" if chap_secret is not None else "NONE"
    )
    wanted = TargetSpec(
        node_address=spec.checked_name(node_address, "node_address"),
        portals=tuple(Portal.parse(p) for p in portals or ()),
        persistent=bool(persistent),
        multipath=bool(multipath),
        authentication=auth,
        chap_username=spec.checked_name(chap_username, "chap_username") if chap_username else None,
        chap_secret=_secret(chap_secret, "chap_secret"),
        initiator_chap_secret=_secret(initiator_chap_secret, "initiator_chap_secret"),
    )
    if auth != "NONE" and not (wanted.chap_username and wanted.chap_secret):
        raise IscsiInputError(
            f"authentication {authentication or auth} needs chap_username and chap_secret"
        )
    if auth == "MUTUALCHAP" and not wanted.initiator_chap_secret:
        raise IscsiInputError(
            "mutual CHAP needs initiator_chap_secret (the initiator's own secret)"
        )
    return wanted


def connect_target(
    node_address,
    target_portal_address=None,
    target_portal_port=3260,
    initiator_portal_address=None,
    is_persistent=False,
    is_multipath_enabled=False,
    authentication_type=None,
    chap_username=None,
    chap_secret=None,
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

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.connect_target iqn.1991-05.com.contoso:db-01 target_portal_address=10.0.1.5 is_persistent=True
    """
    portal = None
    if target_portal_address is not None:
        portal = Portal.parse(
            {"address": target_portal_address, "port": target_portal_port}, initiator_portal_address
        )
    node = spec.checked_name(node_address, "node_address")
    auth = spec.authentication(authentication_type)
    user = spec.checked_name(chap_username, "chap_username") if chap_username else None
    secret = _secret(chap_secret, "chap_secret")
    planned = {"target": node, "portal": portal.label if portal else None}

    def act(host):
        lifecycle.connect(
            host,
            node,
            portal,
            persistent=bool(is_persistent),
            multipath=bool(is_multipath_enabled),
            authentication_type=auth,
            chap_username=user,
            secrets={"chap_secret": secret} if secret else None,
        )

    return _run(
        _step(act, _test_mode(test), planned, "connect"), computer_name, profile, throttle_limit
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

    Returns per session id: ``disconnected``, ``would_disconnect`` or ``failed`` with the
    Windows error (e.g. a disk in use).

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.disconnect_target node_address='iqn.1991-05.com.contoso:scratch-*'
        salt '*' iscsi.disconnect_target session_identifier=fffffa800d008430-4000013700000001
    """
    select = Selector(session_identifier=session_identifier, target_node_address=node_address)
    select.require()
    test = _test_mode(test)

    def work(opener):
        with HostCall(opener) as host:
            chosen = [s for s in host.sessions() if select(s)]
            report = {
                s["SessionIdentifier"]: {"TargetNodeAddress": s["TargetNodeAddress"]}
                for s in chosen
            }
            for sid in select.missing_ids(chosen):
                report[sid] = {"status": "not_found"}
            if test:
                for s in chosen:
                    report[s["SessionIdentifier"]]["status"] = "would_disconnect"
                return report
            for sid, error in lifecycle.disconnect(host, chosen).items():
                report[sid]["status"] = "disconnected" if error is None else "failed"
                if error is not None:
                    report[sid]["error"] = lifecycle.describe(error)
        return report

    return _run(
        work,
        computer_name,
        profile,
        throttle_limit,
        failed=lambda r: any(e.get("status") == "failed" for e in r.values()),
    )


def set_initiator_chap_secret(chap_secret, computer_name=None, profile=None, throttle_limit=0):
    """
    Set the initiator's own CHAP secret, which targets check in mutual CHAP
    (``Set-IscsiChapSecret``). Give it as an ``sdb://`` URI: arguments land in the job cache.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.set_initiator_chap_secret sdb://vault/iscsi/initiator
    """
    secret = _secret(chap_secret, "chap_secret")
    return _run(
        _step(lambda host: lifecycle.set_chap_secret(host, secret), False, {}, "change"),
        computer_name,
        profile,
        throttle_limit,
    )


# -- desired states ---------------------------------------------------------------------------


def ensure_connected(
    node_address,
    portals=None,
    persistent=True,
    multipath=False,
    authentication=None,
    chap_username=None,
    chap_secret=None,
    initiator_chap_secret=None,
    test=None,
    computer_name=None,
    profile=None,
    throttle_limit=0,
):
    """
    Make a target connected as described, in one PowerShell process (what the
    ``iscsi.connected`` state runs): add missing portals, discover, connect each missing
    path, and fix persistence where it differs (a persistent login with the wrong MPIO flag
    or authentication is unregistered and registered again with the wanted options). Then
    reads the host again and reports what still differs as ``errors``.

    portals
        The paths: ``address[:port]`` strings or mappings with ``address``, ``port``,
        ``initiator_portal_address``; one session per path. None: one session, any path.

    persistent, multipath, authentication, chap_username, chap_secret, initiator_chap_secret
        How it must reconnect; ``authentication``: ``none``, ``one-way`` or ``mutual``.

    Returns ``{"changes", "comments", "errors"}``.

    CLI Example:

    .. code-block:: bash

        salt '*' iscsi.ensure_connected iqn.1991-05.com.contoso:db-01 portals='[10.0.1.5, 10.0.2.5]' multipath=True test=True
    """
    wanted = _spec(
        node_address,
        portals,
        persistent,
        multipath,
        authentication,
        chap_username,
        chap_secret,
        initiator_chap_secret,
    )
    test = _test_mode(test)
    return _run(
        lambda opener: desired.ensure_connected(opener, wanted, test),
        computer_name,
        profile,
        throttle_limit,
        failed=_failed_report,
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
    test = _test_mode(test)
    return _run(
        lambda opener: desired.ensure_absent(opener, targets, bool(force), keep, test),
        computer_name,
        profile,
        throttle_limit,
        failed=_failed_report,
    )
