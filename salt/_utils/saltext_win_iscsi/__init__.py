"""saltext_win_iscsi: the plain-Python library behind the Salt extension's ``iscsi`` modules.

No Salt dunders live here: the loader modules (``salt/_modules/iscsi.py``, ``_states``,
``_beacons``, ``_runners``) read configuration and pillar and hand values and callables in.
file_roots users get this package through ``saltutil.sync_all`` (it lands in the minion's
``extmods/utils``); the wheel installs it as a regular package.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
from pathlib import Path
from types import ModuleType

__version__ = "0.2.0"

PACKAGE = Path(__file__).resolve().parent
LOADER_KINDS = ("modules", "states", "beacons", "runners")


def loader_dirs() -> dict[str, list[str]]:
    """The wheel's ``salt.loader`` entry point: loader kind -> folders holding its modules."""
    return {kind: [str(PACKAGE / kind)] for kind in LOADER_KINDS if (PACKAGE / kind).is_dir()}


def _fingerprint(directory: Path) -> tuple:
    """Names, sizes and modification times of the package's Python files."""
    return tuple(
        (str(path.relative_to(directory)), stat.st_size, stat.st_mtime_ns)
        for path in sorted(directory.rglob("*.py"))
        for stat in [path.stat()]
    )


_LOADED_FINGERPRINT = _fingerprint(PACKAGE)


def current() -> ModuleType:
    """This library as it is on disk now, re-imported if it changed since it was imported.

    Salt's loader re-imports its own modules after ``saltutil.sync_*`` but leaves plain
    packages in ``sys.modules``, so a running minion (and every job forked from it) would
    keep using the library it first imported. The loader modules call this when they load.
    """
    package = sys.modules[__name__]
    spec = importlib.machinery.PathFinder.find_spec(__name__, sys.path)
    if spec is None or not spec.submodule_search_locations:
        return package  # only the loaded copy exists (e.g. files removed): keep it
    on_disk = Path(next(iter(spec.submodule_search_locations))).resolve()
    if on_disk == PACKAGE and _fingerprint(on_disk) == _LOADED_FINGERPRINT:
        return package
    for name in [n for n in sys.modules if n == __name__ or n.startswith(__name__ + ".")]:
        del sys.modules[name]
    importlib.invalidate_caches()
    return importlib.import_module(__name__)
