"""What Microsoft does not document about persistence, observed and fed to the simulator.

Each test records what it saw (``recorder``) under the simulator switch it decides, and
checks every answer against the simulator set to that observation (``twin``).
"""

import pytest

from tests.windows import hostactions

CHAP_USER = "salt-test-chap"
CHAP_SECRET = "SaltTestChap-1"  # 14 bytes: the initiator takes 12 to 16


def logins_of(twin, target):
    answer = twin.real({"op": "get_persistent_logins"})
    assert answer["ok"], answer
    return [
        lg for lg in answer["logins"] if lg["TargetName"].lower() == target["target_iqn"].lower()
    ]


def persistent(twin, session_id):
    answer = twin.real({"op": "get_sessions"})
    return next(s for s in answer["sessions"] if s["SessionIdentifier"] == session_id)[
        "IsPersistent"
    ]


def test_unregister_on_a_session_that_is_not_persistent(twin, session, recorder, kind):
    """Nothing happens, or 0xEFFF0042? (switch unregister_non_persistent)"""

    def observed(real):
        (item,) = real["results"]
        recorder.fact("unregister_non_persistent_result", item, kind)
        value = "noop" if item["ok"] else "error"
        recorder.behaviour("unregister_non_persistent", value, kind)
        return {"unregister_non_persistent": value}

    real = twin.request({"op": "unregister", "ids": [session]}, behaviour=observed)
    (item,) = real["results"]
    assert item["ok"] or item["error"]["hresult"] == "0xEFFF0042", item


def test_mpio_register_twice_unregister_once(twin, target, session, recorder, kind):
    """Two registrations of one session, one Unregister: how many logins are left?
    (switch unregister_removes)"""
    for n in (1, 2):
        answer = twin.request({"op": "register", "ids": [session], "is_multipath_enabled": True})
        recorder.fact(f"mpio_register_{n}", answer["results"], kind)
        if not answer["results"][0]["ok"]:
            pytest.skip(f"Windows refused registration {n} of one session: {answer['results']}")
    before = logins_of(twin, target)
    recorder.fact("mpio_logins_after_two_registrations", before, kind)
    assert len(before) == 2, before

    def observed(real):
        left = len(logins_of(twin, target))
        recorder.fact("mpio_logins_after_one_unregister", left, kind)
        assert left in (0, 1), left
        value = "all" if left == 0 else "one"
        recorder.behaviour("unregister_removes", value, kind)
        return {"unregister_removes": value}

    answer = twin.request({"op": "unregister", "ids": [session]}, behaviour=observed)
    assert answer["results"][0]["ok"], answer


def test_login_made_without_a_portal(twin, target, recorder, kind):
    """Connect-IscsiTarget without -TargetPortalAddress, persistent: what WMI reports for its
    TargetPortal, and whether remove_persistent_logins (a '*' address and socket when the
    address is empty) removes it."""
    connected = hostactions.connect(target, persistent=True, portal=False)
    recorder.fact("login_without_portal_session", connected, kind)
    logins = logins_of(twin, target)
    recorder.fact("login_without_portal_logins", logins, kind)
    assert len(logins) == 1, logins
    recorder.fact(
        "login_without_portal_login_options",
        hostactions.act("login_options", target=target["target_iqn"]),
        kind,
    )
    answer = twin.request({"op": "remove_persistent_logins", "logins": logins})
    recorder.fact("login_without_portal_remove_result", answer["results"], kind)
    left = logins_of(twin, target)
    recorder.fact("login_without_portal_left", left, kind)
    assert answer["results"][0]["ok"], answer
    assert left == [], left


def test_remove_persistent_login_end_to_end(twin, target, session, recorder, kind):
    """iscsicli RemovePersistentTarget on an entry registered twice: one or all go?
    (switch remove_persistent_removes); then register again."""
    for _ in (1, 2):
        twin.request({"op": "register", "ids": [session], "is_multipath_enabled": True})
    listed = hostactions.act("persistent_targets", target=target["target_iqn"])
    recorder.fact("mpio_duplicates_iscsicli_vs_wmi", listed, kind)
    collapsed = listed["count"] > listed["wmi_count"]
    recorder.behaviour("wmi_persistent_logins", "one_per_target" if collapsed else "each", kind)
    entries = logins_of(twin, target)
    if collapsed:
        pytest.skip(f"WMI lists the two registrations as {len(entries)}: recorded")
    assert len(entries) == 2 and entries[0] == entries[1], entries

    def observed(real):
        left = len(logins_of(twin, target))
        recorder.fact("remove_persistent_result", real["results"], kind)
        recorder.fact("remove_persistent_left_of_two", left, kind)
        if not real["results"][0]["ok"]:
            return {}
        assert left in (0, 1), left
        value = "all" if left == 0 else "one"
        recorder.behaviour("remove_persistent_removes", value, kind)
        return {"remove_persistent_removes": value}

    answer = twin.request(
        {"op": "remove_persistent_logins", "logins": entries[:1]}, behaviour=observed
    )
    assert answer["results"][0]["ok"], answer  # iscsicli exited 0
    if logins_of(twin, target):
        twin.request({"op": "remove_persistent_logins", "logins": entries[:1]})
    assert logins_of(twin, target) == []
    assert persistent(twin, session) is False
    answer = twin.request({"op": "register", "ids": [session], "is_multipath_enabled": False})
    assert answer["results"][0]["ok"], answer
    assert persistent(twin, session) is True
    assert len(logins_of(twin, target)) == 1


@pytest.fixture
def chap_target(target):
    hostactions.act(
        "target_chap",
        target_name=target["target_name"],
        enable=True,
        chap_username=CHAP_USER,
        chap_secret_hex=hostactions.hex_text(CHAP_SECRET),
    )
    yield target
    hostactions.act("target_chap", target_name=target["target_name"], enable=False)


def test_register_without_chap_on_a_session_that_used_chap(twin, chap_target, recorder, kind):
    """Registering a CHAP session with no CHAP arguments: accepted? What will it log in with?"""
    target = chap_target
    connected = hostactions.connect(target, chap=(CHAP_USER, CHAP_SECRET))
    assert connected["AuthenticationType"] == "ONEWAYCHAP", connected
    sid = connected["SessionIdentifier"]
    answer = twin.request({"op": "register", "ids": [sid], "is_multipath_enabled": False})
    recorder.fact("register_without_chap_result", answer["results"], kind)
    options = hostactions.act("login_options", target=target["target_iqn"])
    recorder.fact("register_without_chap_login_options", options, kind)
    assert answer["results"][0]["ok"], answer


@pytest.mark.parametrize(
    ("name", "fields", "secrets"),
    [
        ("plain", {"is_multipath_enabled": False}, None),
        ("mpio", {"is_multipath_enabled": True}, None),
        (
            "chap",
            {"is_multipath_enabled": False, "chap_username": CHAP_USER},
            {"chap_secret": CHAP_SECRET},
        ),
    ],
)
def test_what_register_stores(twin, target, session, recorder, kind, name, fields, secrets):
    """Register with and without CHAP and MPIO: the persistent login's options as WMI keeps
    them (AuthType, LoginFlags, the user name's raw bytes: switch username_nul_terminated)."""
    answer = twin.request({"op": "register", "ids": [session], **fields}, secrets, after=False)
    recorder.fact(f"register_{name}_result", answer["results"], kind)
    options = hostactions.act("login_options", target=target["target_iqn"])
    recorder.fact(f"register_{name}_login_options", options, kind)
    assert CHAP_SECRET not in repr(answer) + repr(options)
    if name == "chap" and options and options[0]["UsernameHex"]:
        ended = options[0]["UsernameHex"].endswith("00")
        recorder.behaviour("username_nul_terminated", "yes" if ended else "no", kind)
    logins = logins_of(twin, target)
    recorder.fact(f"register_{name}_logins", logins, kind)
    assert answer["results"][0]["ok"], answer
    if name == "chap":
        # What the main script reads back must be the name it registered (idempotence).
        assert [lg["ChapUsername"] for lg in logins] == [CHAP_USER], logins


def test_what_a_removal_without_portal_takes_with_it(twin, target, recorder, kind):
    """iscsicli RemovePersistentTarget with a '*' address (a login made without a portal),
    while the target has another login: does that one go too? (switch
    remove_without_portal; RemoveIScsiPersistentTargetW documents every portal.) The
    request goes to the script directly: the module itself refuses such a removal."""
    connected = hostactions.connect(target, persistent=True, portal=False)
    sid = connected["SessionIdentifier"]
    answer = twin.real({"op": "register", "ids": [sid], "is_multipath_enabled": True})
    recorder.fact("without_portal_second_registration", answer["results"], kind)
    logins = logins_of(twin, target)
    recorder.fact("without_portal_logins_before", logins, kind)
    recorder.fact(
        "without_portal_iscsicli_before",
        hostactions.act("persistent_targets", target=target["target_iqn"]),
        kind,
    )
    bare = [lg for lg in logins if not lg["TargetPortalAddress"]]
    others = [lg for lg in logins if lg["TargetPortalAddress"]]
    if not (bare and others):
        pytest.skip(f"no portal-less login beside one with a portal to compare: {logins}")

    def observed(real):
        left = logins_of(twin, target)
        recorder.fact("without_portal_remove_result", real["results"], kind)
        recorder.fact("without_portal_logins_left", left, kind)
        value = "all_portals" if not left else "portal_less_only"
        recorder.behaviour("remove_without_portal", value, kind)
        return {"remove_without_portal": value}

    twin.request({"op": "remove_persistent_logins", "logins": bare[:1]}, behaviour=observed)
