"""The open-iscsi parsers against recorded iscsiadm output, and the argument checks.

The session outputs in tests/data/openiscsi were published from real hosts (sources in its
README); the node listings were recorded from Debian's iscsiadm 2.1.8.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from saltext_win_iscsi.errors import IscsiInputError
from saltext_win_iscsi.model import CONNECTION_FIELDS, SESSION_FIELDS, Portal
from saltext_win_iscsi.openiscsi import iscsiadm as adm
from saltext_win_iscsi.openiscsi.parse import (
    parse_node_records,
    parse_portal,
    parse_session_tree,
)
from saltext_win_iscsi.selection import Selector
from tests.support.hostile import hostile_values

DATA = Path(__file__).resolve().parents[2] / "data" / "openiscsi"


def sessions_of(name: str) -> list[dict]:
    return parse_session_tree((DATA / name).read_text())


# file: [(sid, target, iface, current portal, persistent portal, tpgt, connected, auth, disks)]
EXPECTED = {
    "session-P3-2.0-872.41.el6.txt": [
        ("1", "iqn.1992-04.com.emc:cx.apm00121200804.a6", "iface0", ("192.168.25.182", 3260),
         ("192.168.25.182", 3260), 1, True, "ONEWAYCHAP", ["sdc", "sdd"]),
        ("2", "iqn.1992-04.com.emc:cx.apm00121200804.b6", "iface1", ("10.109.25.186", 3260),
         ("10.109.25.186", 3260), 2, True, "ONEWAYCHAP", ["sde", "sdf"]),
    ],
    "session-P3-2.0-873.txt": [
        (str(sid), "iqn.2020-01.lenovo:test", "default", (f"10.16.172.{portal}", 3260),
         (f"10.16.172.{portal}", 3260), 1, True, "NONE", [disk])
        for sid, portal, disk in [(16, 105, "sdd"), (17, 106, "sde"), (18, 107, "sdf"), (19, 108, "sdg")]
    ],
    "session-P3-2.1.3-excerpt.txt": [
        ("1", "iqn.1992-04.com.emc:cx.apm00191923511.a4", "default", ("10.1.53.160", 3260),
         ("10.1.53.160", 3260), 1, True, "NONE", ["sdb"]),
    ],
    "session-P3-2.1.5-excerpt.txt": [
        ("1", "iqn.2005-10.org.freenas.ctl:csi-pvc-1224c988-4198-47cb-85a1-66d4755c94e9-main-k8s",
         "default", ("192.168.10.102", 3260), ("truenas.[REDACTED]", 3260), 1, True, "NONE", []),
    ],
    "session-P3-2.1.9.txt": [
        ("1", "iqn.2025-03.ru.abegorov:gfs2:gfs-iscsi-01", "default", ("10.131.0.11", 3260),
         ("10.131.0.11", 3260), 1, True, "MUTUALCHAP", ["sdb"]),
        ("2", "iqn.2025-03.ru.abegorov:gfs2:gfs-iscsi-01", "default", ("10.132.0.11", 3260),
         ("10.132.0.11", 3260), 1, True, "MUTUALCHAP", ["sdc"]),
        ("3", "iqn.2025-03.ru.abegorov:gfs2:gfs-iscsi-02", "default", ("10.132.0.12", 3260),
         ("10.132.0.12", 3260), 1, True, "MUTUALCHAP", ["sdd"]),
        ("4", "iqn.2025-03.ru.abegorov:gfs2:gfs-iscsi-02", "default", ("10.131.0.12", 3260),
         ("10.131.0.12", 3260), 1, True, "MUTUALCHAP", ["sde"]),
    ],
    "session-P3-6.2.0.878-2-excerpt.txt": [
        ("104", "iqn.2019-10.io.longhorn:isotools-db-data-datapump", "default",
         ("10.244.2.195", 3260), ("10.244.2.195", 3260), 1, False, "NONE", []),
    ],
    "session-P3-6.2.1.2-0.txt": [
        ("27", "iqn.2004-04.com.qnap:ts-231p:iscsi.qnapnas.22dcb3", "default",
         ("192.168.3.248", 3260), ("192.168.3.248", 3260), 1, True, "ONEWAYCHAP", ["sda"]),
    ],
    "synthetic-session-P3-ipv6-shared-portal.txt": [
        ("5", "iqn.2003-01.org.example.san:v6", "default", ("2001:db8::10", 3260),
         ("2001:db8::10", 3260), 1, True, "ONEWAYCHAP", ["sdh"]),
        ("6", "iqn.2003-01.org.example.san:v6", "iface1", ("2001:db8::10", 3260),
         ("2001:db8::10", 3260), 1, False, "NONE", []),
        ("7", "iqn.2003-01.org.example.san:redirected", "default", ("192.0.2.7", 3260),
         ("nas", 3260), 2, True, "NONE", ["sdi"]),
    ],
}  # fmt: skip


def test_every_data_file_is_covered():
    assert {p.name for p in DATA.glob("*session-P3-*.txt")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_sessions(name):
    got = [
        (
            s["SessionIdentifier"],
            s["TargetNodeAddress"],
            s["InitiatorInstanceName"],
            (s["Connections"][0]["TargetAddress"], s["Connections"][0]["TargetPortNumber"]),
            (s["PersistentPortalAddress"], s["PersistentPortalPort"]),
            s["TargetPortalGroupTag"],
            s["IsConnected"],
            s["AuthenticationType"],
            s["AttachedDisks"],
        )
        for s in sessions_of(name)
    ]
    assert got == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sessions_have_the_windows_fields(name):
    for session in sessions_of(name):
        assert set(SESSION_FIELDS) <= set(session)
        assert session["IsPersistent"] is None  # the node record decides, not the parser
        assert session["NumberOfConnections"] == 1
        (connection,) = session["Connections"]
        assert set(connection) == set(CONNECTION_FIELDS)
        assert connection["ConnectionIdentifier"] == f"connection{session['SessionIdentifier']}:0"
        assert session["InitiatorNodeAddress"].startswith("iqn.")
        json.dumps(session)  # plain data, as Salt returns it


def test_initiator_addresses_and_digests():
    (qnap,) = sessions_of("session-P3-6.2.1.2-0.txt")
    assert qnap["InitiatorNodeAddress"] == "iqn.1994-05.com.redhat:408bbd707ab"
    assert qnap["InitiatorPortalAddress"] == "10.0.0.52"
    assert (qnap["IsHeaderDigest"], qnap["IsDataDigest"]) == (False, False)
    (longhorn,) = sessions_of("session-P3-6.2.0.878-2-excerpt.txt")
    assert longhorn["InitiatorPortalAddress"] is None  # "[default]"
    assert (longhorn["SessionState"], longhorn["ConnectionState"]) == ("FREE", "TRANSPORT WAIT")
    assert longhorn["IsHeaderDigest"] is None  # the excerpt stops before the parameters
    v6 = sessions_of("synthetic-session-P3-ipv6-shared-portal.txt")[0]
    assert v6["InitiatorPortalAddress"] == "2001:db8::20"
    assert (v6["IsHeaderDigest"], v6["IsDataDigest"]) == (True, True)


def test_no_chap_values_are_kept():
    for name in EXPECTED:
        text = json.dumps(sessions_of(name))
        for value in ("c7a7-10240", "admin", "initiator-mutual", "host-a", "********"):
            assert value not in text


def test_selector_on_parsed_sessions():
    sessions = sessions_of("session-P3-2.1.9.txt")
    picked = [s["SessionIdentifier"] for s in sessions if Selector(target_portal="10.131.0.*")(s)]
    assert picked == ["1", "4"]
    v6 = sessions_of("synthetic-session-P3-ipv6-shared-portal.txt")
    picked = [
        s["SessionIdentifier"] for s in v6 if Selector(target_portal="[2001:db8::10]:3260")(s)
    ]
    assert picked == ["5", "6"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.1.53.160:3260,1", ("10.1.53.160", 3260, 1)),
        ("[2001:db8::10]:3260,1", ("2001:db8::10", 3260, 1)),
        ("[nohost]:3260,4294967295", ("nohost", 3260, -1)),
        ("nas.example.net:3261,-1", ("nas.example.net", 3261, -1)),
        ("truenas.[REDACTED]:3260,1", ("truenas.[REDACTED]", 3260, 1)),
        ("10.0.0.1:3260", ("10.0.0.1", 3260, None)),
        ("garbage", None),
        ("", None),
    ],
)
def test_parse_portal(text, expected):
    assert parse_portal(text) == expected


def test_node_records_recorded_from_iscsiadm_2_1_8():
    records = parse_node_records((DATA / "node-show-2.1.8.txt").read_text())
    assert [(r["target"].rsplit(":", 1)[1], r["address"], r["port"], r["tpgt"], r["iface"],
             r["startup"], r["conn_startup"]) for r in records] == [
        ("alpha", "192.0.2.10", 3260, -1, "default", "manual", "manual"),
        ("beta", "2001:db8::10", 3260, 1, "default", "manual", "manual"),
        ("beta", "2001:db8::10", 3260, 1, "iface0", "automatic", "automatic"),
        ("gamma", "nas.example.net", 3261, 2, "default", "onboot", "manual"),
    ]  # fmt: skip
    assert all(set(r) == {"target", "tpgt", "startup", "conn_startup", "address", "port",
                          "iface", "transport", "discovery_address", "discovery_port",
                          "authmethod", "username", "username_in"} for r in records)  # fmt: skip
    # The CHAP user names are kept (to compare with a wanted connection), never a password.
    assert "password" not in json.dumps(records)


@pytest.mark.parametrize(
    "text", ["", "\n\n", "iscsiadm: No active sessions.", "Target:", "x" * 5000]
)
def test_parsers_take_odd_input(text):
    assert parse_session_tree(text) == []
    assert parse_node_records(text) == []


# --- argument checks ------------------------------------------------------------------


def recorded_names() -> set[str]:
    names = set()
    for name in EXPECTED:
        for s in sessions_of(name):
            names |= {s["TargetNodeAddress"], s["InitiatorNodeAddress"]}
    return names


@pytest.mark.parametrize("name", sorted(recorded_names()))
def test_real_names_pass(name):
    assert adm.check_name(name) == name


@pytest.mark.parametrize(
    "value",
    [
        "-dash", "--help", "-T", " iqn.x:a", "iqn.x:a ", "iqn.x:a b", "iqn.x:a\tb", "iqn.x:a\nb",
        "iqn.x:a\rb", "iqn.x:a\x00b", "iqn.x:a\x1b[2J", "iqn.x:a,b", "iqn.x:a/b", "../etc",
        "iqn.x:a/../../b", "iqn.x:a=b", "iqn.x:[a]", "iqn.x:a;b", "iqn.x:$(id)", "iqn.x:`id`",
        "\u0456qn.x:a", "iqn.x:a\u202e", "iqn.x:a\u2028b", "", ".hidden", "a" * 224, None, 7,
    ],
)  # fmt: skip
def test_odd_names_are_refused(value):
    with pytest.raises(IscsiInputError):
        adm.check_name(value)
    with pytest.raises(IscsiInputError):
        adm.check_iface(value)
    with pytest.raises(IscsiInputError):
        adm.record_args(value, "10.0.0.1", 3260, "default")


def portal_for_iscsiadm(text: object) -> tuple[str, int]:
    """A user's portal as the Linux backend takes it: parsed once (model.Portal), then
    checked for iscsiadm's ``-p`` (and split back)."""
    portal = Portal.parse(text)
    arg = adm.portal_arg(portal.address, portal.port)
    address, _, port = arg.rpartition(":")
    return address.strip("[]"), int(port)


@pytest.mark.parametrize("value", hostile_values())
def test_hostile_corpus_is_refused_everywhere(value):
    for check in (adm.check_name, adm.check_iface, adm.check_address, portal_for_iscsiadm):
        with pytest.raises(IscsiInputError):
            check(value)


@pytest.mark.parametrize(
    ("portal", "expected"),
    [
        ("10.0.0.1:3260", ("10.0.0.1", 3260)),
        ("10.0.0.1", ("10.0.0.1", 3260)),
        ("nas.example.net:3261", ("nas.example.net", 3261)),
        ("[2001:db8::1]:3260", ("2001:db8::1", 3260)),
        ("[fe80::1%eth0]", ("fe80::1%eth0", 3260)),
        # Without brackets an IPv6 address is all address: the port is the default.
        ("2001:db8::1", ("2001:db8::1", 3260)),
        ("2001:db8::1:3260", ("2001:db8::1:3260", 3260)),
    ],
)
def test_portals_pass(portal, expected):
    assert portal_for_iscsiadm(portal) == expected
    address, port = expected
    assert portal_for_iscsiadm(adm.portal_arg(address, port)) == expected


@pytest.mark.parametrize(
    "portal",
    [
        "10.0.0.1:3260,1", "10.0.0.1:", "10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1:-1",
        "10.0.0.1:32 60", "[2001:db8::1]:3260,1",
        "[not-v6]:3260", "[fe80::1%eth0;x]", "-p", "-host:3260", "host-:3260", "a..b:3260",
        "10.0.0.1\n:3260", "host/x:3260", "[]:3260",
        "[2001:db8::1]]:3260", "10.0.0.1:\u0663\u0662", "", None, 3260,
    ],
)  # fmt: skip
def test_odd_portals_are_refused(portal):
    with pytest.raises(IscsiInputError):
        portal_for_iscsiadm(portal)


def test_portal_arg_brackets_ipv6_only():
    assert adm.portal_arg("2001:db8::1", 3260) == "[2001:db8::1]:3260"
    assert adm.portal_arg("192.0.2.1", "3260") == "192.0.2.1:3260"
    assert adm.portal_arg("nas", 3260) == "nas:3260"
    for port in (0, 65536, True, "3260,1", 3.5, None):
        with pytest.raises(IscsiInputError):
            adm.portal_arg("192.0.2.1", port)


def test_record_args_and_startup_modes():
    assert adm.record_args("iqn.2003-01.org.example:t", "2001:db8::1", 3260, "iface0") == [
        "-T", "iqn.2003-01.org.example:t", "-p", "[2001:db8::1]:3260", "-I", "iface0",
    ]  # fmt: skip
    assert [adm.check_startup(m) for m in adm.STARTUP_MODES] == list(adm.STARTUP_MODES)
    for mode in ("Manual", "auto", "automatic\n", "", None):
        with pytest.raises(IscsiInputError):
            adm.check_startup(mode)
