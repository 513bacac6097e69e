"""What a second review against Windows sources found (issue 23), each test failing without
its fix. Library functions and channels are driven directly where no face is involved."""

from __future__ import annotations

import codecs
import fcntl
import subprocess
import threading
import time

import pytest
import winrm.protocol
from salt.exceptions import CommandExecutionError

from saltext_win_iscsi.computers import RemoteComputer
from saltext_win_iscsi.errors import ChannelError, IscsiInputError
from saltext_win_iscsi.windows.channels import (
    PowerShellConfig,
    ProcessChannel,
    WinRMChannel,
    open_channel,
)
from saltext_win_iscsi.windows.channels import process as process_channel
from saltext_win_iscsi.windows.powershell.scripts import MAIN
from saltext_win_iscsi.windows.protocol import encode_request
from tests.support.simhost.model import SEED_TARGET, SimulatedHost
from tests.support.simhost.powershell_standin import COMMAND as STANDIN_COMMAND
from tests.support.simhost.winrm_endpoint import WinRMEndpoint

WINDOWS_PIPE_SIZE = 4096  # CPython on Windows: CreatePipe with the default size


@pytest.fixture
def windows_pipes(monkeypatch):
    """Processes the channel starts get Windows-sized stdin pipes (Linux's 64 KB would take
    the whole main script without the child reading it); every one is stopped afterwards."""
    started: list[subprocess.Popen] = []

    class WindowsSizedPipes(subprocess.Popen):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            fcntl.fcntl(self.stdin.fileno(), fcntl.F_SETPIPE_SZ, WINDOWS_PIPE_SIZE)
            started.append(self)

    monkeypatch.setattr(process_channel.subprocess, "Popen", WindowsSizedPipes)
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def bounded(call, limit: float) -> tuple[object, float]:
    """``call()``'s result or exception and how long it took; fails if it runs past ``limit``
    (a blocked write would otherwise hang the test instead of failing it)."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except Exception as exc:  # noqa: BLE001 - handed to the test
            outcome["result"] = exc

    start = time.monotonic()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        pytest.fail(f"still blocked after {limit} s (the write has no deadline)")
    return outcome["result"], time.monotonic() - start


# -- item 6: the first stdin write can hang ---------------------------------------------------


def test_a_start_that_never_reads_stdin_fails_within_the_timeout(seeded, powershell, windows_pipes):
    seeded.set_fault("stops_reading", "start")
    error, took = bounded(lambda: ProcessChannel(str(powershell), timeout=2), limit=20)
    assert isinstance(error, ChannelError), error
    assert "did not read the extension's script within 2 s (a stalled start" in str(error)
    assert "the process was stopped" in str(error)
    assert took < 10, took
    (proc,) = windows_pipes
    assert proc.poll() is not None, "the stalled PowerShell is still running"


def test_a_request_powershell_stops_reading_fails_within_the_timeout(
    seeded, powershell, windows_pipes
):
    seeded.set_fault("stops_reading", "after_script")
    channel = ProcessChannel(str(powershell), timeout=60)  # a loaded machine starts slowly
    channel.timeout = 2
    ids = [f"ffffffffffffffff-{n:016x}" for n in range(30000)]  # about 1 MB of request
    error, took = bounded(lambda: channel.request({"op": "unregister", "ids": ids}), limit=20)
    assert isinstance(error, ChannelError), error
    assert "did not read the 'unregister' request within 2 s; the process was stopped" in str(error)
    assert took < 10, took
    assert not channel.alive


# -- item 12: stderr is in the console's OEM code page ------------------------------------


@pytest.fixture
def oem_console(monkeypatch):
    """The channel believes it runs on Windows, whose Python has an "oem" codec: here it is
    the German console's code page, cp850."""

    def search(name: str):
        return codecs.lookup("cp850") if name == "oem" else None

    codecs.register(search)
    monkeypatch.setattr(process_channel, "ON_WINDOWS", True, raising=False)
    yield
    codecs.unregister(search)


def test_stderr_is_decoded_in_the_oem_code_page(iscsi, seeded, oem_console):
    seeded.set_fault("stderr", "Ausführung verweigert: Zugriff für Benutzer nötig")
    seeded.set_fault("stderr_encoding", "cp850")
    with pytest.raises(CommandExecutionError) as err:
        iscsi.get_sessions()
    assert "Ausführung verweigert: Zugriff für Benutzer nötig" in str(err.value)


# -- items 9 and 13: WinRM, long requests and older pywinrm -------------------------------


class LoopbackComputer:
    """One simulated Windows computer behind a loopback WS-Management endpoint."""

    def __init__(self, directory) -> None:
        self.host = SimulatedHost(directory / "winrm-host.json").reset()
        self.endpoint = WinRMEndpoint(
            command_map={"powershell": STANDIN_COMMAND},
            username="CONTOSO\\salt-svc",
            password="W1nRM-pa55word!",
            env={"ISCSI_SIM_STATE": str(self.host.path)},
        ).start()
        settings = {
            "transport": "basic",
            "scheme": "http",
            "port": self.endpoint.port,
            "username": "CONTOSO\\salt-svc",
            "password": "W1nRM-pa55word!",
            "insecure": True,
            # Generous: a loaded test machine is slow to read a 1 MB request, not wrong.
            "operation_timeout": 20,
            "read_timeout": 120,
        }
        self.remote = RemoteComputer("127.0.0.1", "lab", settings)

    def channel(self, timeout: float = 120) -> WinRMChannel:
        return WinRMChannel(self.remote, timeout)


@pytest.fixture
def computer(tmp_path):
    computer = LoopbackComputer(tmp_path)
    yield computer
    computer.endpoint.stop()


def test_a_megabyte_request_goes_through_winrm_in_chunks(computer):
    """Each stdin Send is one envelope; WinRM refuses one above MaxEnvelopeSizekb (500)."""
    ids = computer.host.add_sessions([SEED_TARGET] * 2100) * 10  # a small host, 21,000 ids
    channel = computer.channel(timeout=300)
    answer = channel.request({"op": "unregister", "ids": ids})
    channel.close()
    assert len(encode_request({"op": "unregister", "ids": ids})) > 1_000_000
    assert answer["ok"] and len(answer["results"]) == 21000, answer.get("error")
    assert all(item["ok"] for item in answer["results"])
    assert computer.endpoint.refused_envelopes == 0


def test_the_endpoint_refuses_an_envelope_above_the_limit_as_windows_does(computer):
    """Control: the limit is enforced, so the test above means something."""
    computer.endpoint.max_envelope_size_kb = 8
    with pytest.raises(ChannelError, match=r"refused a message as too large \(HTTP 413"):
        computer.channel()
    assert computer.endpoint.refused_envelopes == 1


def test_pywinrm_before_0_5_reads_output_through_its_private_receive(computer, monkeypatch):
    """``get_command_output_raw`` is new in pywinrm 0.5.0; 0.4 has ``_raw_get_command_output``."""
    monkeypatch.setattr(
        winrm.protocol.Protocol,
        "_raw_get_command_output",
        winrm.protocol.Protocol.get_command_output_raw,
    )
    monkeypatch.delattr(winrm.protocol.Protocol, "get_command_output_raw")
    channel = computer.channel()
    assert channel.request({"op": "get_sessions"})["ok"]
    channel.close()


def test_a_pywinrm_without_either_receive_is_refused_by_name(computer, monkeypatch):
    monkeypatch.delattr(winrm.protocol.Protocol, "get_command_output_raw")
    monkeypatch.delattr(winrm.protocol.Protocol, "_raw_get_command_output")
    with pytest.raises(ChannelError, match=r"pywinrm 0\.5\.0 cannot read .* install pywinrm"):
        computer.channel()
    assert computer.endpoint.open_shells == 0


# -- item 10: Storage is imported, only when disks are asked for -----------------------------


def test_disks_need_the_storage_module_and_say_so(iscsi, seeded):
    seeded.set_fault("storage_module_missing", True)
    assert len(iscsi.get_sessions()) == 3  # no disks asked for: Storage is not loaded
    with pytest.raises(CommandExecutionError, match="the Storage PowerShell module cannot be"):
        iscsi.get_sessions(disks=True)


# -- item 5: every CIM method's ReturnValue is checked ---------------------------------------

DB = "iqn.1991-05.com.contoso:db-01"


@pytest.fixture
def returning_host(host):
    """Windows reporting CIM method failures in ReturnValue (the GUESS csi-proxy guards
    against), with a target on one portal."""
    host.reset()
    host.add_network_target(DB, portals=("10.0.1.5:3260",), chap=("host1", "Chap-S3cret-01"))
    with host.edit() as state:  # raw, so that an unfixed simulator ignores it silently
        state["behaviour"]["method_failures"] = "return_value"
    return host


def test_a_failing_new_is_an_error_not_a_silent_success(iscsi, returning_host):
    with pytest.raises(
        CommandExecutionError,
        match=r"MSFT_iSCSITargetPortal\.New returned 0xEFFF0003 .*ReturnValue 0xEFFF0003",
    ):
        iscsi.add_target_portal("10.0.99.9")
    assert iscsi.get_target_portals() == []


def test_a_failing_connect_is_an_error_not_a_silent_success(iscsi, returning_host):
    iscsi.add_target_portal("10.0.1.5")
    with pytest.raises(
        CommandExecutionError, match=r"MSFT_iSCSITarget\.Connect returned 0xEFFF0009"
    ):
        iscsi.connect_target(
            DB, authentication_type="one-way", chap_username="host1", chap_secret="Wrong-Secret-1"
        )
    assert iscsi.get_sessions() == []


def test_a_failing_register_reports_its_return_value(iscsi, returning_host):
    returning_host.add_session(DB)
    (sid,) = [s["SessionIdentifier"] for s in returning_host.sessions()]
    returning_host.set_fault("fail_sessions", {sid: "persistent_save"})
    result = iscsi.register_session(session_identifier=sid)
    assert result[sid]["status"] == "failed"
    assert "MSFT_iSCSISession.Register returned 0xEFFF0041" in result[sid]["error"]


# -- item 16: provider error ids carry a status ----------------------------------------------


@pytest.mark.parametrize("error_id", ["StorageWMI 40001", "MI RESULT 2"])
def test_storage_and_mi_error_ids_are_mapped_to_a_status(iscsi, seeded, error_id):
    seeded.set_fault("disk_error", error_id)
    answer = seeded.handle({"op": "get_sessions", "disks": True})
    assert answer["error"]["status"] == error_id
    assert answer["error"]["hresult"] is None  # no HRESULT: not made up
    with pytest.raises(CommandExecutionError, match=f"Access denied .*{error_id},Get-Disk"):
        iscsi.get_sessions(disks=True)


@pytest.mark.parametrize("new_existing_portal", ["refresh", "error"])
def test_adding_a_portal_again_discovers_again(iscsi, host, new_existing_portal):
    """Whether New fails for a portal already there (0xEFFF0032) is unobserved: either way
    the portal is added once and what it offers is discovered again."""
    host.reset()
    host.add_network_target(DB, portals=("10.0.1.5:3260",))
    with host.edit() as state:
        state["behaviour"]["new_existing_portal"] = new_existing_portal
    iscsi.add_target_portal("10.0.1.5")
    host.add_network_target("iqn.1991-05.com.contoso:later", portals=("10.0.1.5:3260",))
    assert iscsi.add_target_portal("10.0.1.5")["status"] == "added"
    assert len(iscsi.get_target_portals()) == 1
    assert {t["NodeAddress"] for t in iscsi.get_targets()} == {DB, "iqn.1991-05.com.contoso:later"}


# -- item 2: IsMultipathEnabled is no session property ---------------------------------------


def test_sessions_show_no_multipath_flag_and_nothing_depends_on_one(iscsi, host):
    """A real MSFT_iSCSISession has no IsMultipathEnabled: the key is always null. MPIO is
    decided from the persistent logins (LoginFlags), so convergence still holds."""
    host.reset()
    host.add_network_target(DB, portals=("10.0.1.5:3260", "10.0.2.5:3260"))
    spec = {"portals": ["10.0.1.5:3260", "10.0.2.5:3260"], "persistent": True, "multipath": True}
    assert iscsi.ensure_connected(DB, **spec)["errors"] == []
    sessions = iscsi.get_sessions(target_node_address=DB)
    assert len(sessions) == 2 and all(s["IsMultipathEnabled"] is None for s in sessions)
    logins = iscsi.get_persistent_logins(target_node_address=DB)
    assert [lg["IsMultipathEnabled"] for lg in logins] == [True, True]
    assert iscsi.ensure_connected(DB, **spec) == unchanged(DB)


# -- item 4: a session made without an initiator portal shows 0.0.0.0 ------------------------


def test_a_session_without_initiator_portal_matches_a_wanted_one(iscsi, host):
    """Windows shows 0.0.0.0 for the session and the real local address on its connection:
    a path wanting that local address is already there, not logged in again (0xEFFF003F)."""
    host.reset()
    host.add_network_target(DB, portals=("10.0.1.5:3260",))
    iscsi.add_target_portal("10.0.1.5")
    iscsi.connect_target(DB, target_portal_address="10.0.1.5", is_persistent=True)
    (session,) = iscsi.get_sessions(connections=True)
    assert session["InitiatorPortalAddress"] == "0.0.0.0"
    local = session["Connections"][0]["InitiatorAddress"]
    assert local not in ("", "0.0.0.0")
    wanted = {"address": "10.0.1.5", "initiator_portal_address": local}
    result = iscsi.ensure_connected(DB, portals=[wanted])
    assert result == unchanged(DB)


# -- item 11: the CHAP user name of a persistent login is ANSI bytes -------------------------

SECURE = "iqn.1991-05.com.contoso:secure-01"
CHAP_USER = "müller-host"  # not ASCII: UTF-8 would read the ANSI byte wrongly
CHAP_SECRET = "Chap-S3cret-01"


@pytest.mark.parametrize("nul", ["no", "yes"])
def test_a_chap_login_is_converged_once_not_on_every_run(iscsi, host, nul):
    host.reset()
    with host.edit() as state:
        state["behaviour"]["username_nul_terminated"] = nul
    host.add_network_target(SECURE, portals=("10.0.1.5:3260",), chap=(CHAP_USER, CHAP_SECRET))
    spec = {
        "portals": ["10.0.1.5:3260"],
        "authentication": "one-way",
        "chap_username": CHAP_USER,
        "chap_secret": CHAP_SECRET,
    }
    assert iscsi.ensure_connected(SECURE, **spec)["errors"] == []
    (login,) = iscsi.get_persistent_logins(target_node_address=SECURE)
    assert login["ChapUsername"] == CHAP_USER
    assert iscsi.ensure_connected(SECURE, **spec) == unchanged(SECURE)


# -- items 1 and 15: what iscsicli RemovePersistentTarget really removes ---------------------

STALE = "iqn.1991-05.com.contoso:stale"


def unchanged(target: str) -> dict:
    """What ensure_connected answers when the target is as wanted."""
    return {"changes": {}, "comments": [f"{target} is connected as wanted."], "errors": []}


def behave(host, **switches) -> None:
    with host.edit() as state:  # raw: an unfixed simulator ignores unknown switches
        state["behaviour"].update(switches)


@pytest.mark.parametrize("without_portal", ["all_portals", "portal_less_only"])
def test_a_login_without_portal_is_not_removed_alone(iscsi, seeded, without_portal):
    """Given no portal, Windows removes the target's logins on every portal: removing only
    the portal-less one is refused, changing nothing; removing them all works."""
    behave(seeded, remove_without_portal=without_portal)
    seeded.add_persistent_login(STALE, portal="", port=0)
    seeded.add_persistent_login(STALE, portal="10.0.0.5")
    (refused,) = iscsi.remove_persistent_login(
        target_node_address=STALE, target_portal="(any portal)"
    )
    assert refused["status"] == "failed"
    assert refused["error"].startswith("refused: Windows removes a persistent login without")
    assert "(10.0.0.5:3260) are not selected" in refused["error"]
    assert len(iscsi.get_persistent_logins(target_node_address=STALE)) == 2
    report = iscsi.remove_persistent_login(target_node_address=STALE)
    assert [entry["status"] for entry in report] == ["removed", "removed"], report
    assert iscsi.get_persistent_logins(target_node_address=STALE) == []


def test_duplicates_wmi_lists_as_one_are_all_removed(iscsi, seeded):
    """TargetName is the WMI class's only key: two MPIO entries may be listed as one, and
    iscsicli may remove one per call. The removal repeats while the login is listed."""
    behave(seeded, wmi_persistent_logins="one_per_target", remove_persistent_removes="one")
    seeded.add_persistent_login(STALE, count=3)
    assert len(iscsi.get_persistent_logins(target_node_address=STALE)) == 1
    (report,) = iscsi.remove_persistent_login(target_node_address=STALE)
    assert report["status"] == "removed", report
    assert [lg for lg in seeded.persistent_logins() if lg["TargetName"] == STALE] == []


# -- item 3: clustered disks the session does not show -------------------------------------

CLUSTERED = "iqn.1991-05.com.contoso:cluster-01"


@pytest.fixture
def cluster_node(host):
    """A failover cluster node with a target whose disk the clustered storage claims."""
    host.reset()
    host.set_cluster_service(True)
    host.add_network_target(CLUSTERED, portals=("10.0.3.5:3260",), disks=[{"IsClustered": True}])
    return host


@pytest.mark.parametrize(
    ("association", "reason"),
    [
        ("connection", "is a clustered disk"),  # found through the connection
        ("none", "its disks are unknown (none found, but the cluster service runs"),
    ],
)
def test_ensure_absent_sees_clustered_disks_or_says_it_cannot(
    iscsi, cluster_node, association, reason
):
    behave(cluster_node, clustered_disk_association=association)
    connected = iscsi.ensure_connected(CLUSTERED, portals=["10.0.3.5"])
    assert connected["errors"] == [], connected  # a disk, or one the host cannot tell
    result = iscsi.ensure_absent(CLUSTERED)
    assert result["changes"] == {} and reason in result["errors"][0], result
    assert len(iscsi.get_sessions(target_node_address=CLUSTERED)) == 1
    assert iscsi.ensure_absent(CLUSTERED, force=True)["errors"] == []
    assert iscsi.get_sessions(target_node_address=CLUSTERED) == []


def test_no_disk_is_no_risk_where_no_cluster_runs(iscsi, cluster_node):
    cluster_node.set_cluster_service(False)
    behave(cluster_node, clustered_disk_association="none")
    connected = iscsi.ensure_connected(CLUSTERED, portals=["10.0.3.5"], disk_timeout=0)
    assert connected["errors"][0].startswith(f"session up, no disk: {CLUSTERED}"), connected
    (session,) = iscsi.get_sessions(target_node_address=CLUSTERED, disks=True)
    assert session["Disks"] == [] and session["DisksUnknown"] is False
    assert iscsi.ensure_absent(CLUSTERED)["errors"] == []


# -- item 17: persistently bound volumes -----------------------------------------------------

BOUND = "iqn.1991-05.com.contoso:bound-01"
VOLUME = {
    "DriveLetter": "E",
    "AccessPaths": ["E:\\", "\\\\?\\Volume{0b1e5a9c-0000-4000-8000-000000000001}\\"],
}


@pytest.fixture
def bound_host(host):
    """A persistent target whose volume E: is on the initiator's bound list."""
    host.reset()
    host.add_network_target(BOUND, portals=("10.0.4.5:3260",), disks=[{"Volumes": [VOLUME]}])
    host.handle({"op": "add_target_portal", "address": "10.0.4.5", "port": 3260})
    host.handle({"op": "connect_target", "node_address": BOUND, "is_persistent": True})
    host.bind_volume("E:\\")
    return host


def test_get_sessions_reports_whether_each_volume_is_bound(iscsi, bound_host):
    (session,) = iscsi.get_sessions(disks=True)
    (volume,) = session["Disks"][0]["Volumes"]
    assert volume["IsBound"] is True and volume["BoundPaths"] == ["E:\\"]
    bound_host.handle({"op": "unbind_volumes", "ids": [session["SessionIdentifier"]]})
    (session,) = iscsi.get_sessions(disks=True)
    assert session["Disks"][0]["Volumes"][0]["IsBound"] is False


def test_not_persistent_takes_the_volume_off_the_bound_list(iscsi, bound_host):
    (sid,) = [s["SessionIdentifier"] for s in bound_host.sessions()]
    result = iscsi.unregister_session(target_node_address=BOUND)
    assert result[sid]["status"] == "unregistered"
    assert result[sid]["volumes_unbound"] == ["E:\\"]
    assert bound_host.bound_volumes() == [] and bound_host.boot_waits_for() == []


def test_a_volume_another_persistent_path_brings_back_stays_bound(iscsi, bound_host):
    """MPIO: the target keeps a persistent login, so its volume still comes back at boot."""
    bound_host.add_persistent_login(BOUND, portal="10.0.4.5")
    (sid,) = [s["SessionIdentifier"] for s in bound_host.sessions()]
    result = iscsi.unregister_session(session_identifier=sid)
    assert result[sid]["status"] == "unregistered" and "volumes_unbound" not in result[sid]
    assert bound_host.bound_volumes() == ["E:\\"]


def test_absent_takes_the_volume_off_the_bound_list_and_says_so(iscsi, bound_host):
    planned = iscsi.ensure_absent(BOUND, force=True, test=True)
    assert planned["changes"]["bound volume E:\\"] == {"old": "bound", "new": "unbound"}
    assert bound_host.bound_volumes() == ["E:\\"]
    done = iscsi.ensure_absent(BOUND, force=True)
    assert done["errors"] == [] and "bound volume E:\\" in done["changes"]
    assert bound_host.bound_volumes() == [] and bound_host.boot_waits_for() == []


def test_without_unbinding_every_boot_would_wait(bound_host):
    """Control: the simulated host does see a bound volume nothing brings back."""
    bound_host.handle(
        {"op": "unregister", "ids": [s["SessionIdentifier"] for s in bound_host.sessions()]}
    )
    assert bound_host.boot_waits_for() == ["E:\\"]


# -- item 7: an installed, signed main.ps1 run with -File ------------------------------------

SIGNATURE = "# SIG # Begin signature block\r\n# MIIFfake...\r\n# SIG # End signature block\r\n"


def install_main(directory, signed: bool = True, text: str | None = None):
    """main.ps1 as an admin installs it on Windows: CRLF line ends, signed or not."""
    path = directory / "main.ps1"
    body = (text if text is not None else MAIN).replace("\n", "\r\n")
    path.write_bytes((body + (SIGNATURE if signed else "")).encode("utf-8"))
    return str(path)


def test_an_installed_main_script_serves_requests_with_file(seeded, powershell, tmp_path):
    config = PowerShellConfig.from_settings(str(powershell), 10, install_main(tmp_path))
    channel = open_channel(config)
    assert len(channel.request({"op": "get_sessions"})["sessions"]) == 3
    assert channel.request({"op": "unregister", "ids": ["ffffffffffffffff-0"]})["ok"]
    channel.close()
    assert seeded.stats()["processes"] == 1


@pytest.mark.parametrize(("signed", "trusted"), [(True, True), (True, False), (False, True)])
def test_under_a_lockdown_only_a_trusted_signed_file_runs(
    seeded, powershell, tmp_path, signed, trusted
):
    seeded.set_fault("language_mode", "ConstrainedLanguage")
    seeded.set_fault("signer_trusted", trusted)
    encoded = PowerShellConfig.from_settings(str(powershell), 10)
    with pytest.raises(ChannelError, match="ConstrainedLanguage language mode"):
        open_channel(encoded).request({"op": "digest"})
    installed = PowerShellConfig.from_settings(
        str(powershell), 10, install_main(tmp_path, signed=signed)
    )
    channel = open_channel(installed)
    if signed and trusted:
        assert channel.request({"op": "digest"})["ok"]
        channel.close()
    else:
        with pytest.raises(ChannelError, match="ConstrainedLanguage language mode"):
            channel.request({"op": "digest"})


def test_an_installed_script_of_another_version_is_refused(seeded, powershell, tmp_path):
    stale = install_main(tmp_path, text=MAIN.replace("protocol 5", "protocol 4"))
    config = PowerShellConfig.from_settings(str(powershell), 10, stale)
    with pytest.raises(ChannelError, match=r"is not this version's main\.ps1 \(expected SHA-256"):
        open_channel(config)
    assert seeded.stats()["processes"] == 0


@pytest.mark.parametrize(
    ("executable", "path", "message"),
    [
        (None, "main.ps1", "must be the absolute path"),
        ("runspace", "/opt/iscsi/main.ps1", "cannot be combined with iscsi.powershell: runspace"),
    ],
)
def test_script_path_setting_is_checked(executable, path, message):
    with pytest.raises(IscsiInputError, match=message):
        PowerShellConfig.from_settings(executable, 10, path)
