"""A test master's own trees, beside the extension's ``salt/`` tree: a pillar tree whose
top file gives every minion the ``iscsi`` pillar, a site state tree whose top file applies
the ``iscsi`` formula (highstate), and an overlay a test fills with files that win over the
extension's own (file_roots order)."""

from __future__ import annotations

from pathlib import Path

import salt.utils.yaml

from tests.conftest import SALT_TREE
from tests.support.local_client import LocalCli

EVERY_MINION_ISCSI = "base:\n  '*':\n    - iscsi\n"


class Trees:
    def __init__(self, root: Path, pillar: dict | None = None) -> None:
        self.pillar = root / "pillar"
        self.states = root / "states"
        self.overlay = root / "overlay"
        for tree in (self.pillar, self.states, self.overlay):
            tree.mkdir(parents=True)
        (self.states / "top.sls").write_text(EVERY_MINION_ISCSI)
        self.reset_pillar_top()
        self.write_pillar(pillar or {})

    def master_config(self) -> dict:
        """The master's ``file_roots`` and ``pillar_roots``."""
        return {
            "file_roots": {"base": [str(self.overlay), str(SALT_TREE), str(self.states)]},
            "pillar_roots": {"base": [str(self.pillar)]},
        }

    def write_pillar(self, data: dict) -> None:
        """``iscsi.sls``: ``data`` as YAML."""
        text = salt.utils.yaml.safe_dump(data, default_flow_style=False)
        (self.pillar / "iscsi.sls").write_text(text)

    def reset_pillar_top(self) -> None:
        """The pillar's top file as it starts: ``iscsi`` for every minion."""
        (self.pillar / "top.sls").write_text(EVERY_MINION_ISCSI)

    def set_pillar(self, data: dict, cli: LocalCli, minion_id: str) -> None:
        """``write_pillar``, then ``saltutil.refresh_pillar`` on ``minion_id`` (awaited)."""
        self.write_pillar(data)
        ret = cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=minion_id)
        assert ret.returncode == 0, ret
