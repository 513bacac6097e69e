"""Functional layer: Salt's real loaders on minion opts, no daemons."""

import pytest
from saltfactories.utils.functional import Loaders

from tests.conftest import minion_config


@pytest.fixture(scope="package")
def minion_opts(salt_factories, minion_id, powershell):
    factory = salt_factories.salt_minion_daemon(minion_id, overrides=minion_config(powershell))
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
