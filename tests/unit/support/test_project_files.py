"""The files people and CI start from say the same: the README's two commands, what
.ci/run runs, what pre-commit runs."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import REPO_ROOT


def readme_commands() -> list[str]:
    """The commands of the README's first code block, comments stripped."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.DOTALL).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]


def ci_commands() -> list[str]:
    """``./dev <command>`` of each line of .ci/run that runs one (`` &``: in the background)."""
    lines = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    return [
        " ".join(line.split()[:2]) + (" &" if line.rstrip().endswith("&") else "")
        for line in lines
        if line.startswith("./dev ")
    ]


def test_the_readme_starts_with_the_demo_and_the_whole_suite():
    assert readme_commands() == ["./dev demo", "./dev test"]


def test_ci_lints_builds_the_docs_runs_the_readme_suite_and_the_oldest_salt():
    assert ci_commands() == [
        "./dev setup-oldest &",  # its environment only, while the others run
        "./dev lint",
        "./dev docs",
        "./dev test",
        "./dev test-oldest",
    ]


def test_pre_commit_runs_dev_lint():
    config = yaml.safe_load((REPO_ROOT / ".pre-commit-config.yaml").read_text())
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    assert [(h["entry"], h["language"], h["pass_filenames"]) for h in hooks] == [
        ("./dev lint", "system", False)
    ]


def test_the_demo_imports_and_refuses_unknown_options():
    from demo import main_job

    with pytest.raises(SystemExit, match="usage: ./dev demo"):
        main_job.main(["--no-such-option"])
