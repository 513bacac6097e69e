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
