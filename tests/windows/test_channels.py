"""Both local channels on a real host: a request that runs out of time, a stop mid-request.

A long request that changes nothing: unregister 10,000 session ids that do not exist
(each one a CDXML query that finds nothing).
"""

import threading
import time

import pytest

from saltext_win_iscsi.errors import ChannelError

MISSING = [f"ffffffffffffffff-{n:016x}" for n in range(10000)]


def test_a_request_that_runs_out_of_time(make_channel, kind, recorder):
    channel = make_channel()
    assert channel.request({"op": "get_sessions"})["ok"]  # warm: started, module loaded
    channel.timeout = 2.0
    started = time.monotonic()
    with pytest.raises(ChannelError, match=r"did not answer 'unregister' within 2 s") as err:
        channel.request({"op": "unregister", "ids": MISSING})
    took = time.monotonic() - started
    recorder.fact("timeout_error", {"message": str(err.value), "seconds": round(took, 2)}, kind)
    assert took < 30, took
    assert not channel.alive
    # The host is not wedged: a new channel answers at once.
    assert make_channel().request({"op": "get_sessions"})["ok"]


def test_a_stop_mid_request(make_channel, kind, recorder):
    channel = make_channel()
    assert channel.request({"op": "get_sessions"})["ok"]
    outcome = {}

    def run():
        try:
            outcome["answer"] = channel.request({"op": "unregister", "ids": MISSING})
        except ChannelError as exc:
            outcome["error"] = str(exc)
        outcome["ended"] = time.monotonic()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    time.sleep(2.0)
    stopped = time.monotonic()
    channel.kill()
    worker.join(timeout=60)
    recorder.fact(
        "stop_mid_request",
        {
            "error": outcome.get("error"),
            "answered": "answer" in outcome,
            "seconds_to_end": round(outcome.get("ended", stopped + 60) - stopped, 2),
        },
        kind,
    )
    assert not worker.is_alive(), "the request did not end within 60 s of the stop"
    assert "error" in outcome, outcome
    assert not channel.alive
    assert make_channel().request({"op": "get_sessions"})["ok"]


# PowerShell run by the test itself in the channel's runspace (fixed text; the secret to look
# for is an argument): the names of global variables whose text holds it.
GLOBALS_HOLDING = (
    "param($Needle)\n"
    "@(foreach ($v in Get-Variable -Scope Global) {\n"
    "    if (([string]$v.Value).Contains($Needle)) { $v.Name }\n"
    "})\n"
)


def test_no_secret_stays_in_the_runspace(make_channel, kind, target, recorder):
    """The main script runs in a local scope and clears what it decoded: after a request
    with a CHAP secret, no global variable of the runspace holds it."""
    if kind != "runspace":
        pytest.skip("a powershell.exe process ends with its request list")
    channel = make_channel()
    secret = "SaltRunspace-3"  # 14 bytes
    answer = channel.request(
        {
            "op": "connect_target",
            "node_address": target["target_iqn"],
            "address": target["portal"],
            "port": target["port"],
            "is_persistent": False,
            "authentication_type": "ONEWAYCHAP",
            "chap_username": "salt-test-chap",
        },
        {"chap_secret": secret},
    )
    ps = channel._ps  # the runspace's PowerShell, for this look inside only
    ps.Commands.Clear()
    ps.AddScript(GLOBALS_HOLDING).AddArgument(secret)
    holding = [str(name) for name in ps.Invoke()]
    recorder.fact("runspace_globals_holding_the_secret", holding, kind)
    recorder.fact("runspace_connect_with_chap", {"ok": answer["ok"]}, kind)
    assert holding == []


def test_an_installed_main_script_runs_with_file(tmp_path, recorder):
    """iscsi.script_path: a copy of main.ps1 run with -File -Serve (unsigned here: it runs
    where the execution policy allows local unsigned scripts; docs/security.md)."""
    from saltext_win_iscsi.windows.channels import ProcessChannel, default_powershell
    from saltext_win_iscsi.windows.powershell.scripts import MAIN

    path = tmp_path / "main.ps1"
    path.write_bytes(MAIN.replace("\n", "\r\n").encode("utf-8"))
    try:
        channel = ProcessChannel(default_powershell(), 120.0, str(path))
        answer = channel.request({"op": "digest"})
        channel.close()
    except ChannelError as exc:
        recorder.fact("file_mode_refused", str(exc))
        pytest.skip(f"-File refused here (execution policy?): {exc}")
    recorder.fact("file_mode_digest", {"ok": answer["ok"], "logins": answer.get("logins")})
    assert answer["ok"], answer
