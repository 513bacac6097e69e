"""The PowerShell the execution module sends: it parses, it is pinned, it is encoded right."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from saltext_win_iscsi.errors import ChannelError
from saltext_win_iscsi.windows import protocol, wire
from saltext_win_iscsi.windows.channels import process
from saltext_win_iscsi.windows.powershell import generate, scripts
from tests.support import psparse

REPO_ROOT = Path(__file__).resolve().parents[3]
PINS_PATH = REPO_ROOT / "tests" / "support" / "simhost" / "pins.json"

SCRIPTS = {"BOOTSTRAP": scripts.BOOTSTRAP, "MAIN": scripts.MAIN}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_script_parses_cleanly(name):
    problems = psparse.errors(SCRIPTS[name])
    assert problems == [], f"{name} does not parse cleanly: {problems}"


@pytest.mark.parametrize(
    "broken",
    [
        "$a = (1 + ",
        "if ($x) { $y = 1",
        "'unterminated",
        scripts.MAIN.rstrip().rsplit("}", 1)[0] + "}\n" + "function Broken {\n",
        scripts.BOOTSTRAP.replace("while ($null", "while (($null"),
    ],
    ids=["dangling-operator", "missing-brace", "open-string", "main-open-function", "bootstrap"],
)
def test_parse_check_can_fail(broken):
    """Negative control: a broken script is reported, so a clean result means something."""
    assert psparse.errors(broken), f"expected parse errors in {broken[-60:]!r}"


def test_shape_check_sees_pasted_values():
    """Control for the shape comparison: a value pasted into source changes the tree."""
    template = "Unregister-IscsiSession -SessionIdentifier '{}'\n"
    clean = psparse.shape(template.format("fffffa800d008430-4000013700000001"))
    assert psparse.shape(template.format("another-id")) == clean
    assert psparse.shape(template.format("x'; Remove-Item C:\\ -Recurse; '")) != clean


def test_pins_match_the_module():
    pins = json.loads(PINS_PATH.read_text())
    actual = {
        "protocol": wire.PROTOCOL_VERSION,
        "bootstrap_sha256": hashlib.sha256(scripts.BOOTSTRAP.encode("utf-8")).hexdigest(),
        "main_sha256": hashlib.sha256(scripts.MAIN.encode("utf-8")).hexdigest(),
    }
    assert pins == actual, (
        "The PowerShell scripts (salt/_utils/saltext_win_iscsi/windows/powershell/*.ps1) or "
        "PROTOCOL_VERSION changed. Mirror the change in the simulated host "
        "(tests/support/simhost/model.py), then update "
        f"tests/support/simhost/pins.json to {json.dumps(actual, indent=2)}"
    )


def test_encoded_command_is_the_bootstrap():
    encoded = protocol.encode_powershell_command(scripts.BOOTSTRAP)
    assert encoded.isascii()
    assert base64.b64decode(encoded, validate=True).decode("utf-16-le") == scripts.BOOTSTRAP


def test_process_channel_command_line(monkeypatch):
    """What ProcessChannel really starts: the fixed arguments and the encoded bootstrap."""
    started = []

    class FakePopen:
        def __init__(self, command, **_kwargs):
            started.append(command)
            raise FileNotFoundError(command[0])

    monkeypatch.setattr(process.subprocess, "Popen", FakePopen)
    with pytest.raises(ChannelError, match="PowerShell not found"):
        process.ProcessChannel("powershell.exe", timeout=5)
    [command] = started
    assert command[:-1] == ["powershell.exe", *wire.POWERSHELL_ARGS]
    assert wire.POWERSHELL_ARGS[-1] == "-EncodedCommand"
    decoded = base64.b64decode(command[-1], validate=True).decode("utf-16-le")
    assert decoded == scripts.BOOTSTRAP


def test_generated_scripts_module_is_up_to_date():
    """scripts.py is what file_roots minions run: it must hold the .ps1 files' text."""
    assert generate.TARGET.read_text(encoding="utf-8") == generate.render(), (
        "salt/_utils/saltext_win_iscsi/windows/powershell/scripts.py is stale: run ./dev scripts"
    )
    for name, filename in generate.SOURCES.items():
        source = (generate.HERE / filename).read_text(encoding="utf-8")
        assert getattr(scripts, name) == source


def test_stale_check_can_fail(tmp_path):
    """Control: a changed .ps1 gives a different scripts.py."""
    for filename in generate.SOURCES.values():
        text = (generate.HERE / filename).read_text(encoding="utf-8")
        (tmp_path / filename).write_text(text, encoding="utf-8")
    clean = generate.render(tmp_path)
    (tmp_path / "main.ps1").write_text("# changed\n", encoding="utf-8")
    assert generate.render(tmp_path) != clean


# --- What the review against Windows sources asked of the script (issue: fidelity) ---------


def _cmdlets(script: str) -> list[tuple[str, list[str], str]]:
    """Commands that are cmdlets or CDXML functions, not the script's own functions."""
    own = psparse.function_names(script)
    return [
        c
        for c in psparse.commands(script)
        if "-" in c[0] and not c[0].startswith("$") and c[0].lower() not in own
    ]


def test_every_cmdlet_call_stops_on_error():
    """CDXML cmdlets are script-module functions: they see $ErrorActionPreference only from
    global scope, so each call says -ErrorAction Stop itself."""
    calls = _cmdlets(scripts.MAIN)
    assert {name for name, _, _ in calls} >= {
        "Get-IscsiSession",
        "Unregister-IscsiSession",
        "Invoke-CimMethod",
        "Get-CimInstance",
        "Import-Module",
    }
    missing = [text for _, params, text in calls if "-ErrorAction Stop" not in params]
    assert missing == []


def test_error_action_check_can_fail():
    script = "function Own-Thing { }\nGet-IscsiSession\nOwn-Thing\nGet-Disk -ErrorAction Stop\n"
    assert [t for _, p, t in _cmdlets(script) if "-ErrorAction Stop" not in p] == [
        "Get-IscsiSession"
    ]


def test_no_secret_is_a_cmdlet_parameter():
    """Module logging (event 4103) records cmdlet parameter values: CHAP secrets go in a CIM
    method's argument hashtable instead."""
    for _, params, text in psparse.commands(scripts.MAIN):
        assert not any("secret" in p.lower().split(" ")[0] for p in params), text
    assert "@{ InputObject = $session; MethodName = 'Register'; Arguments = $arguments }" in (
        scripts.MAIN
    )


def test_iscsicli_gets_no_stdin_and_a_full_path():
    """iscsicli reads commands from stdin when its arguments are incomplete: nothing may
    reach it from the protocol's stdin."""
    pipelines = [n.text.decode() for n in psparse.nodes(scripts.MAIN, "pipeline")]
    calls = [p for p in pipelines if "& $iscsicli" in p]
    assert calls, "iscsicli is not called"
    assert any(p.startswith("$null | & $iscsicli") for p in calls), calls
    assert "$iscsicli = $env:SystemRoot + '\\System32\\iscsicli.exe'" in scripts.MAIN


def test_the_main_script_loads_the_modules_and_checks_the_edition_first():
    main = scripts.MAIN
    switch = main.index("switch ([string]$request.op)")
    assert main.index("Import-Required @('iSCSI', 'CimCmdlets')") < switch
    assert main.index("$PSVersionTable.PSEdition -eq 'Core'") < switch


def test_language_mode_is_checked_before_anything_it_forbids():
    for script in (scripts.BOOTSTRAP, scripts.MAIN):
        check = script.index("$ExecutionContext.SessionState.LanguageMode -ne 'FullLanguage'")
        for forbidden in ("[Console]", "[Convert]", "[scriptblock]", "New-Object"):
            if forbidden in script:
                assert check < script.index(forbidden), forbidden


def test_errors_are_thrown_as_error_records():
    """`throw <exception>` makes an OperationStopped record whose id is the message; the
    script throws ErrorRecords with ids of its own (or rethrows)."""
    throws = [
        n.parent.text.decode()
        for n in psparse.nodes(scripts.MAIN, "throw")
        if n.parent.type == "flow_control_statement"
    ]
    assert throws
    bad = [t for t in throws if t.strip() != "throw" and "(New-ErrorRecord " not in t]
    assert bad == []
    assert "New-Object" not in scripts.MAIN


def test_plain_name_pattern_allows_hba_and_ipv6_zone_names():
    import re

    pattern = re.search(r"\$PlainName = '([^']*)'", scripts.MAIN).group(1)
    # .NET and Python agree on this subset: character class, \z anchor (Python: \Z).
    plain = re.compile(pattern.replace(r"\z", r"\Z"))
    for ok in (
        "ROOT\\ISCSIPRT\\0000_0",
        "PCI\\VEN_8086&DEV_10FB\\3&1&0_0",
        "fe80::1%12",
        "[fe80::1]",
    ):
        assert plain.match(ok), ok
    for bad in ("a b", 'a"b', "a'b", "x\n", "", "a;b"):
        assert not plain.match(bad), bad
