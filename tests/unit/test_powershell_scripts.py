"""The PowerShell the execution module sends: it parses, it is pinned, it is encoded right."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from saltext_win_iscsi import protocol
from saltext_win_iscsi.channels import process
from saltext_win_iscsi.errors import ChannelError
from saltext_win_iscsi.powershell import generate, scripts
from tests import psparse

REPO_ROOT = Path(__file__).resolve().parents[2]
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
        "protocol": protocol.PROTOCOL_VERSION,
        "bootstrap_sha256": hashlib.sha256(scripts.BOOTSTRAP.encode("utf-8")).hexdigest(),
        "main_sha256": hashlib.sha256(scripts.MAIN.encode("utf-8")).hexdigest(),
    }
    assert pins == actual, (
        "The PowerShell scripts (salt/_utils/saltext_win_iscsi/powershell/*.ps1) or "
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
    assert command[:-1] == ["powershell.exe", *protocol.POWERSHELL_ARGS]
    assert protocol.POWERSHELL_ARGS[-1] == "-EncodedCommand"
    decoded = base64.b64decode(command[-1], validate=True).decode("utf-16-le")
    assert decoded == scripts.BOOTSTRAP


def test_generated_scripts_module_is_up_to_date():
    """scripts.py is what file_roots minions run: it must hold the .ps1 files' text."""
    assert generate.TARGET.read_text(encoding="utf-8") == generate.render(), (
        "salt/_utils/saltext_win_iscsi/powershell/scripts.py is stale: run ./dev scripts"
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
