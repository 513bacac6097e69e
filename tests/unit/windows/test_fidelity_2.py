"""What the second review against Windows sources asked of the scripts, the channels and
the docs (issue 23), where a unit test can hold it."""

from __future__ import annotations

import importlib
import re

from saltext_win_iscsi.windows.channels import runspace
from saltext_win_iscsi.windows.powershell import scripts
from tests.conftest import REPO_ROOT
from tests.support import psparse

DOCS = REPO_ROOT / "docs"


def test_design_doc_states_the_bootstrap_length_it_has():
    """docs/design.md once called the 20-line bootstrap "a fixed eight-line script"."""
    text = (DOCS / "design.md").read_text(encoding="utf-8")
    stated = re.search(r"a fixed (\d+)-line script \(`powershell/bootstrap\.ps1`\)", text)
    assert stated, "docs/design.md no longer says how long the bootstrap is"
    assert int(stated.group(1)) == len(scripts.BOOTSTRAP.splitlines())


def test_the_initiator_secret_test_runs_only_when_opted_in(monkeypatch):
    """It sets a secret Windows never gives back: it must not run on a host by default."""
    from tests.windows import test_lifecycle

    def skipped() -> bool:
        module = importlib.reload(test_lifecycle)
        marks = getattr(module.test_set_initiator_chap_secret, "pytestmark", [])
        return any(m.name == "skipif" and m.args[0] for m in marks)

    monkeypatch.delenv("ISCSI_TEST_SET_INITIATOR_SECRET", raising=False)
    assert skipped()
    monkeypatch.setenv("ISCSI_TEST_SET_INITIATOR_SECRET", "1")
    assert not skipped()
    readme = (REPO_ROOT / "tests" / "windows" / "README.md").read_text(encoding="utf-8")
    assert "ISCSI_TEST_SET_INITIATOR_SECRET=1" in readme


# -- item 8: no secret outlives a request in the in-process runspace -----------------------


def test_the_runspace_runs_the_main_script_in_a_local_scope(tmp_path):
    """``AddScript(text)`` alone runs in the runspace's global scope: the decoded CHAP
    secret would stay in a global variable after the call."""
    from tests.support.simhost.model import SimulatedHost
    from tests.unit.windows.channels.test_runspace import FakeSDK

    sdk = FakeSDK(SimulatedHost(tmp_path / "host.json").reset(sessions=1))
    channel = runspace.RunspaceChannel(timeout=5, sdk=sdk)
    assert channel.request({"op": "set_chap_secret"}, {"chap_secret": "Mutual-Secret-1"})["ok"]
    assert sdk.ps.use_local_scope is True


def test_the_main_script_clears_what_it_decoded_whatever_happens():
    finally_blocks = [n.text.decode() for n in psparse.nodes(scripts.MAIN, "finally_clause")]
    assert finally_blocks, "the main script has no finally block"
    last = finally_blocks[-1]
    for clearing in ("$secret.Clear()", "$Payload = $null", "$parts = $null", "$bytes = $null"):
        assert clearing in last, clearing
    # ...and the secrets live in a table created before the try, so the finally sees it.
    table = re.search(r"\$secret = @\{\}\n\s*try \{", scripts.MAIN)
    assert table and table.start() < scripts.MAIN.index(last)


# -- item 10: modules imported, never autoloaded ---------------------------------------------

# Where the main script's cmdlets come from. Core (Import-Module) is always loaded; Utility
# (ConvertFrom-Json) parses the request before anything is imported.
CMDLET_MODULES = {
    "Get-IscsiSession": "iSCSI",
    "Get-IscsiConnection": "iSCSI",
    "Unregister-IscsiSession": "iSCSI",
    "Get-IscsiTargetPortal": "iSCSI",
    "Remove-IscsiTargetPortal": "iSCSI",
    "Update-IscsiTargetPortal": "iSCSI",
    "Get-IscsiTarget": "iSCSI",
    "Disconnect-IscsiTarget": "iSCSI",
    "Get-Disk": "Storage",
    "Update-HostStorageCache": "Storage",
    "Get-MSDSMAutomaticClaimSettings": "MPIO",
    "Get-MSDSMSupportedHW": "MPIO",
    "Get-Module": "Microsoft.PowerShell.Core",
    "Get-Partition": "Storage",
    "Invoke-CimMethod": "CimCmdlets",
    "Get-CimInstance": "CimCmdlets",
    "Import-Module": "Microsoft.PowerShell.Core",
    "ConvertFrom-Json": "Microsoft.PowerShell.Utility",
    "ConvertTo-Json": "Microsoft.PowerShell.Utility",
    "Get-Item": "Microsoft.PowerShell.Management",
    "New-ItemProperty": "Microsoft.PowerShell.Management",
    "Set-Service": "Microsoft.PowerShell.Management",
    "Start-Service": "Microsoft.PowerShell.Management",
    "Get-NetFirewallRule": "NetSecurity",
    "Get-WindowsFeature": "ServerManager",
    "Get-MSDSMGlobalDefaultLoadBalancePolicy": "MPIO",
    "Enable-MSDSMAutomaticClaim": "MPIO",
    "Get-InitiatorPort": "Storage",
}
ALWAYS_THERE = {"Microsoft.PowerShell.Core", "Microsoft.PowerShell.Utility"}


def test_every_cmdlet_comes_from_a_module_the_script_imports():
    own = psparse.function_names(scripts.MAIN)
    used = {
        name
        for name, _, _ in psparse.commands(scripts.MAIN)
        if "-" in name and not name.startswith("$") and name.lower() not in own
    }
    unknown = used - set(CMDLET_MODULES)
    assert not unknown, f"add these cmdlets' modules to CMDLET_MODULES: {unknown}"
    imported = set(
        re.findall(
            r"'([\w.]+)'", " ".join(re.findall(r"Import-Required @\(([^)]*)\)", scripts.MAIN))
        )
    )
    needed = {CMDLET_MODULES[name] for name in used} - ALWAYS_THERE
    assert needed <= imported, f"autoloaded: {needed - imported}"


# -- item 1: logins Windows removes that nobody chose -----------------------------------------


def _login(target: str, address: str = "10.0.0.5", port: int = 3260) -> dict:
    return {
        "TargetName": target,
        "InitiatorInstance": "ROOT\\ISCSIPRT\\0000_0",
        "InitiatorPortNumber": 4294967295,
        "TargetPortalAddress": address,
        "TargetPortalPort": port,
    }


def test_every_login_that_vanished_unchosen_is_reported():
    from saltext_win_iscsi.model import login_key
    from saltext_win_iscsi.windows.persistence import _vanished

    chosen_login, kept, collateral = _login("iqn.x:a", ""), _login("iqn.x:b"), _login("iqn.x:a")
    before = [chosen_login, kept, collateral, collateral]
    (gone,) = _vanished(before, [kept], {login_key(chosen_login): chosen_login})
    assert gone["TargetPortalAddress"] == "10.0.0.5" and gone["entries"] == 2
    assert gone["status"] == "failed" and "not selected, but Windows removed it" in gone["error"]
    assert _vanished(before, before, {}) == []


def test_a_portal_less_login_is_refused_only_when_its_target_keeps_others():
    from saltext_win_iscsi.model import login_key
    from saltext_win_iscsi.windows.persistence import _refusals

    bare, other, elsewhere = _login("iqn.x:a", "", 0), _login("iqn.x:a"), _login("iqn.x:b")
    alone = {login_key(bare): bare}
    assert list(_refusals(alone, [bare, other, elsewhere])) == [login_key(bare)]
    assert _refusals(alone, [bare, elsewhere]) == {}
    both = {login_key(bare): bare, login_key(other): other}
    assert _refusals(both, [bare, other]) == {}


# -- item 17: which sessions' volumes leave the bound list ------------------------------------


def test_only_sessions_with_a_bound_volume_are_asked_about():
    from saltext_win_iscsi.windows.volumes import bound_sessions

    volume = {"DriveLetter": "E", "IsBound": True}
    sessions = [
        {"SessionIdentifier": "a", "Disks": [{"Volumes": [volume]}]},
        {"SessionIdentifier": "b", "Disks": [{"Volumes": [{**volume, "IsBound": False}]}]},
        {"SessionIdentifier": "c", "Disks": []},
    ]
    assert bound_sessions(sessions) == ["a"]


# -- item 7: docs/security.md tells security teams the hashes that hold ---------------------


def test_security_doc_has_the_hashes_of_the_scripts_that_ship():
    from saltext_win_iscsi.windows.powershell.hashes import script_hashes

    text = (DOCS / "security.md").read_text(encoding="utf-8")
    for what, digest in script_hashes().items():
        assert f"| `{what}` | `{digest}` |" in text, f"docs/security.md: update {what}"
    assert "-File <iscsi.script_path> -Serve" in text


def test_installed_script_text_ignores_signature_bom_and_crlf():
    from saltext_win_iscsi.windows.wire import script_text

    signed = (
        "\ufeff" + scripts.MAIN.replace("\n", "\r\n") + "# SIG # Begin signature block\r\n# x\r\n"
    )
    assert script_text(signed.encode("utf-8")) == scripts.MAIN
    assert script_text((scripts.MAIN + "Write-Host 'more'\n").encode()) != scripts.MAIN
