"""Unused code under ``salt/`` (vulture), for ``./dev lint``.

Salt's loader calls the loader modules' public functions and dunders by name, so in
``salt/_modules``, ``_states``, ``_beacons`` and ``_runners`` those are used by definition;
everything else vulture finds unused is reported, and the exit code is 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import tomllib
import vulture

ROOT = Path(__file__).resolve().parents[1] / "salt"
LOADER_DIRS = {"_modules", "_states", "_beacons", "_runners"}
GENERATED = ROOT / "_utils" / "saltext_win_iscsi" / "windows" / "powershell" / "scripts.py"


def _entry_points() -> set[str]:
    """The functions pyproject.toml names as entry points (Salt's loader calls them)."""
    project = tomllib.loads((ROOT.parent / "pyproject.toml").read_text())["project"]
    return {
        target.rpartition(":")[2]
        for group in project.get("entry-points", {}).values()
        for target in group.values()
    }


def _called_by_salt(item: vulture.core.Item, entry_points: set[str]) -> bool:
    in_loader = Path(item.filename).resolve().relative_to(ROOT).parts[0] in LOADER_DIRS
    public = item.typ == "function" and not item.name.startswith("_")
    dunder = item.name.startswith("__") and item.name.endswith("__")
    return (in_loader and (public or dunder)) or item.name in entry_points


def main() -> int:
    finder = vulture.Vulture()
    finder.scavenge([str(ROOT)], exclude=[str(GENERATED)])
    entry_points = _entry_points()
    found = [i for i in finder.get_unused_code() if not _called_by_salt(i, entry_points)]
    for item in found:
        print(item.get_report())
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
