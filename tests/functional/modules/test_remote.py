"""Remote Windows computers over WinRM: the real pywinrm client against loopback endpoints."""

import contextlib
import logging
import time

import pytest
from salt.exceptions import SaltInvocationError

from tests.support.simhost.model import SEED_TARGET, SimulatedHost
from tests.support.simhost.powershell_standin import COMMAND as STANDIN_COMMAND
from tests.support.simhost.winrm_endpoint import WinRMEndpoint

STANDIN = STANDIN_COMMAND
USER, PASSWORD = "CONTOSO\\salt-svc", "W1nRM-pa55word!"


class Computer:
    """One simulated Windows computer: its iSCSI initiator and its WinRM endpoint."""

    def __init__(self, index: int, directory, transport: str = "basic", tls: bool = True):
        self.name = f"127.0.0.{index + 2}"
        self.host = SimulatedHost(directory / f"host-{index}.json").reset(sessions=3)
        self.endpoint = WinRMEndpoint(
            command_map={"powershell": STANDIN},
            username=USER,
            password=PASSWORD,
            transport=transport,
            tls=tls,
            host=self.name,
            env={"ISCSI_SIM_STATE": str(self.host.path)},
        ).start()

    def profile(self, **extra) -> dict:
        settings = {
            "transport": "ssl" if self.endpoint.tls else self.endpoint.transport,
            "scheme": "https" if self.endpoint.tls else "http",
            "port": self.endpoint.port,
            "username": USER,
            "password": PASSWORD,
            "operation_timeout": 3,
            "read_timeout": 6,
        }
        if self.endpoint.tls:
            settings["ca_trust_path"] = self.endpoint.ca_cert_path
        if not self.endpoint.tls and self.endpoint.transport == "basic":
            settings["insecure"] = True
        settings.update(extra)
        return settings


@pytest.fixture
def fleet(tmp_path, minion_setting):
    """Three computers, each with its own WinRM profile, wired into the minion's config."""
    computers = [Computer(i, tmp_path) for i in range(3)]

    def configure(**extra):
        minion_setting(
            {
                "iscsi.winrm": {c.name: c.profile(**extra) for c in computers},
                "iscsi.winrm_hosts": {c.name: c.name for c in computers},
            }
        )

    configure()
    try:
        yield computers, configure
    finally:
        for computer in computers:
            computer.endpoint.stop()


def test_get_and_unregister_on_several_computers(iscsi, fleet):
    computers, _ = fleet
    names = [c.name for c in computers]
    listed = iscsi.get_sessions(computer_name=names)
    assert list(listed) == names
    assert all(len(sessions) == 3 for sessions in listed.values())

    result = iscsi.unregister_session(computer_name=names[:2], target_node_address=SEED_TARGET)
    for computer in computers[:2]:
        report = result[computer.name]
        assert {r["status"] for r in report.values()} == {"unregistered"}
        assert computer.host.persistent_ids() == set()
        assert computer.host.stats()["processes"] == 2  # get_sessions, then unregister
    assert len(computers[2].host.persistent_ids()) == 3


def test_long_requests_travel_on_stdin(iscsi, fleet):
    """Far more than cmd.exe's 8191 characters of ids: fine, they are not on the command line."""
    computers, _ = fleet
    ids = [f"fffffa800d008430-{n:016x}" for n in range(2000)]
    report = iscsi.unregister_session(computer_name=computers[0].name, session_identifier=ids)
    assert len(report[computers[0].name]) == 2000


def test_throttle_limit_is_honoured(iscsi, fleet):
    computers, configure = fleet
    for computer in computers:
        computer.host.set_fault("startup_delay", 0.5)
        computer.endpoint.reset_stats()
    start = time.monotonic()
    iscsi.get_sessions(computer_name=[c.name for c in computers], throttle_limit=1)
    sequential = time.monotonic() - start
    assert max(c.endpoint.max_concurrent_commands for c in computers) == 1
    start = time.monotonic()
    iscsi.get_sessions(computer_name=[c.name for c in computers], throttle_limit=3)
    parallel = time.monotonic() - start
    print(
        f"3 computers, 0.5 s start-up each: throttle 1 {sequential:.2f} s, throttle 3 {parallel:.2f} s"
    )
    assert parallel < sequential


def test_a_down_computer_does_not_stop_the_others(iscsi, loaders, fleet):
    computers, _ = fleet
    computers[1].endpoint.down = True
    result = iscsi.unregister_session(
        computer_name=[c.name for c in computers], target_node_address=SEED_TARGET
    )
    assert result[computers[1].name] == {
        "error": f"iSCSI: {computers[1].name!r} (WinRM profile {computers[1].name!r}) "
        "cannot be reached (connection failed)"
    }
    assert loaders.context.get("retcode") == 1
    assert computers[0].host.persistent_ids() == set() == computers[2].host.persistent_ids()
    assert len(computers[1].host.persistent_ids()) == 3


def test_wrong_password_and_no_leak(iscsi, fleet, caplog):
    computers, configure = fleet
    configure(password="not-the-password")
    with caplog.at_level(1):
        result = iscsi.get_sessions(computer_name=computers[0].name)
    assert result[computers[0].name]["error"].endswith("refused the credentials")
    configure()
    with caplog.at_level(1):
        result = iscsi.get_sessions(computer_name=computers[0].name)
    assert len(result[computers[0].name]) == 3
    for secret in (PASSWORD, "not-the-password"):
        assert secret not in caplog.text
        assert secret not in repr(result)


def test_slow_computer_hits_the_timeout(iscsi, fleet, minion_setting):
    computers, _ = fleet
    minion_setting({"iscsi.timeout": 3})
    computers[0].endpoint.response_delay = 8
    start = time.monotonic()
    result = iscsi.get_sessions(computer_name=[c.name for c in computers[:2]])
    assert time.monotonic() - start < 20
    assert "did not answer" in result[computers[0].name]["error"]
    assert len(result[computers[1].name]) == 3


def test_tls_validation_is_on_by_default(iscsi, fleet):
    computers, configure = fleet
    configure(ca_trust_path=None)
    result = iscsi.get_sessions(computer_name=computers[0].name)
    assert result[computers[0].name]["error"].endswith("failed TLS certificate validation")


def test_insecure_settings_need_an_explicit_flag(iscsi, fleet, caplog):
    computers, configure = fleet
    configure(scheme="http", transport="basic", insecure=False)
    with pytest.raises(SaltInvocationError, match="Basic authentication over plain HTTP"):
        iscsi.get_sessions(computer_name=computers[0].name)
    configure(server_cert_validation="ignore", ca_trust_path=None)
    with caplog.at_level(logging.WARNING):
        assert len(iscsi.get_sessions(computer_name=computers[0].name)[computers[0].name]) == 3
    assert "does not validate" in caplog.text


def test_unknown_profile_is_a_clear_error(iscsi, fleet):
    with pytest.raises(SaltInvocationError, match="no WinRM profile 'nope' for 'win99'"):
        iscsi.get_sessions(computer_name="win99", profile="nope")


def test_no_shell_is_left_open(iscsi, fleet):
    computers, _ = fleet
    iscsi.get_sessions(computer_name=computers[0].name)
    with contextlib.suppress(Exception):
        computers[0].host.set_fault("garbage", True)
        iscsi.get_sessions(computer_name=computers[0].name)
    assert computers[0].endpoint.open_shells == 0


HOSTILE_NAME = "win01\n[ERROR   ] forged line\x1b[31m\u202etxt.exe"


def test_a_hostile_computer_name_cannot_forge_log_lines(iscsi, fleet, minion_setting, caplog):
    """Names are quoted with repr in errors and logs: no raw newline, escape or U+202E."""
    computers, _ = fleet
    raw = ("\n", "\x1b", "\u202e")
    # No profile for it: a configuration error before anything is tried.
    with pytest.raises(SaltInvocationError) as err:
        iscsi.get_sessions(computer_name=HOSTILE_NAME, profile="nope")
    assert not any(c in str(err.value) for c in raw)
    assert repr(HOSTILE_NAME) in str(err.value)
    # With a profile: it cannot be reached, and the per-host error and the log say so safely.
    minion_setting({"iscsi.winrm": {"default": computers[0].profile(port=1)}})
    with caplog.at_level(1):
        result = iscsi.get_sessions(computer_name=[HOSTILE_NAME])
    message = result[HOSTILE_NAME]["error"]
    assert repr(HOSTILE_NAME) in message and not any(c in message for c in raw)
    for record in caplog.records:
        if "forged line" in record.getMessage():
            assert not any(c in record.getMessage() for c in raw), record.getMessage()
