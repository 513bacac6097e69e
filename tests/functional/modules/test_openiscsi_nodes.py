"""The open-iscsi backend against the real iscsiadm, in a private node database.

Every iscsiadm call runs as ``unshare --mount --net`` + ``tests/support/privns.py``, which
bind-mounts a fresh temporary directory over ``/etc/iscsi`` (and ``/var/lib/iscsi`` where it
exists) and another over ``/run/lock`` (iscsiadm's lock), then execs iscsiadm: the
machine's own node database is never seen, let alone written (the last test checks that),
and without a network namespace of its own iscsiadm could not even reach a running iscsid.
The private ``iscsid.conf`` sets ``iscsid.startup = /bin/true`` so that iscsiadm never
tries to start the machine's iscsid.

Sessions cannot exist here (no iscsi_tcp module), so they come from outputs recorded on
real hosts (tests/data/openiscsi); their node records are created in the private database
with ``iscsiadm -m node -o new``, exactly as discovery would have left them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from saltext_win_iscsi.errors import IscsiInputError
from saltext_win_iscsi.model import Portal
from saltext_win_iscsi.openiscsi import nodedb, persistence
from saltext_win_iscsi.openiscsi.backend import OpenIscsiBackend
from saltext_win_iscsi.openiscsi.iscsiadm import Iscsiadm, IscsiadmError, portal_arg
from saltext_win_iscsi.openiscsi.parse import parse_node_records, parse_session_tree
from saltext_win_iscsi.selection import Selector, login_selector
from saltext_win_iscsi.spec import PersistenceSpec
from tests.support.openiscsi_env import require_iscsiadm

REPO = Path(__file__).resolve().parents[3]
PRIVNS = REPO / "tests" / "support" / "privns.py"
DATA = REPO / "tests" / "data" / "openiscsi"
HOST_PATHS = ("/etc/iscsi", "/var/lib/iscsi", "/run/lock/iscsi")
GFS = "iqn.2025-03.ru.abegorov:gfs2:gfs-iscsi-0"  # + "1" / "2": session-P3-2.1.9.txt
A6, B6 = "iqn.1992-04.com.emc:cx.apm00121200804.a6", "iqn.1992-04.com.emc:cx.apm00121200804.b6"


@pytest.fixture(autouse=True)
def reset_loaders_state():
    """No Salt loader here: replaces the functional package's autouse fixture."""
    yield


def snapshot(paths=HOST_PATHS) -> dict:
    """Every entry under ``paths``: type, mode, size, mtime and content hash."""
    seen = {}
    for top in paths:
        if not os.path.lexists(top):
            seen[top] = "absent"
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for name in ["", *sorted(filenames)]:
                path = os.path.join(dirpath, name) if name else dirpath
                st = os.lstat(path)
                digest = None
                if name and os.path.isfile(path) and not os.path.islink(path):
                    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
                seen[path] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return seen


@pytest.fixture(scope="module")
def real_iscsiadm() -> str:
    """The path of the real iscsiadm, installed with apt-get when missing (as root)."""
    return require_iscsiadm()


@pytest.fixture(scope="module")
def host_before(real_iscsiadm) -> dict:
    """The machine's own iSCSI directories before any test of this module ran."""
    return snapshot()


class PrivateDb:
    """A node database of its own: ``adm`` runs the real iscsiadm on it, ``log`` has every argv."""

    def __init__(self, root: Path, sessions: str | None = None, copy: Path | None = None) -> None:
        self.etc = root / "etc"
        self.nodes = self.etc / "nodes"
        self.log = root / "argv.jsonl"
        lock = root / "lock"
        lock.mkdir()
        if copy is not None:  # a database made earlier by the real iscsiadm
            shutil.copytree(copy, self.etc, symlinks=True)
        else:
            self.etc.mkdir()
            # Own config, not the machine's: defaults for new records, no service starts.
            (self.etc / "iscsid.conf").write_text(
                "iscsid.startup = /bin/true\nnode.startup = manual\n"
            )
        binds = [f"{self.etc}:/etc/iscsi", f"{lock}:/run/lock"]
        if os.path.isdir("/var/lib/iscsi"):
            (root / "var").mkdir()
            binds.append(f"{root / 'var'}:/var/lib/iscsi")
        prefix = ["unshare", "--mount", "--net", "--propagation", "private", sys.executable]
        prefix += [str(PRIVNS), "--log", str(self.log)]
        for bind in binds:
            prefix += ["--bind", bind]
        self.adm = Recorded(sessions, prefix=[*prefix, "--"], timeout=30)

    def argvs(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def updates(self) -> list[list[str]]:
        return [argv for argv in self.argvs() if "update" in argv]

    def listed(self) -> list[dict]:
        return parse_node_records(self.adm.node_records())

    def startup(self, target: str, portal: str, iface: str = "default") -> tuple:
        parsed = Portal.parse(portal)
        address, port = parsed.address, parsed.port
        (record,) = [
            r for r in persistence.read_records(self.adm).values()
            if (r["target"], r["address"], r["port"], r["iface"]) == (target, address, port, iface)
        ]  # fmt: skip
        return record["startup"], record["conn_startup"]


class Recorded(Iscsiadm):
    """The real iscsiadm for the node database; sessions from a recorded output."""

    def __init__(self, sessions: str | None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sessions = sessions

    def session_tree(self) -> str:
        return super().session_tree() if self.sessions is None else self.sessions


def with_records(root: Path, name: str, ifaces: tuple[str, ...] = ()) -> PrivateDb:
    """A private database holding the records of a recorded output's sessions."""
    text = (DATA / name).read_text()
    db = PrivateDb(root, text)
    for iface in ifaces:
        db.adm.run(["-m", "iface", "-I", iface, "-o", "new"])
    for s in parse_session_tree(text):
        new_node(
            db.adm, s["TargetNodeAddress"], s["PersistentPortalAddress"],
            s["PersistentPortalPort"], s["InitiatorInstanceName"], s["TargetPortalGroupTag"],
        )  # fmt: skip
    return db


def new_node(adm: Iscsiadm, target: str, address: str, port: int, iface: str, tpgt: int) -> None:
    """A node record, as discovery would write it (``-o new``)."""
    portal = portal_arg(address, port) + (f",{tpgt}" if tpgt != -1 else "")
    adm.run(["-m", "node", "-T", target, "-p", portal, "-I", iface, "-o", "new"])


@pytest.fixture(scope="module")
def gfs_template(real_iscsiadm, host_before, tmp_path_factory) -> Path:
    """The records of session-P3-2.1.9.txt, made once: iscsiadm -o new takes a second each
    (it retries iscsid, which is not reachable from the private network namespace)."""
    return with_records(tmp_path_factory.mktemp("gfs"), "session-P3-2.1.9.txt").etc


@pytest.fixture
def gfs(gfs_template, tmp_path) -> PrivateDb:
    return PrivateDb(tmp_path, (DATA / "session-P3-2.1.9.txt").read_text(), copy=gfs_template)


def linux(adm) -> OpenIscsiBackend:
    """The Linux backend on ``adm`` (no node folders: the digest asks iscsiadm)."""
    return OpenIscsiBackend(adm, ())


def register(adm, select, force=False, test=False, passthru=False):
    spec = PersistenceSpec(select, persistent=True, force=force)
    return linux(adm).change_persistence(spec, test, passthru)


def unregister(adm, select, force=False, test=False, passthru=False):
    spec = PersistenceSpec(select, persistent=False, force=force)
    return linux(adm).change_persistence(spec, test, passthru)


def test_records_are_created_in_the_private_database(gfs):
    assert len(gfs.listed()) == 4
    assert (gfs.nodes / f"{GFS}1" / "10.131.0.11,3260,1" / "default").is_file()
    assert not os.path.exists(f"/etc/iscsi/nodes/{GFS}1")
    assert gfs.startup(f"{GFS}1", "10.131.0.11:3260") == ("manual", "manual")
    sessions = linux(gfs.adm).get_sessions(Selector())
    assert [(s["SessionIdentifier"], s["IsPersistent"], s["StartupMode"]) for s in sessions] == [
        (sid, False, "manual") for sid in "1234"
    ]


def test_register_and_unregister_by_session(gfs):
    report = register(gfs.adm, Selector(target_node_address=f"{GFS}1"))
    assert {sid: e["status"] for sid, e in report.items()} == {"1": "registered", "2": "registered"}
    assert gfs.startup(f"{GFS}1", "10.131.0.11:3260") == ("automatic", "automatic")
    assert gfs.startup(f"{GFS}1", "10.132.0.11:3260") == ("automatic", "automatic")
    assert gfs.startup(f"{GFS}2", "10.132.0.12:3260") == ("manual", "manual")
    assert gfs.updates()[0] == [
        "iscsiadm", "-m", "node", "-T", f"{GFS}1", "-p", "10.131.0.11:3260", "-I", "default",
        "-o", "update", "-n", "node.startup", "-v", "automatic",
        "-n", "node.conn[0].startup", "-v", "automatic",
    ]  # fmt: skip
    assert (
        register(gfs.adm, Selector(session_identifier="1"))["1"]["status"] == "already_persistent"
    )
    assert unregister(gfs.adm, Selector(session_identifier="2"))["2"]["status"] == "unregistered"
    assert gfs.startup(f"{GFS}1", "10.132.0.11:3260") == ("manual", "manual")
    persistent = [
        s["SessionIdentifier"] for s in persistence.read_sessions(gfs.adm) if s["IsPersistent"]
    ]
    assert persistent == ["1"]
    assert unregister(gfs.adm, Selector(session_identifier="42")) == {"42": {"status": "not_found"}}
    changed = register(gfs.adm, Selector(session_identifier="4"), passthru=True)
    assert [(s["SessionIdentifier"], s["IsPersistent"]) for s in changed] == [("4", True)]


def test_named_ifaces_are_kept_apart(real_iscsiadm, host_before, tmp_path):
    db = with_records(tmp_path, "session-P3-2.0-872.41.el6.txt", ifaces=("iface0", "iface1"))
    new_node(db.adm, B6, "10.109.25.186", 3260, "default", 2)  # same portal, another iface
    assert register(db.adm, Selector(session_identifier="2"))["2"]["status"] == "registered"
    assert db.startup(B6, "10.109.25.186:3260", "iface1") == ("automatic", "automatic")
    assert db.startup(B6, "10.109.25.186:3260", "default") == ("manual", "manual")
    assert db.startup(A6, "192.168.25.182:3260", "iface0") == ("manual", "manual")


def test_remove_persistent_login_sets_manual_and_keeps_the_record(gfs):
    register(gfs.adm, Selector(target_node_address=f"{GFS}*"))
    select = login_selector(f"{GFS}1", None, None)
    logins = linux(gfs.adm).get_persistent_logins(select)
    assert sorted(lg["TargetPortalAddress"] for lg in logins) == ["10.131.0.11", "10.132.0.11"]
    report = linux(gfs.adm).remove_persistent_logins(select, False)
    assert sorted((e["TargetPortalAddress"], e["status"]) for e in report) == [
        ("10.131.0.11", "removed"),
        ("10.132.0.11", "removed"),
    ]
    assert len(gfs.listed()) == 4  # nothing deleted
    assert gfs.startup(f"{GFS}1", "10.131.0.11:3260") == ("manual", "manual")
    assert gfs.startup(f"{GFS}2", "10.131.0.12:3260") == ("automatic", "automatic")
    assert linux(gfs.adm).get_persistent_logins(select) == []
    assert not any("delete" in argv for argv in gfs.argvs())


def test_unknown_records(gfs):
    # iscsiadm prints "No records found" and exits 21: no record, no error.
    assert gfs.adm.set_startup(f"{GFS}9", "10.131.0.11", 3260, "default", "manual") is False
    # An iface that does not exist is an error (exit 3), named as iscsiadm names it.
    with pytest.raises(IscsiadmError, match=r"exit 3, .*Could not read iface info for nosuch"):
        gfs.adm.set_startup(f"{GFS}1", "10.131.0.11", 3260, "nosuch", "manual")
    assert len(gfs.listed()) == 4  # iscsiadm created nothing
    assert gfs.startup(f"{GFS}1", "10.131.0.11:3260") == ("manual", "manual")


def test_no_sessions_on_this_machine(real_iscsiadm, host_before, tmp_path):
    """The real ``iscsiadm -m session -P 3`` here: no iscsi_tcp, "No active sessions" (21)."""
    db = PrivateDb(tmp_path)
    assert db.adm.session_tree() == ""
    assert linux(db.adm).get_sessions(Selector()) == []
    assert unregister(db.adm, Selector(session_identifier="1")) == {"1": {"status": "not_found"}}
    assert linux(db.adm).get_persistent_logins(login_selector("*", None, None)) == []


def test_test_mode_changes_nothing(gfs):
    register(gfs.adm, Selector(session_identifier="3"))
    before, updates = snapshot([str(gfs.nodes)]), len(gfs.updates())
    assert (
        register(gfs.adm, Selector(target_node_address="*"), test=True)["1"]["status"]
        == "would_register"
    )
    assert (
        unregister(gfs.adm, Selector(target_node_address="*"), test=True)["3"]["status"]
        == "would_unregister"
    )
    removed = linux(gfs.adm).remove_persistent_logins(login_selector("*", None, None), True)
    assert [e["status"] for e in removed] == ["would_remove"]
    assert snapshot([str(gfs.nodes)]) == before
    assert len(gfs.updates()) == updates


def test_digest_changes_with_startup_modes_only(gfs):
    files = lambda: nodedb.digest(node_dirs=[str(gfs.nodes)])  # noqa: E731
    via_iscsiadm = lambda: nodedb.digest(gfs.adm, node_dirs=[str(gfs.nodes / "none")])  # noqa: E731
    start, start_adm = files(), via_iscsiadm()
    assert (start["count"], start_adm["count"], start_adm["source"]) == (0, 0, "iscsiadm")
    new_node(gfs.adm, f"{GFS}3", "10.131.0.13", 3260, "default", 1)  # a new manual record
    assert (files(), via_iscsiadm()) == (start, start_adm)
    register(gfs.adm, Selector(session_identifier="1"))
    one, one_adm = files(), via_iscsiadm()
    assert one["count"] == one_adm["count"] == 1
    assert one["digest"] != start["digest"] and one_adm["digest"] != start_adm["digest"]
    gfs.adm.run(
        ["-m", "node", "-T", f"{GFS}1", "-p", "10.131.0.11:3260", "-I", "default", "-o", "update"]
        + ["-n", "node.session.timeo.replacement_timeout", "-v", "5"]
    )
    register(gfs.adm, Selector(session_identifier="1"), force=True)  # same mode rewritten
    assert (files(), via_iscsiadm()) == (one, one_adm)
    unregister(gfs.adm, Selector(session_identifier="1"))
    assert (files(), via_iscsiadm()) == (start, start_adm)


HOSTILE = [
    "-T", "--op=delete", "-o delete", "iqn.x:a b", "iqn.x:a\nb", "iqn.x:a,b", "iqn.x:a/../../b",
    "iqn.x:a\x00", "iqn.x:a=b", "iqn.x:\u202eevil", "10.0.0.1:3260,1", "[10.0.0.1]", "*", "",
]  # fmt: skip


def test_hostile_values_never_reach_argv(gfs):
    before = len(gfs.argvs())
    t, a = f"{GFS}1", "10.131.0.11"
    for v in HOSTILE:
        calls = [
            (gfs.adm.set_startup, (v, a, 3260, "default", "manual")),
            (gfs.adm.set_startup, (t, v, 3260, "default", "manual")),
            (gfs.adm.set_startup, (t, a, v, "default", "manual")),
            (gfs.adm.set_startup, (t, a, 3260, v, "manual")),
            (gfs.adm.set_startup, (t, a, 3260, "default", v)),
            (lambda text: portal_arg(Portal.parse(text).address), (v,)),
        ]
        for call, args in calls:
            with pytest.raises(IscsiInputError):
                call(*args)
    assert gfs.argvs()[before:] == []  # every one refused before iscsiadm ran
    # Names iscsiadm itself accepts, but that the backend will not put into argv.
    odd = ["iqn.2001-05.com.example:sp ace", "iqn.2001-05.com.example:bad,name", "-dash"]
    for target in odd:
        gfs.adm.run(["-m", "node", "-T", target, "-p", "10.0.0.7:3260", "-o", "new"])
        gfs.adm.run(["-m", "node", "-T", target, "-p", "10.0.0.7:3260", "-o", "update"]
                    + ["-n", "node.startup", "-v", "automatic"])  # fmt: skip
    raw = len(gfs.argvs())
    report = linux(gfs.adm).remove_persistent_logins(login_selector("*", None, None), False)
    assert {e["TargetName"]: e["status"] for e in report} == dict.fromkeys(odd, "failed")
    assert all("not a valid iSCSI name" in e["error"] for e in report)
    assert not any(v in argv for argv in gfs.argvs()[raw:] for v in odd)
    still = linux(gfs.adm).get_persistent_logins(login_selector("*", None, None))
    assert sorted(lg["TargetName"] for lg in still) == sorted(odd)  # untouched


def test_zz_the_machines_own_database_is_untouched(host_before):
    """Last in this module: nothing the tests did reached /etc/iscsi or its lock."""
    assert snapshot() == host_before
    assert not any(GFS in path for path in snapshot())
