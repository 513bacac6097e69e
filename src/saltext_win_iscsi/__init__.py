"""Salt extension: keep Windows iSCSI sessions from reconnecting at boot.

Installed with pip (or salt-pip), this package hands Salt's loader the same module files
that file_roots users sync from the repository's ``salt/_modules``, ``salt/_states`` and
``salt/_beacons``: the wheel maps those folders to ``saltext_win_iscsi.modules`` etc.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def loader_dirs() -> dict[str, list[str]]:
    """The ``salt.loader`` entry point: loader type → folders holding its modules."""
    return {kind: [str(PACKAGE / kind)] for kind in ("modules", "states", "beacons")}
