"""Facts Python and PowerShell (and the simulated host) must agree on, held together."""

import re

from saltext_win_iscsi import model as vocabulary
from saltext_win_iscsi.windows import wire
from saltext_win_iscsi.windows.powershell import scripts
from tests.support.simhost import model as simulated

# What the script selects beyond the shared vocabulary (model.py), as Windows names it.
# How a persistent login reconnects (its LoginOptions); not part of its identity.
LOGIN_OPTION_FIELDS = ("IsMultipathEnabled", "AuthenticationType", "ChapUsername")
PORTAL_FIELDS = (
    "TargetPortalAddress",
    "TargetPortalPortNumber",
    "InitiatorPortalAddress",
    "InitiatorInstanceName",
    "IsDataDigest",
    "IsHeaderDigest",
)
TARGET_FIELDS = ("NodeAddress", "IsConnected")
DISK_FIELDS = (
    "Number",
    "FriendlyName",
    "SerialNumber",
    "Size",
    "IsBoot",
    "IsSystem",
    "IsClustered",
    "IsOffline",
)


def _ps_array(script: str, name: str) -> tuple[str, ...]:
    """The quoted items of ``$Name = @( ... )`` in a script."""
    match = re.search(rf"\${name} = @\((.*?)\)", script, re.DOTALL)
    assert match, f"${name} not found"
    return tuple(re.findall(r"'([^']*)'", match.group(1)))


def test_field_lists_match_the_script():
    assert _ps_array(scripts.MAIN, "SessionFields") == vocabulary.SESSION_FIELDS
    assert _ps_array(scripts.MAIN, "ConnectionFields") == vocabulary.CONNECTION_FIELDS
    assert _ps_array(scripts.MAIN, "PortalFields") == PORTAL_FIELDS
    assert _ps_array(scripts.MAIN, "TargetFields") == TARGET_FIELDS
    assert _ps_array(scripts.MAIN, "DiskFields") == DISK_FIELDS


def test_protocol_version_and_marker_match_the_scripts():
    versions = set(re.findall(r"\bv = (\d+)", scripts.MAIN))
    assert versions == {str(wire.PROTOCOL_VERSION)}
    assert f"protocol {wire.PROTOCOL_VERSION}." in scripts.MAIN
    assert f"'{wire.RESPONSE_MARKER}'" in scripts.BOOTSTRAP


def test_login_fields_match_the_script():
    body = scripts.MAIN[scripts.MAIN.index("function Get-PersistentLoginData") :]
    table = body[body.index("[ordered]@{") : body.index("}", body.index("[ordered]@{"))]
    keys = tuple(re.findall(r"^\s+(\w+)\s+=", table, re.MULTILINE))
    assert keys == vocabulary.LOGIN_FIELDS + LOGIN_OPTION_FIELDS


def test_simulated_host_reports_the_same_fields():
    assert simulated.SESSION_FIELDS == vocabulary.SESSION_FIELDS
    assert simulated.LOGIN_FIELDS == vocabulary.LOGIN_FIELDS
