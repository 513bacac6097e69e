"""
Declare which iSCSI sessions must not reconnect at boot (or must), which targets must be
connected or gone, and which target portals are configured.

Session identifiers change at every login and restart, so lasting policy selects sessions
by target IQN glob (``*`` and ``?``; case-insensitive; no regular expressions), optionally
narrowed by initiator IQN and target portal, minus exceptions:

.. code-block:: yaml

    backup targets never reconnect at boot:
      iscsi.not_persistent:
        - target_node_address: 'iqn.1991-05.com.contoso:backup-*'
        - exclude_target_node_address: 'iqn.1991-05.com.contoso:backup-keep'

    # With no selector, the name is the target IQN glob:
    'iqn.1991-05.com.contoso:scratch-*':
      iscsi.not_persistent

The formula ``iscsi.policy`` (``salt/iscsi/policy.sls``) builds these states from pillar;
see ``pillar.example``. Each state is one call of the ``iscsi`` execution module (one
PowerShell process on Windows), which reads the host, acts, and verifies.

:depends: the ``iscsi`` execution module and the ``saltext_win_iscsi`` library
"""

from salt.exceptions import CommandExecutionError, SaltInvocationError

try:
    import saltext_win_iscsi

    saltext_win_iscsi = saltext_win_iscsi.current()
    from saltext_win_iscsi.outcome import state_return

    LIBRARY_ERROR = None
except ImportError as exc:  # the library was not synced (salt/_utils) or installed
    LIBRARY_ERROR = str(exc)

__virtualname__ = "iscsi"

# Selectors that choose sessions; exclude_target_node_address only narrows a choice.
_CHOOSING = ("session_identifier", "target_node_address", "initiator_node_address", "target_portal")


def __virtual__():
    if LIBRARY_ERROR is not None:
        return (
            False,
            f"iscsi state: cannot import the saltext_win_iscsi library ({LIBRARY_ERROR}); "
            "run saltutil.sync_all (it syncs salt/_utils) or install the wheel",
        )
    if "iscsi.ensure_persistence" in __salt__:
        return __virtualname__
    return (False, "iscsi state: the iscsi execution module is not loaded on this minion")


def _state(name, function, failure, **kwargs):
    """One execution-module call, its outcome as the state's return."""
    test = __opts__["test"]
    try:
        return state_return(name, __salt__[function](**kwargs, test=test), test)
    except SaltInvocationError as exc:
        comment = f"Invalid arguments: {exc}"
    except CommandExecutionError as exc:
        comment = f"{failure}: {exc}"
    return {"name": name, "result": False, "changes": {}, "comment": comment}


def _persistence(name, persistent, selectors, **options):
    if not any(selectors.get(key) is not None for key in _CHOOSING):
        selectors["target_node_address"] = name
    return _state(
        name,
        "iscsi.ensure_persistence",
        "Could not enforce the policy",
        persistent=persistent,
        **selectors,
        **options,
    )


def not_persistent(
    name,
    session_identifier=None,
    target_node_address=None,
    initiator_node_address=None,
    target_portal=None,
    exclude_target_node_address=None,
    persistent_logins=True,
):
    """
    Ensure that the selected iSCSI sessions are not persistent: they stay connected but do
    not reconnect at restart (``Unregister-IscsiSession`` where needed; on Linux the node
    record's ``node.startup`` becomes ``manual``).

    name
        The state's name; used as the ``target_node_address`` glob when no selector is given.

    session_identifier
        One session id or a list (ids change at every restart: prefer the globs).

    target_node_address, initiator_node_address, target_portal
        Globs (or lists of globs) on the target IQN, initiator IQN and target portal
        (``address`` or ``address:port``); given together they narrow each other.

    exclude_target_node_address
        Globs of targets to leave alone even when selected (policy exceptions).

    persistent_logins
        Also remove the initiator's persistent logins to the selected targets that have no
        persistent live session, e.g. targets unreachable today that would reconnect at the
        next boot (default ``True``; needs ``target_node_address`` or ``target_portal``).
        The policy holds only when neither kind is left.

    A selection that matches no session succeeds: the policy holds. A session that fails
    makes the state fail, naming it and Windows' error; the others are still changed and
    listed in ``changes``. The comment names the disks and volumes that will be missing
    after the next restart.

    .. code-block:: yaml

        no boot reconnect for test targets:
          iscsi.not_persistent:
            - target_node_address:
              - 'iqn.1991-05.com.contoso:testiscsi-*'
              - 'iqn.1991-05.com.contoso:scratch-*'
            - target_portal: '10.0.9.*'
    """
    selectors = {
        "session_identifier": session_identifier,
        "target_node_address": target_node_address,
        "initiator_node_address": initiator_node_address,
        "target_portal": target_portal,
        "exclude_target_node_address": exclude_target_node_address,
    }
    return _persistence(name, False, selectors, persistent_logins=bool(persistent_logins))


def persistent(
    name,
    session_identifier=None,
    target_node_address=None,
    initiator_node_address=None,
    target_portal=None,
    exclude_target_node_address=None,
    is_multipath_enabled=False,
    chap_username=None,
    chap_secret=None,
    allow_unclaimed_multipath=False,
):
    """
    Ensure that the selected iSCSI sessions are persistent: they reconnect at restart
    (``Register-IscsiSession`` where needed). Sessions are selected as for
    ``iscsi.not_persistent``.

    is_multipath_enabled, chap_username, chap_secret, allow_unclaimed_multipath
        As for ``iscsi.register_session``. Take the secret from pillar (or an ``sdb://``
        URI); it never appears in the state's return or the logs. With the MPIO flag the
        state fails, changing nothing, where MPIO does not claim iSCSI disks, unless
        ``allow_unclaimed_multipath: True``.

    .. code-block:: yaml

        database targets reconnect at boot:
          iscsi.persistent:
            - target_node_address: 'iqn.1991-05.com.contoso:db-*'
            - is_multipath_enabled: True
            - chap_username: {{ pillar['iscsi']['chap']['user'] }}
            - chap_secret: {{ pillar['iscsi']['chap']['secret'] }}
    """
    selectors = {
        "session_identifier": session_identifier,
        "target_node_address": target_node_address,
        "initiator_node_address": initiator_node_address,
        "target_portal": target_portal,
        "exclude_target_node_address": exclude_target_node_address,
    }
    return _persistence(
        name,
        True,
        selectors,
        is_multipath_enabled=is_multipath_enabled,
        chap_username=chap_username,
        chap_secret=chap_secret,
        allow_unclaimed_multipath=allow_unclaimed_multipath,
    )


def initiator_defaults(name, node_startup="manual"):
    """
    Ensure the initiator gives new node records these defaults (Linux: ``iscsid.conf``), so
    that a rediscovery cannot make targets persistent again. On Windows there are no such
    defaults: the state succeeds without changes.

    node_startup
        ``manual`` (default) or ``automatic``.

    .. code-block:: yaml

        rediscovered targets do not reconnect at boot:
          iscsi.initiator_defaults:
            - node_startup: manual
    """
    return _state(
        name, "iscsi.ensure_defaults", "Could not set the defaults", node_startup=node_startup
    )


def ready(
    name,
    service=None,
    mpio_claims_iscsi=None,
    timers=None,
    disk_timeout=None,
    pdo_remove_period=None,
    initiator_name=None,
    iscsid_conf=None,
):
    """
    Ensure the host is ready for iSCSI as the readiness rules say (the keys of
    ``iscsi:policy:readiness``; the ``iscsi.policy`` formula renders this state from it):
    what breaks them is fixed where the platform allows, in one PowerShell process on
    Windows. ``test=True`` says exactly what would change.

    service, mpio_claims_iscsi, timers, disk_timeout, pdo_remove_period, initiator_name, iscsid_conf
        As for ``iscsi.ensure_ready``.

    .. code-block:: yaml

        iscsi host ready:
          iscsi.ready:
            - service: True
            - mpio_claims_iscsi: True
            - timers: {LinkDownTime: 35, MaxRequestHoldTime: 90}
    """
    return _state(
        name,
        "iscsi.ensure_ready",
        "Could not make the host ready",
        service=service,
        mpio_claims_iscsi=mpio_claims_iscsi,
        timers=timers,
        disk_timeout=disk_timeout,
        pdo_remove_period=pdo_remove_period,
        initiator_name=initiator_name,
        iscsid_conf=iscsid_conf,
    )


def portal_present(
    name,
    port=None,
    initiator_portal_address=None,
    authentication_type=None,
    chap_username=None,
    chap_secret=None,
):
    """
    Ensure a target portal is configured (``New-IscsiTargetPortal``), which discovers the
    targets it offers.

    name
        The portal's address (IP or DNS name).

    port, initiator_portal_address, authentication_type, chap_username, chap_secret
        As for ``iscsi.add_target_portal`` (port 3260 by default).

    .. code-block:: yaml

        10.0.1.5:
          iscsi.portal_present:
            - initiator_portal_address: 10.0.1.21
    """
    return _state(
        name,
        "iscsi.ensure_portal",
        f"Portal {name}",
        target_portal_address=name,
        target_portal_port=port,
        present=True,
        initiator_portal_address=initiator_portal_address,
        authentication_type=authentication_type,
        chap_username=chap_username,
        chap_secret=chap_secret,
    )


def portal_absent(name, port=None):
    """
    Ensure a target portal is not configured (``Remove-IscsiTargetPortal``). Sessions
    stay; to remove a target for good use ``iscsi.absent``.

    .. code-block:: yaml

        10.0.9.5:
          iscsi.portal_absent
    """
    return _state(
        name,
        "iscsi.ensure_portal",
        f"Portal {name}",
        target_portal_address=name,
        target_portal_port=port,
        present=False,
    )


def connected(
    name,
    portals=None,
    persistent=True,
    multipath=False,
    authentication=None,
    chap_username=None,
    chap_secret=None,
    initiator_chap_secret=None,
    allow_unclaimed_multipath=False,
    disk_timeout=None,
):
    """
    Ensure a target is connected over the given portals (one session per path), with the
    wanted persistence, MPIO flag and authentication. Missing portals are added and the
    target discovered; a persistent session with the wrong MPIO flag or authentication is
    unregistered and registered again (both steps show in ``changes``).

    name
        The target's IQN.

    portals
        The paths: ``address[:port]`` strings, or mappings with ``address``, ``port`` and
        ``initiator_portal_address`` (the local NIC of that path). None: one session over
        any path.

    persistent
        Reconnect at boot (default ``True``).

    multipath
        MPIO: one session per path (``IsMultipathEnabled``). Refused (the state fails,
        changing nothing) where MPIO does not claim iSCSI disks (Windows: MSDSM's automatic
        claim or supported hardware), unless ``allow_unclaimed_multipath: True``.

    disk_timeout
        Seconds to wait for the disks of a session the state made (default 30): a session
        up with no disk fails the state ("session up, no disk"). Where the host cannot
        tell a session's disks (``DisksUnknown``: a failover cluster node) the comment says
        so, without waiting.

    authentication, chap_username, chap_secret, initiator_chap_secret
        ``none``, ``one-way`` or ``mutual`` CHAP; mutual also needs the initiator's own
        secret. Take secrets from pillar or ``sdb://`` URIs; they never appear in the
        return or the logs.

    .. code-block:: yaml

        iqn.1991-05.com.contoso:db-01:
          iscsi.connected:
            - portals:
              - {address: 10.0.1.5, initiator_portal_address: 10.0.1.21}
              - {address: 10.0.2.5, initiator_portal_address: 10.0.2.21}
            - multipath: True
            - authentication: one-way
            - chap_username: host1
            - chap_secret: {{ pillar['iscsi']['chap']['db-01'] }}
    """
    return _state(
        name,
        "iscsi.ensure_connected",
        f"Could not connect {name}",
        node_address=name,
        portals=portals,
        persistent=persistent,
        multipath=multipath,
        authentication=authentication,
        chap_username=chap_username,
        chap_secret=chap_secret,
        initiator_chap_secret=initiator_chap_secret,
        allow_unclaimed_multipath=allow_unclaimed_multipath,
        disk_timeout=disk_timeout,
    )


def absent(name, force=False, keep_portals=None):
    """
    Ensure targets are gone for good, in the order that keeps them from coming back:
    unregister their sessions, disconnect them, remove the persistent logins left over, then
    remove the portals they used that nothing else uses (nor ``keep_portals``).

    Disconnecting a session that carries a boot, system or clustered disk or an online
    volume is refused, naming them, unless ``force: True``; nothing is changed then.

    name
        A glob on the target IQN.

    .. code-block:: yaml

        'iqn.1991-05.com.contoso:old-*':
          iscsi.absent
    """
    return _state(
        name,
        "iscsi.ensure_absent",
        f"Could not remove {name}",
        node_address=name,
        force=force,
        keep_portals=keep_portals,
    )
