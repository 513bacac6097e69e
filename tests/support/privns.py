"""Run a command with private directories bind-mounted over system ones; test helper.

Only ever run it as the command of ``unshare --mount`` (a private mount namespace)::

    unshare --mount --net --propagation private python privns.py \
        --log argv.jsonl --bind /tmp/x/etc:/etc/iscsi --bind /tmp/x/lock:/run/lock \
        -- iscsiadm -m node

It appends the command's argv (one JSON list per line) to ``--log``, bind-mounts each
``SRC:DST``, and execs the command. It refuses to mount anything when it is still in the
mount namespace of its parent, so a mistaken call can never cover the machine's own
``/etc/iscsi``. No shell is involved: the command's argv is handed to ``execvp`` as is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def _private_namespace() -> bool:
    """Whether this process's mount namespace differs from its parent's.

    ``unshare`` execs this script, so the parent is whoever ran ``unshare``; run directly,
    the parent shares the namespace and nothing may be mounted. Unreadable means no.
    """
    try:
        return os.readlink("/proc/self/ns/mnt") != os.readlink(f"/proc/{os.getppid()}/ns/mnt")
    except OSError:
        return False


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print("privns: usage: [--log FILE] [--bind SRC:DST]... -- COMMAND...", file=sys.stderr)
        return 2
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1 :]
    log, binds = None, []
    while options:
        flag, value, options = options[0], options[1], options[2:]
        if flag == "--log":
            log = value
        elif flag == "--bind":
            source, _, target = value.partition(":")
            binds.append((source, target))
        else:
            print(f"privns: unknown option {flag}", file=sys.stderr)
            return 2
    if binds and not _private_namespace():
        print("privns: refusing to mount: not in a private mount namespace", file=sys.stderr)
        return 99
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(command) + "\n")
    for source, target in binds:
        subprocess.run(["mount", "--bind", source, target], check=True)
    os.execvp(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
