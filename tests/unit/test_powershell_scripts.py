"""The PowerShell the execution module sends: it parses, it is pinned, it is encoded right."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from tests import psparse

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULE_PATH = REPO_ROOT / "salt" / "_modules" / "iscsi.py"
PINS_PATH = REPO_ROOT / "tests" / "simhost" / "pins.json"


def _load_module() -> ModuleType:
    """salt/_modules/iscsi.py as a plain module, without Salt's loader."""
    spec = importlib.util.spec_from_file_location("saltext_iscsi_under_test", MODULE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


iscsi = _load_module()

SCRIPTS = {"BOOTSTRAP_SCRIPT": iscsi.BOOTSTRAP_SCRIPT, "MAIN_SCRIPT": iscsi.MAIN_SCRIPT}


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
        iscsi.MAIN_SCRIPT.rstrip().rsplit("}", 1)[0] + "}\n" + "function Broken {\n",
        iscsi.BOOTSTRAP_SCRIPT.replace("while ($null", "while (($null"),
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
        "protocol": iscsi.PROTOCOL_VERSION,
        "bootstrap_sha256": hashlib.sha256(iscsi.BOOTSTRAP_SCRIPT.encode("utf-8")).hexdigest(),
        "main_sha256": hashlib.sha256(iscsi.MAIN_SCRIPT.encode("utf-8")).hexdigest(),
    }
    assert pins == actual, (
        "salt/_modules/iscsi.py's PowerShell scripts or PROTOCOL_VERSION changed. Mirror the "
        "change in the simulated host (tests/simhost/model.py), then update "
        f"tests/simhost/pins.json to {json.dumps(actual, indent=2)}"
    )


def test_encoded_command_is_the_bootstrap():
    encoded = iscsi._encode_powershell_command(iscsi.BOOTSTRAP_SCRIPT)
    assert encoded.isascii()
    assert base64.b64decode(encoded, validate=True).decode("utf-16-le") == iscsi.BOOTSTRAP_SCRIPT


def test_process_channel_command_line(monkeypatch):
    """What ProcessChannel really starts: the fixed arguments and the encoded bootstrap."""
    started = []

    class FakePopen:
        def __init__(self, command, **_kwargs):
            started.append(command)
            raise FileNotFoundError(command[0])

    monkeypatch.setattr(iscsi.subprocess, "Popen", FakePopen)
    with pytest.raises(iscsi.CommandExecutionError):
        iscsi.ProcessChannel("powershell.exe", timeout=5)
    [command] = started
    assert command[:-1] == ["powershell.exe", *iscsi.POWERSHELL_ARGS]
    assert iscsi.POWERSHELL_ARGS[-1] == "-EncodedCommand"
    decoded = base64.b64decode(command[-1], validate=True).decode("utf-16-le")
    assert decoded == iscsi.BOOTSTRAP_SCRIPT
