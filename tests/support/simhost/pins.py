"""Pin the scripts the stand-in accepts: ``./dev pins`` (after mirroring a script change in
the simulated host). The stand-in refuses any other script, so the simulator cannot drift
from the script unnoticed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from saltext_win_iscsi.windows.powershell import scripts
from saltext_win_iscsi.windows.wire import PROTOCOL_VERSION

PINS_PATH = Path(__file__).with_name("pins.json")


def current() -> dict:
    return {
        "protocol": PROTOCOL_VERSION,
        "bootstrap_sha256": hashlib.sha256(scripts.BOOTSTRAP.encode("utf-8")).hexdigest(),
        "main_sha256": hashlib.sha256(scripts.MAIN.encode("utf-8")).hexdigest(),
    }


if __name__ == "__main__":
    PINS_PATH.write_text(json.dumps(current(), indent=2) + "\n")
    print(f"wrote {PINS_PATH}")
