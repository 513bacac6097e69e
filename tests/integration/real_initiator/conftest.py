"""Real iSCSI sessions on Linux: the extension, through Salt, against a VM that reboots.

One VM for the package (``tests/support/initiator_vm``: Debian's kernel under qemu, the
kernel's iSCSI initiator logged in to LIO targets in the same guest), one salt-master with
the reactor and the runner, one salt-minion whose ``iscsi.iscsiadm`` is the VM's forwarder
and whose ``iscsi.node_dirs`` is the VM's node database (a host folder). Each module starts
from a clean VM (``fresh``: its own targets, no session, an empty node database); a
scenario that says "reboot" powers the VM off and boots it again with the same database.
"""

from __future__ import annotations

import os
import time

import pytest
from saltfactories.utils import random_string

from tests.conftest import master_config
from tests.support import daemons, waiting
from tests.support.initiator_vm import image, packages
from tests.support.initiator_vm.machine import InitiatorVm
from tests.support.initiator_vm.targets import Target
from tests.support.local_client import LocalCli, sync_all, sync_master
from tests.support.trees import Trees

REACTOR = "salt://reactor/iscsi_enforce.sls"
PORTAL = "127.0.0.1:3260"
SECOND_PORTAL = "127.0.0.2:3260"
LIMIT = 120  # seconds: far above what a step takes, so that a busy machine is no failure
FORBIDDEN_GLOB = "iqn.2003-01.org.example:testiscsi-*"
POLICY = {"iscsi": {"policy": {"not_persistent": [{"target": FORBIDDEN_GLOB}]}}}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test's report shows the VM's last iscsiadm runs and its console."""
    report = yield
    vm = item.funcargs.get("vm") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(vm, InitiatorVm):
        calls = [
            f"{time.strftime('%H:%M:%S', time.localtime(c.started))} {c.seconds:5.2f} s "
            f"rc={c.rc} iscsiadm {' '.join(c.args)}"
            for c in vm.journal[-40:]
        ]
        report.sections.append(("initiator VM: last forwarded iscsiadm runs", "\n".join(calls)))
        report.sections.append(("initiator VM: console", vm.console_tail()))
    return report


def wait_for(predicate, timeout: float = LIMIT, step: float = 0.2) -> float:
    """Seconds until predicate() held; fails the test after ``timeout``."""
    return waiting.wait_for(predicate, timeout, step)


def fresh(vm: InitiatorVm, targets: list[Target], default_startup: str = "manual") -> None:
    """The VM with ``targets``, no session and an empty node database (InitiatorVm.reset)."""
    vm.reset(targets, default_startup)


# The VM units are the suite's longest chains (some 300 CPU-seconds each, mostly one
# after the other: guest, minion, guest): their processes come first when the workers
# compete for the two cores, so that they end about when the rest does.
PRIORITY_BOOST = 5  # nice levels


@pytest.fixture(scope="package", autouse=True)
def cpu_first():
    """This worker, and what it starts while here (qemu, the daemons), at a higher priority
    (root only; the VM tests need root anyway); as before once the package is done."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, before - PRIORITY_BOOST)
    except PermissionError:
        before = None
    yield
    if before is not None:
        os.setpriority(os.PRIO_PROCESS, 0, before)


@pytest.fixture(scope="package")
def vm_image() -> image.Image:
    why = packages.missing()
    if why:
        pytest.skip(why)
    return image.prepare()


@pytest.fixture(scope="package")
def vm(vm_image, tmp_path_factory):
    machine = InitiatorVm(tmp_path_factory.mktemp("initiator-vm"), vm_image)
    try:
        yield machine
    finally:
        machine.close()
        boots = [f"{b.ready_s:.1f}" for b in machine.boots]
        print(f"initiator VM: image {vm_image.seconds:.1f} s, {len(boots)} boots: {boots} s")


@pytest.fixture(scope="package")
def vm_trees(tmp_path_factory) -> Trees:
    return Trees(tmp_path_factory.mktemp("vm-trees"))


@pytest.fixture(scope="package")
def vm_master(salt_factories, vm_trees):
    factory = salt_factories.salt_master_daemon(
        random_string("vm-master-"),
        overrides={
            **master_config(),
            **vm_trees.master_config(),
            "reactor": [{"salt/beacon/*/iscsi/violation": [REACTOR]}],
        },
    )
    with daemons.running(factory):
        assert "runners.iscsi" in sync_master(factory.config_file)  # the fleet report
        yield factory


@pytest.fixture(scope="package")
def vm_minion(vm_master, vm):
    """The VM's minion. Its beacon runs only while a test puts it in pillar; otherwise only
    what a test runs changes anything."""
    overrides = {
        "iscsi.timeout": 60,
        **vm.minion_config(),
        # Salt's default (salt-factories uses 0.05): a beacon's interval counts ticks.
        "loop_interval": 1,
        "log_level_logfile": "debug",  # every log line, to look for a secret in them
    }
    factory = vm_master.salt_minion_daemon(random_string("vm-minion-"), overrides=overrides)
    with daemons.running(factory):
        synced = sync_all(vm_master.config, factory.id)
        assert "modules.iscsi" in synced["modules"], synced
        yield factory


@pytest.fixture(scope="package")
def local_cli(vm_master) -> LocalCli:
    """``salt`` without its process (tests/support/local_client.py)."""
    return LocalCli(vm_master.config, timeout=180)


@pytest.fixture(scope="package")
def salt_run(vm_master):
    return vm_master.salt_run_cli(timeout=180)


@pytest.fixture
def set_pillar(vm_trees, local_cli, vm_minion):
    """Write every minion's iscsi pillar and refresh it on the VM's minion (or the one
    given); {} after, refreshed on the VM's minion."""

    def _set(data: dict, minion=vm_minion) -> None:
        vm_trees.set_pillar(data, local_cli, minion.id)

    yield _set
    _set({})


def call(local_cli, minion, *args, **kwargs):
    """``salt <minion> <args>``: its data, after checking it ran."""
    ret = local_cli.run(*args, minion_tgt=minion.id, **kwargs)
    assert ret.returncode == 0, ret
    return ret.data


def timed(step) -> float:
    started = time.monotonic()
    step()
    return time.monotonic() - started
