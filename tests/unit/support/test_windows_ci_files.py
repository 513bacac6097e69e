"""What can be checked here of the Windows CI: nothing in it has run on Windows.

The workflow parses and calls only files that exist, the PowerShell of tests/windows parses
cleanly, the Python helpers ask host-actions.ps1 only for actions it has, and tests/windows
imports and skips cleanly off Windows, with its reason.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.support import psparse

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "windows.yml"
WINDOWS_TESTS = REPO_ROOT / "tests" / "windows"
SCRIPTS = sorted(WINDOWS_TESTS.glob("*.ps1"))
ALL_SCRIPTS = SCRIPTS + sorted((REPO_ROOT / "salt" / "_utils").rglob("*.ps1"))
NOT_RUN = "NOT RUN BY US"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def runs(job: dict) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def test_workflow_parses_and_has_both_jobs(workflow):
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert {"push", "pull_request"} <= set(triggers)
    linux, windows = workflow["jobs"]["linux"], workflow["jobs"]["windows"]
    assert "bash .ci/run" in runs(linux)
    assert windows["strategy"]["matrix"]["os"] == ["windows-2022", "windows-2025"]
    assert windows["runs-on"] == "${{ matrix.os }}"
    assert windows["defaults"]["run"]["shell"] == "powershell"
    text = "\n".join(runs(windows))
    assert "requirements-dev.txt" in text and "setup-target.ps1 -Teardown" in text
    assert re.search(r"pytest tests/windows .*--junitxml=", text)
    assert re.search(r"pytest tests/functional .*--junitxml=", text)
    upload = next(s for s in windows["steps"] if str(s.get("uses", "")).startswith("actions/up"))
    assert upload["with"]["path"] == "artifacts/" and upload["if"] == "${{ always() }}"
    functional = next(s for s in windows["steps"] if "tests/functional" in s.get("run", ""))
    assert functional["env"] == {"ISCSI_REAL_HOST": "1"}
    assert windows["env"]["ISCSI_OBSERVATIONS_OUT"].startswith("artifacts/")


def test_every_file_the_workflow_calls_exists(workflow):
    text = "\n".join(runs(workflow["jobs"]["linux"]) + runs(workflow["jobs"]["windows"]))
    called = set(re.findall(r"(?:\.ci|tests)[\\/][\w\\/.-]+|requirements[\w-]*\.txt", text))
    assert {"tests\\windows\\setup-target.ps1", ".ci/run", "requirements-dev.txt"} <= called
    for path in called:
        assert (REPO_ROOT / path.replace("\\", "/")).exists(), path


def test_nobody_is_told_it_ran():
    assert NOT_RUN in WORKFLOW.read_text(encoding="utf-8")
    readme = (WINDOWS_TESTS / "README.md").read_text(encoding="utf-8")
    assert "have not been run by us" in readme and "setup-target.ps1" in readme


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_windows_scripts_parse_cleanly(script):
    assert script.name in {"setup-target.ps1", "host-actions.ps1"}
    assert psparse.errors(script.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda p: p.name)
def test_no_variable_runs_into_a_colon_in_a_string(script):
    """ "$name: text" is a parse error in PowerShell (a drive-qualified name), but not to
    tree-sitter: it must be written "${name}: text"."""
    source = script.read_text(encoding="utf-8")
    bad = []
    for string in psparse.nodes(source, "expandable_string_literal"):
        for variable in (c for c in string.children if c.type == "variable"):
            following = source.encode("utf-8")[variable.end_byte : variable.end_byte + 1]
            if following == b":" and not variable.text.startswith(b"${"):
                bad.append(string.text.decode())
    assert bad == []


def test_helpers_ask_only_for_actions_the_script_has():
    script = (WINDOWS_TESTS / "host-actions.ps1").read_text(encoding="utf-8")
    offered = set(re.findall(r"'(\w+)'", re.search(r"ValidateSet\(([^)]*)\)", script).group(1)))
    handled = set(re.findall(r"^\s+'(\w+)' \{", script, re.MULTILINE))
    assert offered == handled
    python = [
        *WINDOWS_TESTS.glob("*.py"),
        REPO_ROOT / "tests" / "functional" / "modules" / "test_real_host.py",
    ]
    asked = set()
    for path in python:
        asked |= set(re.findall(r"\bact\(\s*\"(\w+)\"", path.read_text(encoding="utf-8")))
    assert asked and asked <= offered, asked - offered


@pytest.mark.parametrize(
    "name",
    sorted(p.stem for p in WINDOWS_TESTS.glob("*.py") if p.stem != "__init__"),
)
def test_windows_modules_import_here(name):
    importlib.import_module(f"tests.windows.{name}")


def run_windows_suite(**env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests/windows", "-q", "-rs", "-p", "no:cacheprovider"],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.skipif(sys.platform == "win32", reason="checks the off-Windows behaviour")
def test_windows_suite_skips_cleanly_here():
    proc = run_windows_suite()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ skipped in .*", summary), summary
    assert "Windows only: the real iSCSI initiator" in proc.stdout
    assert "error" not in summary.lower()
    # In CI a suite that would skip everything fails instead.
    required = run_windows_suite(ISCSI_WINDOWS_REQUIRED="1")
    assert required.returncode != 0
    assert "ISCSI_WINDOWS_REQUIRED=1, but the Windows tests cannot run" in (
        required.stdout + required.stderr
    )
