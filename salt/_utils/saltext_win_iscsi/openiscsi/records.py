"""Node record files, edited where iscsiadm would take the value on its command line.

CHAP secrets must not travel as argv (``ps`` shows every process's arguments), and
iscsiadm takes a setting's value only there (``-o update -n ... -v <value>``). So the
authentication settings are written into the record's file in the node database (what
iscsiadm itself reads and writes), atomically, and read back through iscsiadm, which prints
passwords masked. Nothing else is edited this way.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from saltext_win_iscsi.errors import IscsiError, safe_text

AUTH_KEYS = (
    "node.session.auth.authmethod",
    "node.session.auth.username",
    "node.session.auth.password",
    "node.session.auth.username_in",
    "node.session.auth.password_in",
)
DISCOVERY_AUTH_KEYS = (
    "discovery.sendtargets.auth.authmethod",
    "discovery.sendtargets.auth.username",
    "discovery.sendtargets.auth.password",
    "discovery.sendtargets.auth.username_in",
    "discovery.sendtargets.auth.password_in",
)
END = "# END RECORD"


def folder_portal(name: str) -> tuple[str, int] | None:
    """``(address, port)`` of a node database folder name: ``<address>,<port>[,<tpgt>]``
    (IPv6 addresses without brackets: the commas separate)."""
    parts = name.rsplit(",", 2)
    if len(parts) < 2 or not parts[0]:
        return None
    try:
        return parts[0], int(parts[1])
    except ValueError:
        return None


def record_file(
    node_dirs: tuple[str, ...], target: str, address: str, port: int, iface: str
) -> Path:
    """The file of one node record: ``<nodes>/<target>/<address>,<port>,<tpgt>/<iface>``
    (open-iscsi 2.x; the portal folder is a file itself in old versions)."""
    for root in node_dirs:
        folder = Path(root) / target
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            if folder_portal(entry.name) != (address, port):
                continue
            path = entry / iface if entry.is_dir() else entry
            if path.is_file():
                return path
    raise IscsiError(
        f"iSCSI: no node record file for {safe_text(target)} at {address}:{port} (iface "
        f"{safe_text(iface)}) under {', '.join(node_dirs) or 'no node folder'} "
        "(set iscsi.node_dirs)"
    )


def discovery_file(node_dirs: tuple[str, ...], address: str, port: int) -> Path:
    """The file of a SendTargets discovery record: ``<root>/send_targets/<addr>,<port>/
    st_config`` beside the node folder."""
    for root in node_dirs:
        folder = Path(root).parent / "send_targets"
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            if folder_portal(entry.name) == (address, port):
                path = entry / "st_config"
                if path.is_file():
                    return path
    raise IscsiError(
        f"iSCSI: no discovery record file for {address}:{port} beside "
        f"{', '.join(node_dirs) or 'no node folder'} (set iscsi.node_dirs)"
    )


def auth_lines(path: Path, keys: tuple[str, ...] = AUTH_KEYS) -> list[str]:
    """The record's authentication lines as they are (to put them back after a failure)."""
    return [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.partition("=")[0].strip() in keys
    ]


def set_auth(
    path: Path, settings: dict[str, str] | list[str], keys: tuple[str, ...] = AUTH_KEYS
) -> None:
    """Replace the record's authentication settings (``keys``) with ``settings``: a
    mapping, or lines as ``auth_lines`` returned them."""
    added = (
        [f"{key} = {value}" for key, value in settings.items()]
        if isinstance(settings, dict)
        else list(settings)
    )
    unknown = {line.partition("=")[0].strip() for line in added} - set(keys)
    if unknown:
        raise IscsiError(f"iSCSI: not authentication settings: {', '.join(sorted(unknown))}")
    lines = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.partition("=")[0].strip() not in keys
    ]
    at = next((i for i, line in enumerate(lines) if line.strip() == END), len(lines))
    _write(path, "\n".join([*lines[:at], *added, *lines[at:]]) + "\n")


def _write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".iscsi-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(tmp, 0o600)  # it holds secrets, as iscsiadm's own records do
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
