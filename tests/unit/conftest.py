"""Unit layer: the library's pure code, imported directly; loader modules by file path."""

import importlib.util

from tests.conftest import SALT_TREE


def load(relative: str):
    """A loader module (salt/_beacons/...) as a plain module, without Salt's loader."""
    path = SALT_TREE / relative
    spec = importlib.util.spec_from_file_location(f"unit_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
