"""``iscsi.rescan`` on Linux: ``iscsiadm -m session -R``, argv items only; no session
(iscsiadm's exit 21) is no error."""

from __future__ import annotations

import json
import sys

import pytest

from saltext_win_iscsi.openiscsi.backend import OpenIscsiBackend
from saltext_win_iscsi.openiscsi.iscsiadm import Iscsiadm, IscsiadmError


def recorder(tmp_path, code: int):
    """An iscsiadm that writes its argv to a file and exits with ``code``."""
    log = tmp_path / "argv.json"
    script = tmp_path / "iscsiadm"
    script.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(log)!r}, 'w').write(json.dumps(sys.argv[1:]))\nsys.exit({code})\n"
    )
    script.chmod(0o755)
    return str(script), log


@pytest.mark.parametrize("code", [0, 21])
def test_rescan_runs_iscsiadm_session_rescan(tmp_path, code):
    executable, log = recorder(tmp_path, code)
    backend = OpenIscsiBackend(Iscsiadm(executable=executable), ())
    assert backend.rescan() == {"status": "rescanned"}
    assert json.loads(log.read_text()) == ["-m", "session", "-R"]


def test_a_failed_rescan_names_the_command(tmp_path):
    executable, _ = recorder(tmp_path, 4)
    with pytest.raises(IscsiadmError, match="iscsiadm -m session -R"):
        OpenIscsiBackend(Iscsiadm(executable=executable), ()).rescan()
