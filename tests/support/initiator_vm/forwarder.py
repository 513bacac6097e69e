"""``iscsiadm`` (``lsblk``, ``systemctl``, ``pidof``) for a minion whose initiator is the test
VM: forwards argv.

Test support only: installed by ``InitiatorVm`` as ``<vm>/bin/iscsiadm`` and
``<vm>/bin/lsblk`` (this file with a shebang of the tests' Python) beside ``<name>.json``
(the relay's socket and a timeout), and named by the minion's ``iscsi.iscsiadm`` and
``iscsi.lsblk``. It sends its arguments to the relay as JSON (never through a shell),
which runs the program of its own name with them in the guest, and hands back
the guest's stdout, stderr and exit code unchanged. If the guest does not answer in time
it says so on stderr and exits 1. Standard library only: it runs in the minion's
environment, not the test's.
"""

import base64
import json
import socket
import sys
from pathlib import Path

SLACK = 5  # seconds beyond the guest's own timeout for the answer to travel back


def main(args: list[str]) -> int:
    config = json.loads(Path(__file__).with_suffix(".json").read_text())
    timeout = float(config["timeout"])
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout + SLACK)
            sock.connect(config["socket"])
            request = {"program": Path(__file__).name, "args": args, "timeout": timeout}
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        answer = json.loads(data)
    except (OSError, ValueError) as exc:  # socket.timeout is an OSError
        answer = {"error": f"no answer from the initiator VM's relay: {exc}"}
    if "error" in answer:
        print(f"{Path(__file__).name} (initiator VM forwarder): {answer['error']}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(base64.b64decode(answer["stdout"]))
    sys.stderr.buffer.write(base64.b64decode(answer["stderr"]))
    return int(answer["rc"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
