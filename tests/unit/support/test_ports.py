"""The test masters' ports: outside the ephemeral range, never given twice while in use.

Each test uses a register of its own and the top 50 candidate ports, so that the suite's
other workers (which take ports from the shared register, from the bottom up, meanwhile)
cannot change what it reads or sees free.
"""

import json
import os
import socket
import subprocess

import pytest

from tests.support import ports


@pytest.fixture(autouse=True)
def register(tmp_path, monkeypatch):
    path = tmp_path / "ports.json"
    monkeypatch.setattr(ports, "REGISTER", path)
    top = ports.candidates()[-50:]
    monkeypatch.setattr(ports, "candidates", lambda: top)
    return path


def registered(register) -> dict[str, int]:
    return json.loads(register.read_text())


def test_ports_are_outside_the_ephemeral_range_and_given_once(register):
    first, second = ports.master_ports(), ports.master_ports()
    given = [*first.values(), *second.values()]
    assert len(set(given)) == len(given) == 2 * len(ports.MASTER_PORTS)
    low, high = ports._ephemeral_range()
    assert all(port in ports.candidates() and not low <= port <= high for port in given)
    assert registered(register) == {str(port): os.getpid() for port in given}


def test_a_port_in_use_is_skipped():
    lowest = next(port for port in ports.candidates() if ports._is_free(port))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", lowest))
        busy.listen()
        (given,) = ports.free_ports(1)
    assert given > lowest


def test_a_gone_process_frees_its_ports_and_a_live_one_keeps_them(register):
    gone = subprocess.Popen(["true"])
    gone.wait()
    free = [port for port in ports.candidates() if ports._is_free(port)][:2]
    register.write_text(json.dumps({str(free[0]): gone.pid, str(free[1]): os.getppid()}))
    assert ports.free_ports(1) == [free[0]]
    assert registered(register) == {str(free[0]): os.getpid(), str(free[1]): os.getppid()}
