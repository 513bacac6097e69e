"""What the second review against Windows sources asked of the scripts, the channels and
the docs (issue 23), where a unit test can hold it."""

from __future__ import annotations

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
