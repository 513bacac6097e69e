"""A Linux minion with the beacon and the reactor: a node record switched to automatic by
hand is set back to manual by the policy, as on Windows."""

import time

import pytest
from saltfactories.utils import random_string

from tests.integration.e2e.conftest import BACKOFF_MAX, BEACON_INTERVAL, wait_for
from tests.support import daemons
from tests.support.local_client import sync_beacon
from tests.support.openiscsi_env import PrivateNodeDb, require_iscsiadm

WATCHED = "iqn.1991-05.com.contoso:testiscsi-linux"
ALLOWED = "iqn.1991-05.com.contoso:db-linux"


@pytest.fixture(scope="module")
def linux_nodes(tmp_path_factory) -> PrivateNodeDb:
    nodes = PrivateNodeDb(tmp_path_factory.mktemp("e2e-linux-nodes"), require_iscsiadm())
    nodes.new_record(WATCHED, "10.0.0.7:3260", "manual")
    nodes.new_record(ALLOWED, "10.0.0.8:3260", "manual")
    return nodes


@pytest.fixture(scope="module")
def linux_beacon_minion(loop_master, linux_nodes, set_loop_pillar):
    overrides = {
        "iscsi.timeout": 30,
        **linux_nodes.minion_config(),
        "loop_interval": 1,
        "beacons": {"iscsi": [{"interval": BEACON_INTERVAL}, {"backoff_max": BACKOFF_MAX}]},
    }
    factory = loop_master.salt_minion_daemon(random_string("linux-beacon-"), overrides=overrides)
    with daemons.running(factory):
        sync_beacon(loop_master.config, factory.id)
        yield factory


def test_a_node_switched_to_automatic_is_set_back(linux_beacon_minion, linux_nodes):
    def manual():
        """the record is manual again"""
        return linux_nodes.startup(WATCHED, "10.0.0.7:3260") == "manual"

    start = time.monotonic()
    linux_nodes.set_startup(WATCHED, "10.0.0.7:3260", "automatic")
    linux_nodes.set_startup(ALLOWED, "10.0.0.8:3260", "automatic")
    took = wait_for(manual, step=0.2)
    print(f"Linux: node.startup=automatic by hand -> manual again in {took:.2f} s")
    assert time.monotonic() - start < BEACON_INTERVAL + 2 + 8  # + CI slack
    assert linux_nodes.startup(ALLOWED, "10.0.0.8:3260") == "automatic"
