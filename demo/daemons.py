"""Real Salt daemons for the demo, started by pytest-salt-factories outside pytest.

The same factories the integration tests use (``tests/integration``): a salt-master with
the reactor and the runner synced, minions managing simulated Windows hosts (and, where
the initiator VM can run, a Linux minion), the master's event bus recorded by the
factories' event listener.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import salt.utils.yaml
from pytestshellutils.utils import ports
from saltfactories.manager import FactoriesManager
from saltfactories.plugins.event_listener import EventListener

from tests.conftest import REPO_ROOT, SALT_TREE, minion_config
from tests.support import waiting
from tests.support.simhost.model import SimulatedHost
from tests.support.simhost.powershell_standin import install

REACTOR = "salt://reactor/iscsi_enforce.sls"
START_TIMEOUT = 120  # seconds: a busy 2-core machine is no failure


class Fleet:
    """One master, its minions, their pillar and the master's event bus."""

    def __init__(self, work: Path, manager: FactoriesManager, listener: EventListener) -> None:
        self.work, self.manager, self.listener = work, manager, listener
        self.pillar = work / "pillar"
        self.pillar.mkdir()
        (self.pillar / "top.sls").write_text("base:\n  '*':\n    - iscsi\n")
        self.set_pillar({})
        states = work / "states"
        states.mkdir()
        (states / "top.sls").write_text("base:\n  '*':\n    - iscsi\n")
        self.master = manager.salt_master_daemon(
            "demo-master",
            overrides={
                "interface": "127.0.0.1",
                "file_roots": {"base": [str(SALT_TREE), str(states)]},
                "pillar_roots": {"base": [str(self.pillar)]},
                "reactor": [{"salt/beacon/*/iscsi/violation": [REACTOR]}],
                "timeout": 10,
            },
            start_timeout=START_TIMEOUT,
        )
        self.minions: dict = {}

    def set_pillar(self, data: dict) -> None:
        """Every minion's pillar ``iscsi.sls`` (refresh it with ``refresh_pillar``)."""
        text = salt.utils.yaml.safe_dump(data, default_flow_style=False)
        (self.pillar / "iscsi.sls").write_text(text)

    def windows_minion(self, name: str) -> tuple[object, SimulatedHost]:
        """A minion whose PowerShell is the simulated host's stand-in (not started)."""
        host = SimulatedHost(self.work / f"{name}.json").reset()
        overrides = minion_config(install(self.work / f"bin-{name}", host.path))
        overrides.pop("file_client")
        overrides.pop("file_roots")
        # Salt's default; salt-factories uses 0.05, and a beacon's interval counts
        # process calls (about one a second) times loop_interval.
        overrides["loop_interval"] = 1
        self.minions[name] = self.master.salt_minion_daemon(
            name, overrides=overrides, start_timeout=START_TIMEOUT
        )
        return self.minions[name], host

    def start_minion(self, minion) -> None:
        """Start it, sync the extension from the master's file_roots, load its beacon."""
        minion.start()
        self.salt("saltutil.sync_all", minion=minion.id)
        # A running minion builds its beacons at start: load the synced one.
        self.salt("saltutil.refresh_beacons", minion=minion.id)

    def salt(self, *args: str, minion: str = "*", timeout: int = 120):
        """``salt <minion> <args>`` through the factories' CLI: its parsed return."""
        ret = self.master.salt_cli(timeout=timeout).run(*args, minion_tgt=minion)
        if ret.returncode not in (0, 1) or ret.data is None:
            raise RuntimeError(f"salt {minion} {' '.join(args)} failed: {ret}")
        return ret.data

    def salt_run(self, *args: str, timeout: int = 120):
        ret = self.master.salt_run_cli(timeout=timeout).run(*args)
        if ret.data is None:
            raise RuntimeError(f"salt-run {' '.join(args)} failed: {ret}")
        return ret.data

    def events(self, tag: str, since: float) -> list:
        """Events the master's bus saw since ``since`` (time.time()), oldest first."""
        found = self.listener.get_events([(self.master.id, tag)], after_time=since)
        return sorted(found, key=lambda e: e.stamp)


@contextlib.contextmanager
def fleet() -> Iterator[Fleet]:
    """A started master (runner synced) in a folder of its own, removed afterwards."""
    logging.getLogger("saltfactories").setLevel(logging.ERROR)  # it logs itself as a warning
    work = Path(tempfile.mkdtemp(prefix="iscsi-demo-"))
    listener = EventListener()
    listener.start()
    try:
        manager = FactoriesManager(
            root_dir=work / "factories",
            code_dir=REPO_ROOT,
            # No log server: the daemons' own log files hold everything.
            log_server_host="127.0.0.1",
            log_server_port=ports.get_unused_localhost_port(),
            log_server_level="critical",
            start_timeout=START_TIMEOUT,
            slow_stop=False,  # nothing to flush (no coverage): stop them at once
            event_listener=listener,
        )
        demo = Fleet(work, manager, listener)
        with demo.master.started():
            for sync in ("saltutil.sync_utils", "saltutil.sync_runners"):
                demo.salt_run(sync)
            try:
                yield demo
            finally:
                with concurrent.futures.ThreadPoolExecutor(len(demo.minions) or 1) as pool:
                    list(pool.map(lambda minion: minion.terminate(), demo.minions.values()))
    finally:
        listener.stop()
        shutil.rmtree(work, ignore_errors=True)


def wait_for(predicate, timeout: float = 60, step: float = 0.05) -> float:
    """Seconds until ``predicate()`` held (a condition, never a fixed sleep)."""
    return waiting.wait_for(predicate, timeout, step)
