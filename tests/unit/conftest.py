"""Unit layer: the module's pure helpers, loaded from its file without Salt's loader."""

import importlib.util

import pytest

from tests.conftest import SALT_TREE


def load(relative: str):
    path = SALT_TREE / relative
    spec = importlib.util.spec_from_file_location(f"unit_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def iscsi_mod():
    return load("_modules/iscsi.py")
