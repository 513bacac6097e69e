"""The VM itself: the forwarder a minion runs as iscsiadm, and a reboot that is real."""

from __future__ import annotations

import concurrent.futures
import subprocess
import time

import pytest

from tests.integration.real_initiator.conftest import PORTAL, fresh
from tests.support.initiator_vm import admin
from tests.support.initiator_vm.machine import install_forwarder
from tests.support.initiator_vm.targets import Target

pytestmark = pytest.mark.real_initiator

A = "iqn.2003-01.org.example:vm-a"
B = "iqn.2003-01.org.example:vm-b"
C = "iqn.2003-01.org.example:vm-c"  # automatic in node.conn[0].startup only
MINION_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}  # what Iscsiadm passes


@pytest.fixture(scope="module")
def booted(vm):
    fresh(vm, [Target(A), Target(B), Target(C)])
    admin.discover(vm)
    admin.set_startup(vm, A, PORTAL, node="automatic", conn="automatic")
    admin.set_startup(vm, C, PORTAL, node="manual", conn="automatic")
    return vm


def forward(forwarder, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(forwarder), *args], capture_output=True, text=True, env=MINION_ENV, timeout=300
    )


def test_concurrent_callers_each_get_their_own_answer(booted):
    asks = [A, B, "iqn.2003-01.org.example:none"] * 3
    with concurrent.futures.ThreadPoolExecutor(len(asks)) as pool:
        done = list(
            pool.map(lambda t: forward(booted.forwarder, "-m", "node", "-T", t, "-o", "show"), asks)
        )
    for target, answer in zip(asks, done, strict=True):
        if target.endswith(":none"):
            assert (answer.returncode, answer.stdout) == (21, ""), answer
            assert "No records found" in answer.stderr, answer
        else:
            assert answer.returncode == 0, answer
            assert f"node.name = {target}\n" in answer.stdout, answer


def test_argv_travels_as_data(booted):
    value = "a b;$(touch /tmp/forwarded) `id` 'q' \"d\" && |"
    update = ["-m", "node", "-T", B, "-p", PORTAL, "-o", "update"]
    done = forward(booted.forwarder, *update, "-n", "node.session.auth.username", "-v", value)
    assert done.returncode == 0, done
    shown = forward(booted.forwarder, "-m", "node", "-T", B, "-p", PORTAL, "-o", "show")
    assert f"node.session.auth.username = {value}\n" in shown.stdout, shown
    assert booted.run(["test", "-e", "/tmp/forwarded"], ok=(1,)).rc == 1
    booted.iscsiadm(*update, "-n", "node.session.auth.username", "-v", "")


def test_a_guest_that_hangs_times_out_cleanly(booted, tmp_path):
    quick = install_forwarder(tmp_path, booted.forwarder_socket, timeout=3)
    booted.pause()
    try:
        started = time.monotonic()
        done = forward(quick, "-m", "session")
        took = time.monotonic() - started
    finally:
        booted.resume()
    assert done.returncode == 1, done
    assert done.stdout == "", done
    assert "the guest did not answer within" in done.stderr, done
    assert took < 3 + 5 + 30, took  # its timeout and the relay's slack, on a busy machine
    again = forward(booted.forwarder, "-m", "node", "-T", A, "-o", "show")
    assert again.returncode == 0 and f"node.name = {A}\n" in again.stdout, again


def test_a_reboot_is_real(booted):
    """Power off, boot again with the same node database: the boot service logs in, in a
    new kernel, the records that are automatic in node.startup or (open-iscsi's
    match_startup_mode) in node.conn[0].startup; not the manual one."""
    first = booted.boots[-1].boot_id
    for target in (A, B, C):
        admin.login(booted, target)
    booted.power_off()
    off = forward(booted.forwarder, "-m", "session")
    assert (off.returncode, off.stderr) == (
        1,
        "iscsiadm (initiator VM forwarder): the VM is not running\n",
    ), off
    boot = booted.boot()
    assert boot.boot_id != first
    assert boot.login.rc == 0, boot.login
    assert admin.sessions(booted) == {(A, PORTAL), (C, PORTAL)}
    assert admin.startup(booted, A) == ("automatic", "automatic")
    assert admin.startup(booted, B) == ("manual", "manual")
    assert admin.startup(booted, C) == ("manual", "automatic")
