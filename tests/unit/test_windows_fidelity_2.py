"""What the second review against Windows sources asked of the scripts, the channels and
the docs (issue 23), where a unit test can hold it."""

from __future__ import annotations

import importlib
import re

from saltext_win_iscsi.windows.powershell import scripts
from tests.conftest import REPO_ROOT

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
