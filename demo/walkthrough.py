"""``./dev demo walkthrough``: the iscsi execution module alone, on a simulated Windows host.

Runs the real ``salt-call`` with the modules synced from ``salt/`` against the simulated
Microsoft iSCSI initiator from ``tests/support/simhost`` (no Windows needed): the three sessions of
Microsoft's Unregister-IscsiSession example, one of which is made non-persistent.
"""

from __future__ import annotations

import getpass
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.simhost.model import SimulatedHost
from tests.support.simhost.powershell_standin import install

REPO = Path(__file__).resolve().parents[1]

SALT_CALL = Path(sys.executable).with_name("salt-call")


def step(title: str, *args: str, config_dir: Path) -> None:
    print(f"\n\033[1m### {title}\033[0m\n$ salt-call {' '.join(args)}", flush=True)
    subprocess.run(
        [str(SALT_CALL), "--local", "-c", str(config_dir), "--log-level=quiet", *args],
        check=True,
    )


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="iscsi-demo-"))
    try:
        host = SimulatedHost(work / "host.json").reset(sessions=3)
        powershell = install(work / "bin", host.path)
        config_dir = work / "etc"
        config_dir.mkdir()
        (config_dir / "minion").write_text(
            f"id: demo-minion\nuser: {getpass.getuser()}\nroot_dir: {work / 'root'}\n"
            f"file_client: local\nfile_roots:\n  base:\n    - {REPO / 'salt'}\n"
            f"iscsi.backend: windows\niscsi.powershell: {powershell}\n"
        )
        print(
            f"Simulated Windows host: {host.path} (edit it, or drive it with tests/support/simhost/model.py)"
        )
        step(
            "Sync the extension's modules and library from salt/ (as from a master's file_roots)",
            "saltutil.sync_all",
            config_dir=config_dir,
        )
        step(
            "Get-IscsiSession: the seed's three persistent sessions",
            "iscsi.get_sessions",
            "--out=yaml",
            config_dir=config_dir,
        )
        first = host.sessions()[0]["SessionIdentifier"]
        step(
            "What would Unregister-IscsiSession change? (test=True)",
            "iscsi.unregister_session",
            f"session_identifier={first}",
            "test=True",
            config_dir=config_dir,
        )
        step(
            "Unregister-IscsiSession -SessionIdentifier " + first,
            "iscsi.unregister_session",
            f"session_identifier={first}",
            config_dir=config_dir,
        )
        step(
            "Run it again: nothing left to do",
            "iscsi.unregister_session",
            f"session_identifier={first}",
            config_dir=config_dir,
        )
        step(
            "Sessions still persistent",
            "iscsi.get_sessions",
            "is_persistent=True",
            "--out=yaml",
            config_dir=config_dir,
        )
        stats = host.stats()
        print(
            f"\nThe host saw {stats['processes']} PowerShell processes for "
            f"{sum(stats['requests'].values())} requests: {stats['requests']}"
        )
        print(f"Persistent now: {sorted(host.persistent_ids())}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
