"""The beacon's cheap check on Linux: a digest of the node records that are persistent.

The digest covers exactly what makes a login happen at boot: which node records have
``node.startup`` or ``node.conn[0].startup`` ``automatic``. It changes when a record becomes or stops being automatic, or
an automatic record appears or goes; not when a manual record is added, nor when another
setting of a record is rewritten. When the policy has rules on sessions as such
(``connected``, ``absent``), the check adds the session list (``iscsiadm -m session``).

How it is computed, cheapest first:

1. the record files under the node database (``/etc/iscsi/nodes`` on Debian/Ubuntu and
   upstream 2.1, ``/var/lib/iscsi/nodes`` on RHEL/SUSE): one ``lstat`` per file, and a read
   of only the files whose inode, size or times changed since the last tick (``cache``);
2. where no node directory can be read: one ``iscsiadm -m node -o show``.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat

from saltext_win_iscsi import diagnosis
from saltext_win_iscsi.beacon.monitor import Scope, Snapshot
from saltext_win_iscsi.errors import IscsiError
from saltext_win_iscsi.openiscsi.defaults import initiator_defaults
from saltext_win_iscsi.openiscsi.iscsiadm import Iscsiadm
from saltext_win_iscsi.openiscsi.parse import parse_node_records
from saltext_win_iscsi.openiscsi.persistence import (
    at_boot,
    logins_of,
    read_records,
    read_sessions,
)
from saltext_win_iscsi.openiscsi.readiness import Programs, facts

MAX_RECORD_BYTES = 1 << 20  # a record is ~2 KiB; refuse to slurp anything odd

Cache = dict[str, tuple[tuple[int, ...], bool]]


_STARTUP_KEYS = {b"node.startup": "startup", b"node.conn[0].startup": "conn_startup"}


def _logged_in_at_boot(path: str) -> bool:
    """Whether a record file is logged in at boot (either startup field automatic)."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_RECORD_BYTES)
    fields = {}
    for line in data.splitlines():
        key, sep, value = line.partition(b"=")
        if sep and key.strip() in _STARTUP_KEYS:
            fields[_STARTUP_KEYS[key.strip()]] = value.strip().decode("ascii", "replace")
    return at_boot(fields)


def _from_files(roots: list[str], cache: Cache | None) -> list[list[str]]:
    entries = []
    seen: Cache = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root, onerror=_raise):
            dirnames.sort()
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                if not stat.S_ISREG(st.st_mode):
                    continue  # old send_targets links, sockets, ...: not records
                signature = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
                known = (cache or {}).get(path)
                boot = known[1] if known and known[0] == signature else _logged_in_at_boot(path)
                seen[path] = (signature, boot)
                if boot:
                    entries.append([root, os.path.relpath(path, root)])
    if cache is not None:
        cache.clear()
        cache.update(seen)
    return entries


def _raise(error: OSError) -> None:
    raise error


def digest(
    adm: Iscsiadm | None = None,
    node_dirs: tuple[str, ...] | list[str] = (),
    cache: Cache | None = None,
) -> dict:
    """``{"digest", "count", "source"}``: a hash of the persistent records, their number,
    and ``files`` or ``iscsiadm`` (how it was read). Keep ``cache`` between calls."""
    roots = [d for d in node_dirs if os.path.isdir(d)]
    if roots:
        try:
            entries = _from_files(roots, cache)
            source = "files"
        except OSError as exc:
            if adm is None:
                raise IscsiError(f"iSCSI: cannot read the node database: {exc}") from None
            roots = []
    if not roots:
        if adm is None:
            entries, source = [], "files"  # no node database at all: nothing persistent
        else:
            records = parse_node_records(adm.node_records())
            entries = sorted(
                [r["target"], r["address"], str(r["port"]), str(r["tpgt"]), r["iface"]]
                for r in records
                if at_boot(r)
            )
            source = "iscsiadm"
    text = json.dumps(sorted(entries), separators=(",", ":"))
    return {
        "digest": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "count": len(entries),
        "source": source,
    }


class OpenIscsiChecker:
    """The beacon's check on Linux (monitor.Checker): the node database's digest and the
    default ``node.startup`` of new records; the sessions and records only when either
    changed."""

    def __init__(
        self,
        adm: Iscsiadm,
        node_dirs: tuple[str, ...] | list[str],
        iscsid_conf: str,
        programs: Programs,
    ) -> None:
        self._adm = adm
        self._programs = programs
        self._node_dirs = node_dirs
        self._iscsid_conf = iscsid_conf
        self._cache: Cache = {}

    def look(
        self, previous_digest: str | None, scope: Scope, timeout: float
    ) -> tuple[str, Snapshot | None]:
        defaults = initiator_defaults(self._iscsid_conf)
        parts = [digest(self._adm, self._node_dirs, self._cache)["digest"], json.dumps(defaults)]
        if scope.sessions:
            parts.append(self._adm.session_list())
        key = hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()
        if key == previous_digest:
            return key, None
        records = read_records(self._adm)
        return key, Snapshot(read_sessions(self._adm, records), logins_of(records), defaults)

    def readiness(self, timeout: float) -> dict[str, dict]:
        return diagnosis.linux(facts(self._iscsid_conf, self._programs)).items

    def close(self) -> None:
        self._cache.clear()
