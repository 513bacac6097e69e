"""What the real host was seen to do, written as the simulator's observations file.

Test code. The file (``artifacts/windows-observations.json``, or ``$ISCSI_OBSERVATIONS_OUT``)
is rewritten after every record, so a run that dies half-way still leaves what it saw; its
format is ``tests/support/simhost/observations.py``'s, checked on every write.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.support.simhost.observations import FORMAT, dump_observations
from tests.windows.hostactions import REPO

DEFAULT_PATH = REPO / "artifacts" / "windows-observations.json"


class Recorder:
    def __init__(self, windows: dict, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path or os.environ.get("ISCSI_OBSERVATIONS_OUT") or DEFAULT_PATH)
        self.document: dict = {"format": FORMAT, "windows": windows, "behaviour": {}, "facts": {}}
        self.save()

    def save(self) -> None:
        dump_observations(self.path, self.document)

    def behaviour(self, name: str, value: Any, channel: str) -> None:
        """A switch of the simulator as one channel observed it; both channels must agree."""
        seen = self.document["facts"].setdefault("behaviour_by_channel", {}).setdefault(name, {})
        seen[channel] = value
        agreed = len({json.dumps(v, sort_keys=True) for v in seen.values()}) == 1
        self.document["behaviour"][name] = value if agreed else None
        self.save()
        assert agreed, f"the channels saw different {name}: {seen}"

    def fact(self, name: str, value: Any, channel: str | None = None) -> None:
        """Anything else seen (raw answers, error records, event texts), for people."""
        self.document["facts"][f"{name}[{channel}]" if channel else name] = value
        self.save()

    def observed_behaviour(self) -> dict:
        return {k: v for k, v in self.document["behaviour"].items() if v is not None}
