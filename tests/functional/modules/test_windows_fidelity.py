"""What a real Windows Server host does that the first model missed (the fidelity review).

Each test fails without its fix: error shapes as Windows reports them, PowerShell editions
and language modes, the iSCSI module missing, persistent logins iscsicli must be able to
remove, secrets kept out of logged cmdlet parameters.
"""

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.support.simhost.model import SEED_TARGET


@pytest.fixture
def ids(seeded):
    return [s["SessionIdentifier"] for s in seeded.sessions()]


def test_cim_errors_carry_the_status_from_the_error_id(iscsi, seeded, ids):
    """CimException leaves HResult at 0x80131500; the status is in the error id."""
    seeded.set_fault("fail_sessions", {ids[0]: "persistent_remove"})
    result = iscsi.unregister_session(session_identifier=ids[0])
    assert result[ids[0]]["error"] == (
        "Failed to remove persistent login information. "
        "(NotSpecified, HRESULT 0xefff0042,Unregister-IscsiSession)"
    )
    # What the host answered, as the channel sees it: status from the id, not 0x80131500.
    with seeded.edit() as state:
        state["faults"]["fail_sessions"] = {ids[1]: "access_denied"}
    answer = seeded.handle({"op": "unregister", "ids": [ids[1]]})
    assert answer["results"][0]["error"]["hresult"] == "0x80070005"
    seeded.set_fault("fail_sessions", {ids[2]: "persistent_remove"})
    answer = seeded.handle({"op": "unregister", "ids": [ids[2]]})
    assert answer["results"][0]["error"]["hresult"] == "0xEFFF0042"


def test_unknown_operation_is_a_script_error_record(seeded):
    answer = seeded.handle({"op": "explode"})
    assert answer["error"] == {
        "message": "unknown operation: explode",
        "category": "InvalidArgument",
        "error_id": "IscsiUnknownOperation",
        "hresult": None,
        "status": None,
    }


def test_register_of_an_unknown_session_is_not_found(iscsi, seeded):
    """Register goes through Get-IscsiSession and the CIM method: same not-found handling."""
    result = iscsi.register_session(session_identifier="ffffffffffffffff-0000000000000001")
    assert result == {"ffffffffffffffff-0000000000000001": {"status": "not_found"}}


def test_powershell_7_is_refused(iscsi, loaders, minion_setting, seeded):
    seeded.set_fault("edition", "Core")
    with pytest.raises(CommandExecutionError, match=r"PowerShell 7 \(pwsh\) is not supported"):
        iscsi.get_sessions()
    minion_setting({"iscsi.powershell": r"C:\Program Files\PowerShell\7\pwsh.exe"})
    with pytest.raises(SaltInvocationError, match=r"PowerShell 7 \(pwsh\) is not supported"):
        loaders.modules.iscsi.get_sessions()


def test_constrained_language_mode_is_named(iscsi, seeded):
    seeded.set_fault("language_mode", "ConstrainedLanguage")
    with pytest.raises(CommandExecutionError, match="ConstrainedLanguage language mode.*WDAC"):
        iscsi.get_sessions()


def test_missing_iscsi_module_is_named(iscsi, seeded):
    seeded.set_fault("iscsi_module_missing", True)
    with pytest.raises(CommandExecutionError, match="iSCSI PowerShell module cannot be loaded"):
        iscsi.get_sessions()


@pytest.mark.parametrize(
    ("login", "shown"),
    [
        ({"portal": "", "port": 0}, ("", 0)),  # made without a target portal
        ({"instance": "PCI\\VEN_8086&DEV_10FB\\3&1&0_0"}, ("10.0.0.5", 3260)),  # hardware HBA
        ({"portal": "fe80::5%12"}, ("fe80::5%12", 3260)),  # IPv6 with a zone id
    ],
    ids=["no-portal", "hba-instance", "ipv6-zone"],
)
def test_every_kind_of_persistent_login_can_be_removed(iscsi, seeded, login, shown):
    target = "iqn.1991-05.com.contoso:stale"
    seeded.add_persistent_login(target, **login)
    (entry,) = iscsi.get_persistent_logins(target_node_address=target)
    assert (entry["TargetPortalAddress"], entry["TargetPortalPort"]) == shown
    (report,) = iscsi.remove_persistent_login(target_node_address=target)
    assert report["status"] == "removed", report
    assert iscsi.get_persistent_logins(target_node_address=target) == []


def test_iscsicli_failure_shows_its_status_in_hex(iscsi, seeded):
    target = "iqn.1991-05.com.contoso:stuck"
    seeded.add_persistent_login(target)
    seeded.set_fault("fail_logins", {target: "persistent_remove"})
    (report,) = iscsi.remove_persistent_login(target_node_address=target)
    assert report["status"] == "failed"
    assert report["error"] == (
        "Failed to remove persistent login information. (iscsicli status 0xEFFF0042) "
        "(InvalidOperation, IscsicliFailed)"
    )


def test_a_name_iscsicli_would_misread_is_refused_by_the_script(seeded):
    answer = seeded.handle(
        {
            "op": "remove_persistent_logins",
            "logins": [
                {
                    "TargetName": "iqn.x:y",
                    "InitiatorInstance": 'ROOT\\ISCSIPRT\\0000_0" /evil',
                    "InitiatorPortNumber": 4294967295,
                    "TargetPortalAddress": "10.0.0.5",
                    "TargetPortalPort": 3260,
                }
            ],
        }
    )
    (item,) = answer["results"]
    assert item["error"]["error_id"] == "IscsiNotPlainName"


def test_chap_secret_reaches_windows_outside_the_request_json(iscsi, seeded, ids):
    import hashlib

    secret = "Chap-S3cret-99"
    iscsi.unregister_session(session_identifier=ids[0])
    result = iscsi.register_session(
        session_identifier=ids[0], chap_username="deepcore", chap_secret=secret
    )
    assert result[ids[0]]["status"] == "registered"
    login = [lg for lg in seeded.persistent_logins() if lg["session"] == ids[0]][-1]
    assert login["chap_secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    assert seeded.sessions()[0]["TargetNodeAddress"] == SEED_TARGET
