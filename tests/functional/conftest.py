"""Functional layer: Salt's real loaders on minion opts, no daemons.

``ISCSI_REAL_HOST=1`` (on Windows, with a test target from tests/windows/setup-target.ps1):
the module runs with ``iscsi.powershell`` unset, so against the real powershell.exe, and only
tests marked ``real_host`` run; every test built on the simulated host is skipped. Without
it, the ``real_host`` tests are skipped.
"""

import copy
import os
import sys
from pathlib import Path

import pytest
import salt.utils.yaml
from saltfactories.utils.functional import Loaders

from saltext_win_iscsi.backend import backend_for
from saltext_win_iscsi.config import Settings
from tests.conftest import minion_config

REAL_HOST = os.environ.get("ISCSI_REAL_HOST") == "1"
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE not in Path(str(item.path)).parents:
            continue
        real = item.get_closest_marker("real_host") is not None
        if REAL_HOST and not real:
            item.add_marker(pytest.mark.skip(reason="simulated-host test (ISCSI_REAL_HOST=1)"))
        elif real and not (REAL_HOST and sys.platform == "win32"):
            reason = "real Windows host only: on Windows with ISCSI_REAL_HOST=1"
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="package")
def minion_opts(salt_factories, minion_id, powershell):
    overrides = minion_config(powershell)
    if REAL_HOST:
        del overrides["iscsi.powershell"]  # the real Windows PowerShell 5.1
        del overrides["iscsi.backend"]  # what the host has
        overrides["iscsi.timeout"] = 120
    factory = salt_factories.salt_minion_daemon(minion_id, overrides=overrides)
    return factory.config.copy()


@pytest.fixture(scope="package")
def loaders(minion_opts):
    return Loaders(minion_opts)


@pytest.fixture(autouse=True)
def reset_loaders_state(loaders):
    try:
        yield
    finally:
        loaders.reset_state()


@pytest.fixture
def iscsi(loaders):
    return loaders.modules.iscsi


@pytest.fixture
def checker(loaders):
    """The beacon's check of this minion's host, as ``iscsi.beacon_events`` builds it."""
    settings = Settings.read(lambda key, default=None: loaders.opts.get(key, default))
    check = backend_for(settings).checker()
    yield check
    check.close()


@pytest.fixture
def minion_setting(loaders):
    """Change minion config keys for one test: minion_setting({"iscsi.timeout": 1})."""
    saved = {}

    def _set(settings: dict) -> None:
        for key, value in settings.items():
            saved.setdefault(key, loaders.opts.get(key))
            loaders.opts[key] = value

    yield _set
    for key, value in saved.items():
        if value is None:
            loaders.opts.pop(key, None)
        else:
            loaders.opts[key] = value


@pytest.fixture
def with_pillar(minion_opts, tmp_path):
    """Loaders on a minion whose pillar (compiled by Salt from a pillar tree) is ``data``."""
    made = []

    def _make(data: dict) -> Loaders:
        tree = tmp_path / f"pillar-{len(made)}"
        tree.mkdir()
        (tree / "top.sls").write_text("base:\n  '*':\n    - iscsi\n")
        (tree / "iscsi.sls").write_text(salt.utils.yaml.safe_dump(data))
        opts = copy.deepcopy(minion_opts)
        opts["pillar_roots"] = {"base": [str(tree)]}
        made.append(Loaders(opts))
        return made[-1]

    yield _make
    for loaders in made:
        monitor = loaders.context.get("iscsi.monitor")
        if monitor is not None:
            monitor.close()
        loaders.reset_state()
