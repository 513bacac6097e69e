"""``iscsi.diagnose`` and ``iscsi.ensure_ready`` on the real initiator: the guest's iscsid
(found by pidof: no systemd runs there), its iscsid.conf and initiator name, as the minion
reads them through the VM's forwarders."""

from __future__ import annotations

import pytest

from tests.integration.real_initiator.conftest import call, fresh
from tests.support.initiator_vm.machine import INITIATOR
from tests.support.initiator_vm.targets import Target

pytestmark = pytest.mark.real_initiator

REPLACEMENT = "node.session.timeo.replacement_timeout"


def test_diagnose_reads_the_guest_and_ready_writes_iscsid_conf(vm, vm_minion, local_cli):
    fresh(vm, [Target("iqn.2003-01.org.example:testiscsi-diagnose")])
    result = call(local_cli, vm_minion, "iscsi.diagnose")
    assert result["platform"] == "open-iscsi"
    items = result["items"]
    running = items["iscsid.running"]
    assert running["verdict"] == "ok", running
    assert running["value"]["seen_by"].startswith("pidof iscsid (systemd is not PID 1): ")
    assert set(items["iscsid.enabled"]["value"]) == {"iscsid.service", "iscsid.socket"}
    assert items["initiator.names"] == {"value": [INITIATOR], "verdict": "ok"}
    assert items["iscsid_conf.node.startup"] == {"value": "manual", "verdict": "ok"}
    assert items[f"iscsid_conf.{REPLACEMENT}"]["value"] == "120"  # not set: the default
    assert items["multipathd.running"]["verdict"] == "warn"
    print({name: item["value"] for name, item in items.items()})

    rules = f'iscsid_conf={{"{REPLACEMENT}": 15}}'
    would = call(local_cli, vm_minion, "iscsi.ensure_ready", rules, "test=True")
    assert would["changes"] == {f"iscsid_conf.{REPLACEMENT}": {"old": "120", "new": "15"}}
    assert REPLACEMENT not in (vm.etc / "iscsid.conf").read_text()
    done = call(local_cli, vm_minion, "iscsi.ensure_ready", rules)
    assert done["errors"] == [] and list(done["changes"]) == [f"iscsid_conf.{REPLACEMENT}"]
    assert f"{REPLACEMENT} = 15" in (vm.etc / "iscsid.conf").read_text()
    again = call(local_cli, vm_minion, "iscsi.ensure_ready", rules)
    assert again["changes"] == {}
    vm.set_default_startup("manual")  # iscsid.conf as the other tests expect it
