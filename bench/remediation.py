"""PowerShell processes per remediation run: the ``iscsi.not_persistent`` state the reactor
runs, against a state that calls the execution module once per step (unregister, remove
the leftover persistent logins, list the disks behind the sessions), as it did before.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.common import loader
from tests.support.simhost.model import SimulatedHost
from tests.support.simhost.powershell_standin import install

RULE = "iqn.1991-05.com.contoso:testiscsi-*"
STALE = "iqn.1991-05.com.contoso:testiscsi-offsite"


def _host(root: Path) -> tuple[SimulatedHost, dict]:
    host = SimulatedHost(root / "host.json").reset(sessions=3)  # the seed: 3 persistent
    host.add_persistent_login(STALE, portal="10.0.9.8")  # a target down today
    funcs = loader(
        root,
        **{"iscsi.backend": "windows", "iscsi.powershell": str(install(root / "bin", host.path))},
    )
    return host, funcs


def measure() -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-remediation-") as tmp:
        host, funcs = _host(Path(tmp))
        host.reset_stats()
        outcome = funcs["iscsi.ensure_persistence"](target_node_address=RULE)
        assert not outcome["errors"] and len(outcome["changes"]) == 4, outcome
        ours = host.stats()["processes"]
    with tempfile.TemporaryDirectory(prefix="bench-remediation-") as tmp:
        host, funcs = _host(Path(tmp))
        host.reset_stats()
        report = funcs["iscsi.unregister_session"](target_node_address=RULE)
        funcs["iscsi.remove_persistent_login"](target_node_address=RULE)
        funcs["iscsi.get_sessions"](session_identifier=list(report), disks=True)
        naive = host.stats()["processes"]
    return {"ours_processes": ours, "naive_processes": naive}
