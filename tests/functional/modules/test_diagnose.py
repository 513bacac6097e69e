"""``iscsi.diagnose`` through Salt's loader against the simulated Windows host: every item
with a verdict, one PowerShell process, an unreadable item that says why, a host where the
script cannot run at all."""

from tests.support.simhost.readiness import ADAPTER_KEY

WINDOWS_ITEMS = {
    "powershell.edition",
    "powershell.version",
    "powershell.language_mode",
    "iscsi.module",
    "service.state",
    "service.start_type",
    "firewall.iscsi_service",
    "mpio.feature",
    "mpio.msdsm_claim",
    "mpio.load_balance_policy",
    "initiator.names",
    "disk.timeout",
    "mpio.pdo_remove_period",
}


def test_diagnose_answers_every_item_in_one_process(iscsi, seeded):
    seeded.reset_stats()
    result = iscsi.diagnose()
    assert seeded.stats()["processes"] == 1
    assert result["platform"] == "windows"
    items = result["items"]
    assert set(items) >= WINDOWS_ITEMS
    assert {n for n in items if n.startswith("timer.")} >= {
        "timer.LinkDownTime",
        "timer.MaxRequestHoldTime",
    }
    assert items["powershell.edition"] == {"value": "Desktop", "verdict": "ok"}
    assert items["service.state"]["verdict"] == "ok"
    assert items["timer.LinkDownTime"] == {"value": 15, "verdict": "ok"}
    assert items["initiator.names"]["value"] == [seeded.read()["initiator"]["node_address"]]
    # No Multipath-IO: MSDSM cannot be asked, and says why.
    assert items["mpio.feature"]["verdict"] == "warn"
    assert items["mpio.msdsm_claim"]["verdict"] == "unknown"
    assert "MPIO PowerShell module cannot be loaded" in items["mpio.msdsm_claim"]["why"]
    assert sum(result["verdicts"].values()) == len(items)


def test_drifted_facts_get_their_verdicts(iscsi, seeded):
    seeded.set_fault("service_stopped", True)
    seeded.set_readiness(msiscsi_start_mode="Manual", mpio_feature="Installed")
    seeded.set_registry(ADAPTER_KEY, "LinkDownTime", None)
    items = iscsi.diagnose()["items"]
    assert items["service.state"]["verdict"] == "fail"
    assert items["service.start_type"] == {
        "value": "Manual",
        "verdict": "warn",
        "why": "MSiSCSI does not start at boot: persistent logins wait for it",
    }
    assert items["mpio.msdsm_claim"]["verdict"] == "warn"
    assert "data corruption" in items["mpio.msdsm_claim"]["why"]
    assert items["mpio.pdo_remove_period"] == {"value": 20, "verdict": "ok"}
    assert items["timer.LinkDownTime"]["value"] is None
    assert "default 15" in items["timer.LinkDownTime"]["why"]


def test_one_unreadable_item_says_why_and_the_rest_answer(iscsi, seeded):
    seeded.set_fault("unreadable_facts", ["timer.MaxRequestHoldTime"])
    items = iscsi.diagnose()["items"]
    assert items["timer.MaxRequestHoldTime"]["verdict"] == "unknown"
    assert "Access denied" in items["timer.MaxRequestHoldTime"]["why"]
    assert items["timer.LinkDownTime"]["verdict"] == "ok"
    assert items["service.state"]["verdict"] == "ok"


def test_pwsh_and_a_missing_module_are_items_not_failures(iscsi, seeded):
    seeded.set_fault("edition", "Core")
    seeded.set_fault("iscsi_module_missing", True)
    items = iscsi.diagnose()["items"]
    assert items["powershell.edition"]["verdict"] == "fail"
    assert items["iscsi.module"]["verdict"] == "unknown"
    assert "iSCSI PowerShell module cannot be loaded" in items["iscsi.module"]["why"]


def test_a_locked_down_host_names_its_language_mode(iscsi, seeded):
    seeded.set_fault("language_mode", "ConstrainedLanguage")
    result = iscsi.diagnose()
    items = result["items"]
    assert items["powershell.language_mode"]["value"] == "ConstrainedLanguage"
    assert items["powershell.language_mode"]["verdict"] == "fail"
    assert items["service.state"]["verdict"] == "unknown"
    assert "language mode" in items["service.state"]["why"]


def test_observations_load_into_the_simulated_host(iscsi, seeded, tmp_path):
    """What an admin's host says settles the simulator's guess: here WMI lists an MPIO
    target's two logins as one, which iscsicli's list shows."""
    from tests.support.simhost.model import SimulatedHost
    from tests.support.simhost.observations import behaviour_defaults, dump_observations

    seeded.set_behaviour("wmi_persistent_logins", "one_per_target")
    before = seeded.read()
    result = iscsi.diagnose(observations=True)
    document = result["observations"]
    assert document["behaviour"] == {"wmi_persistent_logins": "one_per_target"}
    facts = document["facts"]
    assert facts["sessions"]["null_fields"] == {"IsMultipathEnabled": 3}
    assert facts["sessions"]["initiator_portal_address"] == ["0.0.0.0"]
    assert facts["persistent_logins"] == {
        "wmi_instances": 1,
        "wmi_distinct_targets": 1,
        "iscsicli_entries": 3,
    }
    assert facts["not_found_error"]["category"] == "ObjectNotFound"
    assert facts["not_found_error"]["error_id"].startswith("CmdletizationQuery_NotFound")
    after = seeded.read()
    assert after["sessions"] == before["sessions"]
    assert after["persistent_logins"] == before["persistent_logins"]

    path = tmp_path / "observations.json"
    dump_observations(path, document)  # checks it as the simulator does
    assert behaviour_defaults(path)["wmi_persistent_logins"] == "one_per_target"
    loaded = SimulatedHost(tmp_path / "other.json", observations=path).reset()
    assert loaded.read()["behaviour"]["wmi_persistent_logins"] == "one_per_target"
