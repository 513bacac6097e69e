"""``./dev demo``: the main job with real daemons; ``./dev demo walkthrough``: the execution
module alone, step by step, through ``salt-call --local``."""

from __future__ import annotations

import sys

from demo import main_job, walkthrough

COMMANDS = {"main": main_job.main, "walkthrough": walkthrough.main}

if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else "main"
    if name not in COMMANDS:
        sys.exit(f"usage: ./dev demo [{'|'.join(COMMANDS)}]")
    COMMANDS[name]()
