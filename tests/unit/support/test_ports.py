"""The test masters' ports: outside the ephemeral range, never given twice while in use."""

import json
import os
import socket
import subprocess
import sys

from tests.support import ports


def registered() -> dict[str, int]:
    return json.loads(ports.REGISTER.read_text())


def test_ports_are_below_the_ephemeral_range_and_given_once():
    first, second = ports.master_ports(), ports.master_ports()
    given = [*first.values(), *second.values()]
    assert len(set(given)) == len(given) == 2 * len(ports.MASTER_PORTS)
    first, last = ports._ephemeral_range()
    assert all(port in ports.candidates() and not first <= port <= last for port in given)
    assert all(registered()[str(port)] == os.getpid() for port in given)


def test_a_port_in_use_is_skipped():
    taken = registered() if ports.REGISTER.exists() else {}
    lowest = next(
        port for port in ports.candidates() if str(port) not in taken and ports._is_free(port)
    )
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", lowest))
        busy.listen()
        (given,) = ports.free_ports(1)
    assert given != lowest


def test_a_gone_process_frees_its_ports():
    code = "import os; from tests.support import ports; print(os.getpid(), *ports.free_ports(3))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    pid, *theirs = map(int, out.stdout.split())
    assert all(registered()[str(port)] == pid for port in theirs)  # listed, its process gone
    ports.free_ports(1)
    assert all(registered().get(str(port)) != pid for port in theirs)
