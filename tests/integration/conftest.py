"""Integration layer: a real salt-master and salt-minion on loopback."""

import pytest

from tests.conftest import SALT_TREE, minion_config


@pytest.fixture(scope="package")
def master(salt_factories, master_id):
    factory = salt_factories.salt_master_daemon(
        master_id,
        overrides={
            "interface": "127.0.0.1",
            "file_roots": {"base": [str(SALT_TREE)]},
        },
    )
    with factory.started():
        yield factory


@pytest.fixture(scope="package")
def minion(master, minion_id, powershell):
    overrides = minion_config(powershell)
    overrides.pop("file_client")
    overrides.pop("file_roots")
    factory = master.salt_minion_daemon(minion_id, overrides=overrides)
    with factory.started():
        # Modules come from the master's file_roots, as users deploy them.
        ret = factory.salt_call_cli().run("saltutil.sync_all")
        assert ret.returncode == 0, ret
        assert "modules.iscsi" in ret.data["modules"], ret.data
        yield factory


@pytest.fixture(scope="package")
def salt_cli(master):
    return master.salt_cli(timeout=60)


@pytest.fixture(scope="package")
def salt_call_cli(minion):
    return minion.salt_call_cli(timeout=60)
