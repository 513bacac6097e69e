"""The library reaches minions with saltutil.sync_all, and a re-sync takes effect at once."""

from pathlib import Path

import pytest
from saltfactories.utils import random_string

from tests.conftest import SALT_TREE, minion_config
from tests.support import daemons

LIBRARY_INIT = Path("_utils", "saltext_win_iscsi", "__init__.py")


def test_sync_all_delivers_the_library(minion, local_cli, seeded):
    ret = local_cli.run("iscsi.version", minion_tgt=minion.id)
    assert ret.returncode == 0, ret
    library = Path(ret.data["library"])
    # The minion runs the copy sync_all put into its extension modules, not the checkout.
    assert library.parts[-3:] == ("extmods", "utils", "saltext_win_iscsi"), library
    assert (library / "windows" / "powershell" / "scripts.py").is_file()
    assert not list(library.rglob("*.ps1"))  # sync copies Python only, hence scripts.py
    ret = local_cli.run("iscsi.get_sessions", minion_tgt=minion.id)
    assert ret.returncode == 0 and len(ret.data) == 3, ret


@pytest.fixture
def threaded_minion(master, powershell):
    """A minion that runs jobs in its own process (multiprocessing: False), as the beacon
    does: whatever the library it imported first, sys.modules keeps it."""
    overrides = minion_config(powershell, multiprocessing=False)
    overrides.pop("file_client")
    overrides.pop("file_roots")
    factory = master.salt_minion_daemon(random_string("threaded-"), overrides=overrides)
    with daemons.running(factory):
        yield factory


@pytest.fixture
def overlay_library(master_trees):
    """Put a changed library __init__.py before the extension's own; removed afterwards."""
    path = master_trees.overlay / LIBRARY_INIT
    path.parent.mkdir(parents=True, exist_ok=True)
    yield path
    path.unlink()


def test_a_resynced_library_takes_effect_without_restart(
    threaded_minion, overlay_library, local_cli, seeded
):
    assert local_cli.run("saltutil.sync_all", minion_tgt=threaded_minion.id).returncode == 0
    before = local_cli.run("iscsi.version", minion_tgt=threaded_minion.id)
    assert before.returncode == 0, before
    original = (SALT_TREE / LIBRARY_INIT).read_text()
    assert f'__version__ = "{before.data["version"]}"' in original

    changed = original.replace(before.data["version"], "9.9.9+resync-test")
    overlay_library.write_text(changed)
    assert local_cli.run("saltutil.sync_all", minion_tgt=threaded_minion.id).returncode == 0
    after = local_cli.run("iscsi.version", minion_tgt=threaded_minion.id)
    assert after.data["version"] == "9.9.9+resync-test", after
    # The rest of the re-imported library works with it.
    sessions = local_cli.run("iscsi.get_sessions", minion_tgt=threaded_minion.id)
    assert sessions.returncode == 0 and len(sessions.data) == 3, sessions
