"""The open-iscsi backend's logic with an in-memory iscsiadm, and the runner's process handling.

The real iscsiadm is exercised in tests/functional/modules/test_openiscsi_nodes.py; here a fake
serves recorded session output and node records, so every status and fault is reachable.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from saltext_win_iscsi.beacon.monitor import Scope
from saltext_win_iscsi.errors import IscsiError, IscsiInputError
from saltext_win_iscsi.model import ANY_PORT
from saltext_win_iscsi.openiscsi import nodedb, persistence
from saltext_win_iscsi.openiscsi.backend import OpenIscsiBackend
from saltext_win_iscsi.openiscsi.iscsiadm import Iscsiadm, IscsiadmError, record_args
from saltext_win_iscsi.openiscsi.readiness import Programs
from saltext_win_iscsi.policy import Policy
from saltext_win_iscsi.selection import Selector, login_selector
from saltext_win_iscsi.spec import PersistenceSpec

DATA = Path(__file__).resolve().parents[2] / "data" / "openiscsi"
EUCA = (DATA / "session-P3-2.0-872.41.el6.txt").read_text()
A6, B6 = "iqn.1992-04.com.emc:cx.apm00121200804.a6", "iqn.1992-04.com.emc:cx.apm00121200804.b6"


class FakeAdm(Iscsiadm):
    """Records in memory, sessions from recorded text; set_startup checks its arguments
    exactly as the real one does before anything would run."""

    def __init__(self, sessions: str, records: list[dict]) -> None:
        super().__init__(executable="/nonexistent/iscsiadm")
        self.sessions_text = sessions
        self.records = records
        self.calls: list[list[str]] = []
        self.fail: dict[str, Exception] = {}  # target -> error raised by set_startup
        self.ignore_updates = False

    def session_tree(self) -> str:
        return self.sessions_text

    def node_records(self) -> str:
        return "".join(
            "# BEGIN RECORD 2.1.8\n"
            f"node.name = {r['target']}\nnode.tpgt = {r.get('tpgt', 1)}\n"
            f"node.startup = {r['startup']}\niface.iscsi_ifacename = {r['iface']}\n"
            "node.session.auth.password = ********\n"
            f"node.conn[0].address = {r['address']}\nnode.conn[0].port = {r['port']}\n"
            f"node.conn[0].startup = {r['startup']}\n# END RECORD\n"
            for r in self.records
        )

    def set_startup(self, target, address, port, iface, mode):
        args = record_args(target, address, port, iface)
        self.calls.append([*args, mode])
        if target in self.fail:
            raise self.fail[target]
        found = [r for r in self.records if (r["target"], r["address"], r["port"], r["iface"])
                 == (target, address, port, iface)]  # fmt: skip
        if not self.ignore_updates:
            for record in found:
                record["startup"] = mode
        return bool(found)


def record(target, address, iface="default", startup="manual", port=3260):
    return {"target": target, "address": address, "port": port, "iface": iface, "startup": startup}


@pytest.fixture
def euca() -> FakeAdm:
    return FakeAdm(
        EUCA,
        [
            record(A6, "192.168.25.182", "iface0", "automatic"),
            record(B6, "10.109.25.186", "iface1"),
            record(B6, "10.109.25.186", "default", "automatic"),  # another iface: no session
        ],
    )


def unregister(adm, select, test=False, passthru=False, force=False):
    spec = PersistenceSpec(select, persistent=False, force=force)
    return persistence.change_persistence(adm, spec, test, passthru)


def register(adm, select, test=False, passthru=False, force=False, **extra):
    spec = PersistenceSpec(select, persistent=True, force=force, **extra)
    return persistence.change_persistence(adm, spec, test, passthru)


def test_is_persistent_comes_from_the_sessions_own_record(euca):
    sessions = persistence.read_sessions(euca)
    assert [(s["SessionIdentifier"], s["IsPersistent"], s["StartupMode"]) for s in sessions] == [
        ("1", True, "automatic"),
        ("2", False, "manual"),  # the automatic record of B6 is for iface "default"
    ]


def test_addresses_compare_as_addresses():
    text = (DATA / "synthetic-session-P3-ipv6-shared-portal.txt").read_text()
    adm = FakeAdm(text, [record("iqn.2003-01.org.example.san:v6", "2001:0db8:0::0010", startup="automatic"),
                         record("iqn.2003-01.org.example.san:redirected", "NAS", startup="automatic")])  # fmt: skip
    persistent = [
        s["SessionIdentifier"] for s in persistence.read_sessions(adm) if s["IsPersistent"]
    ]
    assert persistent == ["5", "7"]  # 6 is on iface1; 7's record is its persistent portal


def test_unregister_statuses(euca):
    report = unregister(euca, Selector(session_identifier=["1", "2", "99"]))
    assert report == {
        "99": {"status": "not_found"},
        "1": {"TargetNodeAddress": A6, "status": "unregistered"},
        "2": {"TargetNodeAddress": B6, "status": "not_persistent"},
    }
    assert euca.calls == [["-T", A6, "-p", "192.168.25.182:3260", "-I", "iface0", "manual"]]
    assert euca.records[0]["startup"] == "manual"
    assert euca.records[2]["startup"] == "automatic"  # not the session's record: untouched


def test_register_test_mode_and_force(euca):
    assert register(euca, Selector(target_node_address="*.a6"), test=True) == {
        "1": {"TargetNodeAddress": A6, "status": "already_persistent"}
    }
    assert (
        register(euca, Selector(target_node_address="*"), test=True)["2"]["status"]
        == "would_register"
    )
    assert euca.calls == []
    assert (
        register(euca, Selector(session_identifier="1"), force=True)["1"]["status"] == "registered"
    )
    changed = register(euca, Selector(session_identifier="2"), passthru=True)
    assert [(s["SessionIdentifier"], s["IsPersistent"]) for s in changed] == [("2", True)]


def test_sessions_sharing_a_record_change_together():
    text = EUCA.replace("Iface Name: iface1", "Iface Name: iface0").replace(B6, A6)
    text = text.replace("10.109.25.186:3260,2", "192.168.25.182:3260,1")
    adm = FakeAdm(text, [record(A6, "192.168.25.182", "iface0")])
    assert {
        sid: e["status"] for sid, e in register(adm, Selector(target_node_address=A6)).items()
    } == {
        "1": "registered",
        "2": "registered",
    }
    assert len(adm.calls) == 1


def test_failures_are_reported_per_session(euca):
    euca.fail[A6] = IscsiadmError("iscsiadm -m node ...", 6, "iscsiadm: Could not update record\n")
    report = unregister(euca, Selector(target_node_address="*"), force=True)
    assert report["1"]["status"] == "failed"
    assert "exit 6, error accessing the node database" in report["1"]["error"]
    assert "Could not update record" in report["1"]["error"]
    assert report["2"]["status"] == "unregistered"
    with pytest.raises(IscsiError, match="1: iSCSI: .*unregistered: 2"):
        unregister(euca, Selector(target_node_address="*"), force=True, passthru=True)


def test_unchanged_or_vanished_records(euca):
    euca.ignore_updates = True
    report = unregister(euca, Selector(session_identifier="1"))
    assert report["1"]["status"] == "failed"
    assert "node.startup is automatic" in report["1"]["error"]
    euca.ignore_updates = False
    euca.records[1]["iface"] = "gone"  # session 2 now has no record at all
    report = register(euca, Selector(session_identifier="2"))
    assert report["2"]["status"] == "failed" and "no node record" in report["2"]["error"]


def test_windows_only_arguments_are_refused_on_linux(euca):
    quiet = {"multipath": False, "chap_username": None}
    assert register(euca, Selector(session_identifier="2"), **quiet)["2"]["status"] == "registered"
    with pytest.raises(IscsiInputError, match="chap_secret, chap_username cannot be set on Linux"):
        register(euca, Selector(session_identifier="2"), chap_username="u",
                 chap_secret="0123456789abc", force=True)  # fmt: skip


def test_persistent_logins_and_their_removal(euca):
    logins = persistence.logins_of(persistence.read_records(euca))
    assert [
        (lg["TargetName"], lg["InitiatorInstance"], lg["TargetPortalAddress"]) for lg in logins
    ] == [
        (A6, "iface0", "192.168.25.182"),
        (B6, "default", "10.109.25.186"),
    ]
    assert all(lg["InitiatorPortNumber"] == ANY_PORT for lg in logins)
    assert [
        e["status"]
        for e in persistence.remove_logins(euca, login_selector("*.b6", None, None), True)
    ] == ["would_remove"]
    assert euca.calls == []
    report = persistence.remove_logins(euca, login_selector("*.b6", None, None), False)
    assert [(e["TargetName"], e["status"], e["entries"]) for e in report] == [(B6, "removed", 1)]
    assert [r["startup"] for r in euca.records] == ["automatic", "manual", "manual"]
    assert len(euca.records) == 3  # never deleted


def test_odd_records_are_never_addressed(euca):
    euca.records.append(record("iqn.2001-05.com.example:sp ace", "10.0.0.6", startup="automatic"))
    euca.records.append(record("-dash", "10.0.0.7", startup="automatic"))
    report = persistence.remove_logins(euca, login_selector("*", None, None), False)
    status = {e["TargetName"]: e["status"] for e in report}
    assert status == {
        A6: "removed",
        B6: "removed",
        "iqn.2001-05.com.example:sp ace": "failed",
        "-dash": "failed",
    }
    assert all(call[1] in (A6, B6) for call in euca.calls)
    assert "not a valid iSCSI name" in next(
        e["error"] for e in report if e["TargetName"] == "-dash"
    )


def test_check_policy(euca, tmp_path):
    policy = Policy.parse({"not_persistent": [{"target": "iqn.1992-04.com.emc:*"}]})
    conf = tmp_path / "iscsid.conf"
    conf.write_text("node.startup = automatic\n")
    result = OpenIscsiBackend(euca, (), str(conf)).check_policy(policy)
    assert result["compliant"] is False
    (risk,) = result["risks"]  # a rediscovery would bring the forbidden targets back
    assert "node.startup = automatic" in risk["detail"]
    assert [(v["kind"], v["target"]) for v in result["violations"]] == [
        ("session", A6),
        ("persistent_login", B6),
    ]


def write_record(root: Path, target: str, name: str, startup: str, extra: str = "") -> Path:
    path = root / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# BEGIN RECORD 2.1.8\nnode.name = {target}\nnode.startup = {startup}\n{extra}# END RECORD\n"
    )
    return path


def test_digest_follows_startup_modes_only(tmp_path, monkeypatch):
    nodes = tmp_path / "nodes"
    write_record(nodes, "iqn.x:a", "10.0.0.1,3260", "manual")
    empty = nodedb.digest(node_dirs=[str(nodes)])
    assert empty["count"] == 0 and empty["source"] == "files"
    write_record(nodes, "iqn.x:b", "10.0.0.2,3260,1/default", "manual")
    assert nodedb.digest(node_dirs=[str(nodes)]) == empty  # a manual record: nothing to watch
    write_record(nodes, "iqn.x:a", "10.0.0.1,3260", "automatic")
    one = nodedb.digest(node_dirs=[str(nodes)])
    assert one["count"] == 1 and one["digest"] != empty["digest"]
    write_record(
        nodes,
        "iqn.x:a",
        "10.0.0.1,3260",
        "automatic",
        "node.session.timeo.replacement_timeout = 5\n",
    )
    assert nodedb.digest(node_dirs=[str(nodes)]) == one  # another setting rewritten
    os.symlink(nodes / "iqn.x:a" / "10.0.0.1,3260", nodes / "iqn.x:b" / "link")
    assert nodedb.digest(node_dirs=[str(nodes)]) == one  # links are not records
    write_record(nodes, "iqn.x:a", "10.0.0.1,3260", "manual")
    assert nodedb.digest(node_dirs=[str(nodes)]) == empty


def test_digest_reads_only_changed_files(tmp_path, monkeypatch):
    nodes = tmp_path / "nodes"
    for i in range(5):
        write_record(nodes, f"iqn.x:{i}", "10.0.0.1,3260", "automatic")
    reads = []
    real = nodedb._logged_in_at_boot
    monkeypatch.setattr(nodedb, "_logged_in_at_boot", lambda path: reads.append(path) or real(path))
    cache: dict = {}
    first = nodedb.digest(node_dirs=[str(nodes)], cache=cache)
    assert len(reads) == 5
    assert nodedb.digest(node_dirs=[str(nodes)], cache=cache) == first and len(reads) == 5
    time.sleep(0.01)
    write_record(nodes, "iqn.x:3", "10.0.0.1,3260", "manual")
    assert nodedb.digest(node_dirs=[str(nodes)], cache=cache)["count"] == 4
    assert len(reads) == 6


def test_a_record_automatic_in_its_connection_only_is_logged_in_at_boot(tmp_path):
    """--loginall=automatic takes node.startup OR node.conn[0].startup (seen on a reboot)."""
    nodes = tmp_path / "nodes"
    write_record(
        nodes, "iqn.x:split", "10.0.0.1,3260", "manual", "node.conn[0].startup = automatic\n"
    )
    write_record(
        nodes, "iqn.x:manual", "10.0.0.1,3260", "manual", "node.conn[0].startup = manual\n"
    )
    assert nodedb.digest(node_dirs=[str(nodes)])["count"] == 1
    assert persistence.at_boot({"startup": "manual", "conn_startup": "automatic"})
    assert not persistence.at_boot({"startup": "onboot", "conn_startup": "manual"})


def test_digest_falls_back_to_iscsiadm(euca, tmp_path):
    state = nodedb.digest(euca, node_dirs=[str(tmp_path / "missing")])
    assert (state["source"], state["count"]) == ("iscsiadm", 2)
    euca.records[0]["startup"] = "manual"
    assert nodedb.digest(euca, node_dirs=[str(tmp_path / "missing")])["digest"] != state["digest"]


def test_the_checker_reads_sessions_and_logins_only_on_change(euca, tmp_path):
    conf = tmp_path / "iscsid.conf"
    checker = nodedb.OpenIscsiChecker(
        euca, [str(tmp_path / "missing")], str(conf), Programs(None, None, 10)
    )
    digest, seen = checker.look(None, Scope(sessions=False), 10)
    assert [s["SessionIdentifier"] for s in seen.sessions if s["IsPersistent"]] == ["1"]
    assert [lg["TargetName"] for lg in seen.logins] == [A6, B6]
    assert seen.defaults == {"node_startup": "manual"}  # no iscsid.conf: iscsiadm's own
    assert checker.look(digest, Scope(sessions=False), 10) == (digest, None)
    conf.write_text("node.startup = automatic\n")  # the default drifts: a new snapshot
    again, seen = checker.look(digest, Scope(sessions=False), 10)
    assert again != digest and seen.defaults == {"node_startup": "automatic"}


# --- the runner -----------------------------------------------------------------------


def python(code: str, timeout: float = 10) -> tuple[Iscsiadm, list[str]]:
    return Iscsiadm(executable=sys.executable, timeout=timeout), ["-c", code]


def test_runner_output_and_exit_codes():
    runner, args = python("import os; print(os.environ['LC_ALL'])")
    assert runner.run(args) == "C\n"
    code = "import sys; sys.stderr.write('iscsiadm: No records found\\n'); sys.exit(21)"
    runner, args = python(code)
    assert runner.run(args, empty_ok=True) == ""
    with pytest.raises(IscsiadmError, match=r"exit 21, no records.*No records found") as info:
        runner.run(args)
    assert info.value.code == 21
    runner, args = python("import sys; sys.stderr.write('iscsiadm: bad\\x1b[2J\\n'); sys.exit(7)")
    with pytest.raises(
        IscsiadmError, match=r"exit 7, invalid argument\): 'iscsiadm: bad\\x1b\[2J'"
    ):
        runner.run(args, empty_ok=True)


def test_runner_timeout_kills_the_whole_group(tmp_path):
    pidfile = tmp_path / "child"
    code = (
        "import subprocess, time; "
        f"p = subprocess.Popen(['sleep', '30']); open({str(pidfile)!r}, 'w').write(str(p.pid)); "
        "time.sleep(30)"
    )
    runner, args = python(code, timeout=1)
    started = time.monotonic()
    with pytest.raises(IscsiError, match="did not finish within 1 s and was killed"):
        runner.run(args)
    assert time.monotonic() - started < 10
    child = int(pidfile.read_text())
    for _ in range(50):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the grandchild outlived the timeout")


def test_runner_missing_binary_and_bad_arguments():
    with pytest.raises(IscsiError, match="not found: install open-iscsi"):
        Iscsiadm(executable="/nonexistent/iscsiadm").run(["-m", "node"])
    with pytest.raises(IscsiInputError):
        Iscsiadm().run(["-m", 5])
    assert Iscsiadm(prefix=["unshare", "--mount"]).argv(["-m", "node"]) == [
        "unshare", "--mount", "iscsiadm", "-m", "node",
    ]  # fmt: skip
