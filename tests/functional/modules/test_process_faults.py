"""Faults of the PowerShell process itself: each is a named error, none is silent."""

import psutil
import pytest
from salt.exceptions import CommandExecutionError


def _standins(host) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            environ = proc.info["environ"] or {}
        except (psutil.Error, TypeError):
            continue
        if "powershell_standin.py" in cmdline and environ.get("ISCSI_SIM_STATE") == str(host.path):
            found.append(proc)
    return found


def test_powershell_missing(loaders, minion_setting, seeded, tmp_path):
    minion_setting({"iscsi.powershell": str(tmp_path / "no" / "powershell.exe")})
    with pytest.raises(
        CommandExecutionError, match=r"PowerShell not found at '.*no/powershell.exe'"
    ):
        loaders.modules.iscsi.get_sessions()


def test_hang_is_killed_after_the_timeout(loaders, minion_setting, seeded):
    minion_setting({"iscsi.timeout": 1.5})
    seeded.set_fault("hang", True)
    with pytest.raises(CommandExecutionError, match=r"did not answer 'get_sessions' within 1.5 s"):
        loaders.modules.iscsi.get_sessions()
    assert _standins(seeded) == []


def test_stderr_after_acting_names_what_was_done(loaders, seeded):
    """A fault after changes were made must say which changes were made."""
    seeded.set_fault("stderr", "WARNING: something odd")
    ids = [s["SessionIdentifier"] for s in seeded.sessions()]
    with pytest.raises(CommandExecutionError) as err:
        loaders.modules.iscsi.unregister_session(session_identifier=ids[0])
    assert "something odd" in str(err.value)
    assert f"already done: unregister {ids[0]}" in str(err.value)
    assert seeded.persistent_ids() == set(ids[1:])


@pytest.mark.parametrize(
    ("fault", "value", "message"),
    [
        ("garbage", True, r"printed unexpected output: 'Get-IscsiSession : "),
        (
            "crash",
            True,
            r"ended without answering 'get_sessions' \(exit code 255\); stderr: 'powershell stand-in: simulated crash'",
        ),
        ("exit_code", 3, r"exited with code 3"),
        ("stderr", "WARNING: noise", r"exited with code 0: 'WARNING: noise'"),
        (
            "stderr",
            '#< CLIXML <Objs Version="1.1.0.1"><S S="Error">Get-IscsiSession : boom_x000D__x000A_</S></Objs>',
            r"exited with code 0: 'Get-IscsiSession : boom'",
        ),
    ],
)
def test_process_faults(iscsi, seeded, fault, value, message):
    seeded.set_fault(fault, value)
    with pytest.raises(CommandExecutionError, match=message):
        iscsi.get_sessions()
    assert _standins(seeded) == []


def test_bad_timeout_setting(loaders, minion_setting, seeded):
    minion_setting({"iscsi.timeout": "soon"})
    with pytest.raises(Exception, match="iscsi.timeout must be a positive number"):
        loaders.modules.iscsi.get_sessions()


def test_process_finder_sees_a_running_stand_in(powershell, seeded):
    """Positive control: the leak checks above would see a stand-in left running."""
    import subprocess

    proc = subprocess.Popen([str(powershell), "-NoLogo"], stdin=subprocess.PIPE)
    try:
        assert [p.pid for p in _standins(seeded)] == [proc.pid]
    finally:
        proc.kill()
        proc.wait()


def test_clixml_progress_on_stderr_is_no_error(iscsi, seeded):
    """powershell.exe reports module-loading progress as CLIXML on stderr: not a failure."""
    seeded.set_fault(
        "stderr",
        '#< CLIXML <Objs Version="1.1.0.1"><Obj S="progress" RefId="0"><TN RefId="0">'
        "<T>System.Management.Automation.PSCustomObject</T></TN><MS>"
        '<I64 N="SourceId">1</I64></MS></Obj></Objs>',
    )
    assert len(iscsi.get_sessions()) == 3
