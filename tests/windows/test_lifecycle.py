"""The lifecycle ops against the real initiator and the loopback target: what the script
assumes about the CIM methods behind New-IscsiTargetPortal, Connect-IscsiTarget and
Set-IscsiChapSecret (GUESSes in main.ps1 and tests/support/simhost/lifecycle.py).

Each answer is recorded (``recorder.fact``) for people to compare with the simulator."""

import os

import pytest

from tests.windows import hostactions

CHAP_USER = "salt-test-chap"
CHAP_SECRET = "SaltTestChap-2"  # 14 bytes
# The initiator's mutual-CHAP secret can be set but not read back, so a test that sets it
# cannot restore it: it runs only where the host's secret may change (throwaway CI hosts).
SET_INITIATOR_SECRET = "ISCSI_TEST_SET_INITIATOR_SECRET"


def ok(channel, request, secrets=None):
    answer = channel.request(request, secrets)
    assert answer["ok"], answer
    return answer


def sessions_of(channel, target):
    answer = ok(channel, {"op": "get_sessions", "connections": True, "disks": True})
    return [
        s
        for s in answer["sessions"]
        if s["TargetNodeAddress"].lower() == target["target_iqn"].lower()
    ]


def test_portal_connect_persistent_and_disks(channel, target, recorder, kind):
    portal = {"address": target["portal"], "port": target["port"]}
    ok(channel, {"op": "add_target_portal", **portal})  # present already: must not fail
    portals = ok(channel, {"op": "get_target_portals"})["portals"]
    recorder.fact("target_portals", portals, kind)
    assert any(p["TargetPortalAddress"] == target["portal"] for p in portals)
    targets = ok(channel, {"op": "get_targets"})["targets"]
    assert any(t["NodeAddress"].lower() == target["target_iqn"].lower() for t in targets)
    ok(
        channel,
        {
            "op": "connect_target",
            "node_address": target["target_iqn"],
            **portal,
            "is_persistent": True,
            "is_multipath_enabled": False,
        },
    )
    (session,) = sessions_of(channel, target)
    recorder.fact("connect_target_session", session, kind)
    assert session["IsPersistent"] is True
    assert isinstance(session["Disks"], list)  # the RAM disk, with its volumes if any
    logins = [
        lg
        for lg in ok(channel, {"op": "get_persistent_logins"})["logins"]
        if lg["TargetName"].lower() == target["target_iqn"].lower()
    ]
    recorder.fact("connect_target_logins", logins, kind)
    assert logins and logins[0]["IsMultipathEnabled"] is False
    answer = ok(
        channel,
        {
            "op": "disconnect",
            "sessions": [
                {"id": session["SessionIdentifier"], "node_address": target["target_iqn"]}
            ],
        },
    )
    recorder.fact("disconnect", answer["results"], kind)
    assert answer["results"][0]["ok"], answer
    assert sessions_of(channel, target) == []


def test_connect_with_one_way_chap_arguments(channel, target, recorder, kind):
    """The target does not require CHAP; the CIM method must accept the CHAP arguments."""
    answer = channel.request(
        {
            "op": "connect_target",
            "node_address": target["target_iqn"],
            "address": target["portal"],
            "port": target["port"],
            "is_persistent": False,
            "authentication_type": "ONEWAYCHAP",
            "chap_username": CHAP_USER,
        },
        {"chap_secret": CHAP_SECRET},
    )
    recorder.fact("connect_target_with_chap", answer, kind)
    assert CHAP_SECRET not in repr(answer)
    if answer["ok"]:
        hostactions.cleanup(target)


@pytest.mark.skipif(
    os.environ.get(SET_INITIATOR_SECRET) != "1",
    reason=f"sets the initiator's mutual-CHAP secret, which cannot be read back or restored: "
    f"opt in with {SET_INITIATOR_SECRET}=1 on a host whose secret may change",
)
def test_set_initiator_chap_secret(channel, recorder, kind):
    answer = channel.request({"op": "set_chap_secret"}, {"chap_secret": CHAP_SECRET})
    recorder.fact("set_chap_secret", answer, kind)
    assert answer["ok"], answer
    assert CHAP_SECRET not in repr(answer)


def test_what_new_returns_for_an_existing_portal(channel, target, recorder, kind):
    """MSFT_iSCSITargetPortal.New on a portal already there: success (it discovers again)
    or 0xEFFF0032? (switch new_existing_portal). The script's add works either way."""
    portal = {"address": target["portal"], "port": target["port"]}
    ok(channel, {"op": "add_target_portal", **portal})
    raw = hostactions.act("portal_new", **portal)
    recorder.fact("new_existing_portal_raw", raw, kind)
    failed = raw["raised"] or bool(raw["return_value"])
    recorder.behaviour("new_existing_portal", "error" if failed else "refresh", kind)
    answer = channel.request({"op": "add_target_portal", **portal})
    recorder.fact("add_existing_portal_through_the_script", answer, kind)
    assert answer["ok"], answer


def test_how_provider_errors_arrive_through_invoke_cim_method(twin, recorder, kind):
    """A CIM method that fails (Connect to a target nobody offers): a CimException, or a
    non-zero ReturnValue? (switch method_failures)"""
    request = {
        "op": "connect_target",
        "node_address": "iqn.1991-05.com.contoso:salt-test-nobody-offers-this",
        "is_persistent": False,
        "is_multipath_enabled": False,
    }

    def observed(real):
        recorder.fact("provider_error_connect", real, kind)
        assert real["ok"] is False, real
        by_value = str(real["error"]["error_id"]).startswith("ReturnValue ")
        value = "return_value" if by_value else "exception"
        recorder.behaviour("method_failures", value, kind)
        return {"method_failures": value}

    twin.request(request, behaviour=observed)
