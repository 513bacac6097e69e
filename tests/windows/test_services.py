"""The initiator service stopped, and the target briefly unreachable (run last: disruptive)."""

import time

import pytest

from tests.windows import hostactions

pytestmark = pytest.mark.disruptive


def test_initiator_service_stopped(twin, target, session, recorder, kind):
    """The error shape of get_sessions and of the digest (the beacon's check) with MSiSCSI
    stopped; the mirror is taken while it still runs, then told the service stopped."""
    sims = {op: twin.mirror() for op in ("get_sessions", "digest")}
    stopped = hostactions.act("service", name="MSiSCSI", state="stop")
    recorder.fact("msiscsi_stop", stopped, kind)
    try:
        for op, sim in sims.items():
            request = {"op": op, "connections": True} if op == "get_sessions" else {"op": op}
            real = twin.request(request, sim=sim, faults={"service_stopped": True}, after=False)
            recorder.fact(f"service_stopped_{op}", real, kind)
            # Did asking start the service again (a demand-start WMI provider)?
            status = hostactions.act("service_status", name="MSiSCSI")
            recorder.fact(f"service_stopped_{op}_status_after", status, kind)
            assert real["ok"] is False, real
    finally:
        hostactions.act("service", name="MSiSCSI", state="start")


def test_connections_while_the_target_is_unreachable(twin, target, session, recorder, kind):
    """Get-IscsiConnection on a session that is reconnecting: WinTarget is stopped for a few
    seconds and get_sessions (with connections) sampled meanwhile."""
    samples = []
    hostactions.act("service", name="WinTarget", state="stop")
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            answer = twin.real({"op": "get_sessions", "connections": True})
            mine = [s for s in answer.get("sessions", []) if s["SessionIdentifier"] == session]
            samples.append({"ok": answer["ok"], "error": answer.get("error"), "session": mine})
            if mine and not mine[0]["IsConnected"]:
                # Reconnecting: check this answer against the simulator too.
                twin.request({"op": "get_sessions", "connections": True}, after=False)
                break
            time.sleep(1)
    finally:
        hostactions.act("service", name="WinTarget", state="start")
        recorder.fact("target_unreachable_samples", samples, kind)
        if target.get("virtual_disk"):
            repair = hostactions.act(
                "target_repair",
                target_name=target["target_name"],
                virtual_disk=target["virtual_disk"],
            )
            # Whether a RAM disk outlives a WinTarget restart (Microsoft: "not persisted").
            recorder.fact("target_after_wintarget_restart", repair, kind)
    reconnecting = [s for s in samples if s["session"] and not s["session"][0]["IsConnected"]]
    if not reconnecting:
        pytest.skip(
            "could not provoke a reconnecting session by stopping WinTarget for 20 s; "
            "what get_sessions returned is in the observations file"
        )
    assert all(s["ok"] for s in samples), samples
