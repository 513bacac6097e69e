"""
Declare which iSCSI sessions must not reconnect at boot (or must).

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
see ``pillar.example``. All work is done by the ``iscsi`` execution module.
"""

from __future__ import annotations

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "iscsi"

# Selectors that choose sessions; exclude_target_node_address only narrows a choice.
_CHOOSING = ("session_identifier", "target_node_address", "initiator_node_address", "target_portal")


def __virtual__():
    if "iscsi.unregister_session" in __salt__:
        return __virtualname__
    return (False, "iscsi state: the iscsi execution module is not loaded on this minion")


def _describe(sessions: dict[str, dict]) -> str:
    return ", ".join(f"{sid} ({entry.get('TargetNodeAddress')})" for sid, entry in sessions.items())


def _remove_logins(selectors: dict, covered_targets: set[str], ret: dict, comments: list) -> bool:
    """Remove persistent logins the selection matches; False if any failed."""
    report = __salt__["iscsi.remove_persistent_login"](
        target_node_address=selectors.get("target_node_address") or "*",
        target_portal=selectors.get("target_portal"),
        exclude_target_node_address=selectors.get("exclude_target_node_address"),
        test=__opts__["test"],
    )
    # In test mode the sessions were not unregistered: their own logins would go with them.
    report = [e for e in report if e["TargetName"].lower() not in covered_targets]
    ok = True
    for entry in report:
        label = (
            f"persistent login {entry['TargetName']} @ "
            f"{entry['TargetPortalAddress']}:{entry['TargetPortalPort']}"
        )
        if entry["status"] in ("removed", "would_remove"):
            ret["changes"][label] = {
                "entries": entry["entries"],
                "old": "present",
                "new": "removed",
            }
        else:
            ok = False
            comments.append(f"Failed to remove {label}: {entry.get('error')}.")
    done = [e for e in report if e["status"] in ("removed", "would_remove")]
    if done:
        verb = "Would remove" if __opts__["test"] else "Removed"
        comments.append(
            f"{verb} {sum(e['entries'] for e in done)} persistent login(s) without a "
            f"persistent session: {', '.join(sorted({e['TargetName'] for e in done}))}."
        )
    return ok


def _missing_after_restart(session_ids: list[str]) -> list[str]:
    """What the admin loses at the next restart: the disks and volumes behind the sessions
    that no longer reconnect."""
    try:
        sessions = __salt__["iscsi.get_sessions"](session_identifier=session_ids, disks=True)
    except CommandExecutionError:
        return ["(Could not list the disks behind them.)"]
    disks = []
    for session in sessions:
        for disk in session.get("Disks") or []:
            volumes = [
                v.get("DriveLetter") or (v.get("AccessPaths") or [""])[0]
                for v in disk.get("Volumes") or []
            ]
            where = (
                f" with {', '.join(f'{v}:' if len(v) == 1 else v for v in volumes)}"
                if volumes
                else ""
            )
            disks.append(f"disk {disk.get('Number')} ({disk.get('FriendlyName')}){where}")
    if not disks:
        return []
    return [f"After the next restart these will be missing: {'; '.join(dict.fromkeys(disks))}."]


def _enforce(name: str, want_persistent: bool, selectors: dict, extra: dict) -> dict:
    """Run the execution module on the selection and turn its report into a state return."""
    ret = {"name": name, "result": False, "changes": {}, "comment": ""}
    if not any(selectors.get(key) is not None for key in _CHOOSING):
        selectors["target_node_address"] = name
    function = "iscsi.register_session" if want_persistent else "iscsi.unregister_session"
    verb = "register" if want_persistent else "unregister"
    adjective = "persistent" if want_persistent else "non-persistent"
    logins = extra.pop("persistent_logins", False) and (
        selectors.get("target_node_address") is not None
        or selectors.get("target_portal") is not None
    )
    try:
        report = __salt__[function](**selectors, **extra, test=__opts__["test"])
        comments = []
        logins_ok = True
        if logins:
            covered = {
                str(e.get("TargetNodeAddress")).lower()
                for e in report.values()
                if e["status"] == f"would_{verb}"
            }
            logins_ok = _remove_logins(selectors, covered, ret, comments)
    except SaltInvocationError as exc:
        ret["comment"] = f"Invalid selection: {exc}"
        return ret
    except CommandExecutionError as exc:
        ret["comment"] = f"Could not enforce the policy: {exc}"
        return ret

    def having(*statuses: str) -> dict[str, dict]:
        return {sid: entry for sid, entry in report.items() if entry["status"] in statuses}

    changed = having(f"{verb}ed", f"would_{verb}")
    failed = having("failed")
    ret["changes"].update(
        {
            sid: {
                "TargetNodeAddress": entry.get("TargetNodeAddress"),
                "IsPersistent": {"old": not want_persistent, "new": want_persistent},
            }
            for sid, entry in changed.items()
        }
    )
    login_comments, comments = comments, []
    if failed:
        comments.append(
            f"Failed for {len(failed)} session(s): "
            + "; ".join(
                f"{sid} ({e.get('TargetNodeAddress')}): {e.get('error')}"
                for sid, e in failed.items()
            )
            + "."
        )
    if changed:
        made = "Would make" if __opts__["test"] else "Made"
        comments.append(f"{made} {len(changed)} session(s) {adjective}: {_describe(changed)}.")
    already = having("already_persistent", "not_persistent")
    if already:
        comments.append(f"{len(already)} matching session(s) already {adjective}.")
    missing = having("not_found")
    if missing:
        comments.append(f"No such session (nothing to do): {', '.join(missing)}.")
    comments.extend(login_comments)
    if changed and not want_persistent:
        comments.extend(_missing_after_restart(list(changed)))
    if not report and not ret["changes"] and logins_ok:
        comments.append(f"No iSCSI session matches; the policy holds ({adjective}).")
    ret["comment"] = " ".join(comments)
    if failed or not logins_ok:
        ret["result"] = False
    elif ret["changes"] and __opts__["test"]:
        ret["result"] = None
    else:
        ret["result"] = True
    return ret


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
    not reconnect at restart (``Unregister-IscsiSession`` where needed).

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
    listed in ``changes``.

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
    return _enforce(name, False, selectors, {"persistent_logins": bool(persistent_logins)})


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
):
    """
    Ensure that the selected iSCSI sessions are persistent: they reconnect at restart
    (``Register-IscsiSession`` where needed). Sessions are selected as for
    ``iscsi.not_persistent``.

    is_multipath_enabled, chap_username, chap_secret
        As for ``iscsi.register_session``. Take the secret from pillar (or an ``sdb://``
        URI); it never appears in the state's return or the logs.

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
    extra = {
        "is_multipath_enabled": is_multipath_enabled,
        "chap_username": chap_username,
        "chap_secret": chap_secret,
    }
    return _enforce(name, True, selectors, extra)


# --------------------------------------------------------------------------------------
# The initiator's lifecycle: portals, connected targets, absent targets
# --------------------------------------------------------------------------------------


def _from_report(name: str, report: dict, done: str, nothing: str) -> dict:
    """A state return from ``iscsi.ensure_*``'s ``{changes, comments, errors}``."""
    ret = {"name": name, "changes": report["changes"], "result": True, "comment": ""}
    comments = list(report["comments"])
    if report["errors"]:
        ret["result"] = False
        comments.insert(0, "Failed: " + "; ".join(report["errors"]) + ".")
        if report["changes"]:
            comments.append(f"Done before the failure: {', '.join(report['changes'])}.")
    elif report["changes"]:
        verb = "Would" if __opts__["test"] else "Did"
        comments.append(f"{verb} {done}: {', '.join(report['changes'])}.")
        if __opts__["test"]:
            ret["result"] = None
    else:
        comments.append(nothing)
    ret["comment"] = " ".join(comments)
    return ret


def _call(name: str, function: str, done: str, nothing: str, **kwargs) -> dict:
    try:
        report = __salt__[function](**kwargs, test=__opts__["test"])
    except (SaltInvocationError, CommandExecutionError) as exc:
        return {"name": name, "result": False, "changes": {}, "comment": str(exc)}
    return _from_report(name, report, done, nothing)


def portal_present(
    name,
    port=3260,
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
        As for ``iscsi.add_target_portal``.

    .. code-block:: yaml

        10.0.1.5:
          iscsi.portal_present:
            - initiator_portal_address: 10.0.1.21
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    try:
        portals = __salt__["iscsi.get_target_portals"]()
        if any(
            str(p.get("TargetPortalAddress")).lower() == str(name).lower()
            and int(p.get("TargetPortalPortNumber") or 0) == int(port)
            for p in portals
        ):
            ret["comment"] = f"Portal {name}:{port} is present."
            return ret
        result = __salt__["iscsi.add_target_portal"](
            name,
            port,
            initiator_portal_address=initiator_portal_address,
            authentication_type=authentication_type,
            chap_username=chap_username,
            chap_secret=chap_secret,
            test=__opts__["test"],
        )
    except (SaltInvocationError, CommandExecutionError) as exc:
        ret.update(result=False, comment=f"Portal {name}:{port}: {exc}")
        return ret
    ret["changes"][f"portal {result['portal']}"] = {"old": "absent", "new": "present"}
    if __opts__["test"]:
        ret.update(result=None, comment=f"Would add portal {result['portal']}.")
    else:
        ret["comment"] = f"Added portal {result['portal']}."
    return ret


def portal_absent(name, port=3260):
    """
    Ensure a target portal is not configured (``Remove-IscsiTargetPortal``). Sessions
    stay; to remove a target for good use ``iscsi.absent``.

    .. code-block:: yaml

        10.0.9.5:
          iscsi.portal_absent
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    try:
        portals = __salt__["iscsi.get_target_portals"]()
        if not any(
            str(p.get("TargetPortalAddress")).lower() == str(name).lower()
            and int(p.get("TargetPortalPortNumber") or 0) == int(port)
            for p in portals
        ):
            ret["comment"] = f"Portal {name}:{port} is absent."
            return ret
        result = __salt__["iscsi.remove_target_portal"](name, port, test=__opts__["test"])
    except (SaltInvocationError, CommandExecutionError) as exc:
        ret.update(result=False, comment=f"Portal {name}:{port}: {exc}")
        return ret
    ret["changes"][f"portal {result['portal']}"] = {"old": "present", "new": "absent"}
    verb = "Would remove" if __opts__["test"] else "Removed"
    ret.update(
        result=None if __opts__["test"] else True, comment=f"{verb} portal {result['portal']}."
    )
    return ret


def connected(
    name,
    portals=None,
    persistent=True,
    multipath=False,
    authentication=None,
    chap_username=None,
    chap_secret=None,
    initiator_chap_secret=None,
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
        MPIO: one session per path (``IsMultipathEnabled``).

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
    return _call(
        name,
        "iscsi.ensure_connected",
        "connect",
        f"{name} is connected as wanted.",
        node_address=name,
        portals=portals,
        persistent=persistent,
        multipath=multipath,
        authentication=authentication,
        chap_username=chap_username,
        chap_secret=chap_secret,
        initiator_chap_secret=initiator_chap_secret,
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
    return _call(
        name,
        "iscsi.ensure_absent",
        "remove",
        f"No session, persistent login or portal of {name} is left.",
        node_address=name,
        force=force,
        keep_portals=keep_portals,
    )
