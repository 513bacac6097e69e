"""Integration layer: a real salt-master and salt-minion on loopback."""

from pathlib import Path

import pytest

from tests.conftest import master_config, minion_config
from tests.support import daemons
from tests.support.local_client import LocalCli, sync_all
from tests.support.trees import Trees


@pytest.fixture(scope="package")
def master_trees(tmp_path_factory) -> Trees:
    return Trees(tmp_path_factory.mktemp("master-trees"))


@pytest.fixture(scope="package")
def master(salt_factories, master_id, master_trees):
    factory = salt_factories.salt_master_daemon(
        master_id,
        overrides={**master_config(), **master_trees.master_config(), "log_level_logfile": "all"},
    )
    with daemons.running(factory):
        yield factory


CHAP_SECRET = "Chap-S3cret-42"  # 14 bytes: what the sdb store below holds


@pytest.fixture(scope="package")
def secrets_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sdb") / "secrets.yaml"
    path.write_text(f"chap_secret: {CHAP_SECRET}\n")
    return path


@pytest.fixture(scope="package")
def minion(master, minion_id, powershell, secrets_file):
    overrides = minion_config(powershell)
    overrides.pop("file_client")
    overrides.pop("file_roots")
    # Secrets come from an sdb store on the minion, never from the command line.
    overrides["isecrets"] = {"driver": "yaml", "files": [str(secrets_file)]}
    # The secrets test reads every log line, at the most verbose level.
    overrides["log_level_logfile"] = "all"
    factory = master.salt_minion_daemon(minion_id, overrides=overrides)
    with daemons.running(factory):
        # Modules come from the master's file_roots, as users deploy them.
        synced = sync_all(master.config, factory.id)
        assert "modules.iscsi" in synced["modules"], synced
        yield factory


@pytest.fixture(scope="package")
def salt_cli(master):
    return master.salt_cli(timeout=60)


@pytest.fixture(scope="package")
def salt_call_cli(minion):
    return minion.salt_call_cli(timeout=60)


@pytest.fixture(scope="package")
def local_cli(master) -> LocalCli:
    """``salt`` without its process (tests/support/local_client.py)."""
    return LocalCli(master.config, timeout=60)


@pytest.fixture(scope="package")
def minion_run(local_cli, minion) -> LocalCli:
    """Jobs on the package's minion (``salt <minion> ...``), run by its daemon."""
    return local_cli.bound(minion.id)


@pytest.fixture
def set_pillar(master_trees, local_cli, minion):
    """Write every minion's iscsi pillar and refresh the package's minion; {} after."""

    def _set(data: dict) -> None:
        master_trees.set_pillar(data, local_cli, minion.id)

    yield _set
    _set({})
