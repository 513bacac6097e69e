"""End to end: master with the reactor, minion with the beacon, their own simulated host."""

from pathlib import Path

import pytest
import salt.utils.yaml
from saltfactories.utils import random_string

from tests.conftest import SALT_TREE, minion_config
from tests.support.simhost.model import SimulatedHost
from tests.support.simhost.powershell_standin import install

BEACON_INTERVAL = 1
REACTOR = "salt://reactor/iscsi_enforce.sls"


@pytest.fixture(scope="package")
def loop_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("e2e")
    for sub in ("pillar", "states"):
        (root / sub).mkdir()
    (root / "pillar" / "top.sls").write_text("base:\n  '*':\n    - iscsi\n")
    (root / "pillar" / "iscsi.sls").write_text("{}\n")
    return root


@pytest.fixture(scope="package")
def loop_host(loop_dir) -> SimulatedHost:
    return SimulatedHost(loop_dir / "host.json").reset()


@pytest.fixture(scope="package")
def loop_master(salt_factories, loop_dir):
    factory = salt_factories.salt_master_daemon(
        random_string("loop-master-"),
        overrides={
            "interface": "127.0.0.1",
            "file_roots": {"base": [str(SALT_TREE), str(loop_dir / "states")]},
            "pillar_roots": {"base": [str(loop_dir / "pillar")]},
            "reactor": [{"salt/beacon/*/iscsi/registered": [REACTOR]}],
        },
    )
    with factory.started():
        yield factory


@pytest.fixture(scope="package")
def loop_minion(loop_master, loop_dir, loop_host):
    overrides = minion_config(install(loop_dir / "bin", loop_host.path))
    overrides.pop("file_client")
    overrides.pop("file_roots")
    # Salt's default; salt-factories uses 0.05, and a beacon's interval counts
    # process calls (about one a second) times loop_interval.
    overrides["loop_interval"] = 1
    overrides["beacons"] = {
        "iscsi": [
            {"interval": BEACON_INTERVAL},
            {"disable_during_state_run": True},
            {"timeout": 5},
        ]
    }
    factory = loop_master.salt_minion_daemon(random_string("loop-minion-"), overrides=overrides)
    with factory.started():
        ret = factory.salt_call_cli(timeout=60).run("saltutil.sync_all")
        assert ret.returncode == 0, ret
        assert "beacons.iscsi" in ret.data["beacons"], ret.data
        # A module refresh does not rebuild the running minion's beacon loader.
        assert factory.salt_call_cli().run("saltutil.refresh_beacons").returncode == 0
        yield factory


@pytest.fixture(scope="package")
def loop_call(loop_minion):
    return loop_minion.salt_call_cli(timeout=60)


@pytest.fixture(scope="package")
def set_loop_pillar(loop_dir, loop_call):
    def _set(data) -> None:
        text = salt.utils.yaml.safe_dump(data, default_flow_style=False)
        (loop_dir / "pillar" / "iscsi.sls").write_text(text)
        ret = loop_call.run("saltutil.refresh_pillar", "wait=True")
        assert ret.returncode == 0, ret

    return _set
