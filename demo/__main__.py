"""``./dev demo [--linux]``: the main job with real daemons; ``./dev demo walkthrough``:
the execution module alone, step by step, through ``salt-call --local``."""

from __future__ import annotations

import sys

from demo import main_job, walkthrough

if __name__ == "__main__":
    if sys.argv[1:] == ["walkthrough"]:
        walkthrough.main()
    else:
        main_job.main(sys.argv[1:])
