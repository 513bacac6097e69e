"""A Linux minion (the real iscsiadm on a private node database) beside the simulated
Windows minion: the same module names, and one pillar policy enforced on both in one run."""

import pytest
import salt.client
from saltfactories.utils import random_string

from tests.support import daemons
from tests.support.local_client import sync_all, sync_master
from tests.support.openiscsi_env import PrivateNodeDb, require_iscsiadm
from tests.support.simhost.model import SEED_TARGET

WATCHED = "iqn.1991-05.com.contoso:testiscsi-linux"
ALLOWED = "iqn.1991-05.com.contoso:db-linux"
REPORTED = "iqn.1991-05.com.contoso:testiscsi-report"
POLICY = {
    "iscsi": {"policy": {"not_persistent": [{"target": "iqn.1991-05.com.contoso:testiscsi-*"}]}}
}


@pytest.fixture(scope="module")
def nodes(tmp_path_factory) -> PrivateNodeDb:
    return PrivateNodeDb(tmp_path_factory.mktemp("linux-nodes"), require_iscsiadm())


@pytest.fixture(scope="module")
def linux_minion(master, nodes):
    # No iscsi.powershell: this minion is a Linux host with open-iscsi.
    overrides = {"iscsi.timeout": 30, **nodes.minion_config()}
    factory = master.salt_minion_daemon(random_string("linux-"), overrides=overrides)
    with daemons.running(factory):
        sync_all(master.config, factory.id)
        yield factory


def test_the_module_loads_and_says_what_it_found(local_cli, linux_minion, nodes):
    ret = local_cli.run("iscsi.version", minion_tgt=linux_minion.id)
    assert ret.returncode == 0, ret
    assert ret.data["backend"] == f"open-iscsi ({nodes.wrapper})"
    ret = local_cli.run("iscsi.get_sessions", minion_tgt=linux_minion.id)
    assert ret.returncode == 0 and ret.data == [], ret  # no iscsi_tcp here: no sessions
    ret = local_cli.run("iscsi.get_target_portals", minion_tgt=linux_minion.id)
    assert ret.returncode == 0 and ret.data == [], ret  # no discovery record yet


def test_one_policy_run_enforces_on_linux_and_windows(
    master, local_cli, set_pillar, minion, linux_minion, nodes, seeded
):
    nodes.new_record(WATCHED, "10.0.0.7:3260", "automatic")
    nodes.new_record(ALLOWED, "10.0.0.8:3260", "automatic")
    set_pillar(POLICY)  # refreshes the Windows minion
    assert (
        local_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=linux_minion.id).returncode
        == 0
    )
    ret = local_cli.run("iscsi.get_persistent_logins", minion_tgt=linux_minion.id)
    assert {lg["TargetName"] for lg in ret.data} == {WATCHED, ALLOWED}, ret

    client = salt.client.get_local_client(mopts=master.config.copy())
    results = client.cmd(
        [minion.id, linux_minion.id], "state.apply", ["iscsi.policy"], tgt_type="list", timeout=120
    )
    assert set(results) == {minion.id, linux_minion.id}, results
    for minion_id, states in results.items():
        assert isinstance(states, dict), (minion_id, states)
        assert all(s["result"] is True for s in states.values()), (minion_id, states)
    # Windows: the seed's sessions no longer reconnect; Linux: the record is manual again.
    assert seeded.persistent_ids() == set()
    assert all(s["TargetNodeAddress"] == SEED_TARGET for s in seeded.sessions())
    assert nodes.startup(WATCHED, "10.0.0.7:3260") == "manual"
    assert nodes.startup(ALLOWED, "10.0.0.8:3260") == "automatic"
    # The record is kept, only its startup changed; and the next run changes nothing.
    again = client.cmd(
        [linux_minion.id], "state.apply", ["iscsi.policy"], tgt_type="list", timeout=120
    )
    assert all(not s["changes"] for s in again[linux_minion.id].values()), again


def test_the_fleet_report_reads_a_linux_minion_like_a_windows_one(
    master, local_cli, set_pillar, linux_minion, nodes
):
    """The runner asks the same questions of every minion: a node record switched to
    automatic by hand is a violation (a persistent login), and enforce undoes it."""
    set_pillar(POLICY)
    refresh = local_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=linux_minion.id)
    assert refresh.returncode == 0, refresh
    sync_master(master.config_file)
    salt_run = master.salt_run_cli(timeout=120)
    nodes.new_record(REPORTED, "10.0.0.9:3260", "automatic")
    target = (f"tgt={linux_minion.id}", "tgt_type=list", "timeout=60")

    ret = salt_run.run("iscsi.report", *target)
    assert ret.returncode == 0, ret
    (host,) = ret.data["hosts"]
    assert (host["minion"], host["status"]) == (linux_minion.id, "violating"), ret.data
    assert [(v["kind"], v["target"], v["portal"]) for v in ret.data["violations"]] == [
        ("persistent_login", REPORTED, "10.0.0.9:3260")
    ], ret.data

    ret = salt_run.run("iscsi.enforce", *target)
    assert [row["minion"] for row in ret.data["enforced"]] == [linux_minion.id], ret.data
    assert nodes.startup(REPORTED, "10.0.0.9:3260") == "manual"
    ret = salt_run.run("iscsi.report", *target)
    assert [h["status"] for h in ret.data["hosts"]] == ["compliant"], ret.data
