"""What the real host shows of a session's disks (run on Windows only; see README.md here).

Whether Get-Disk finds the disk through the session, through its connections, with MPIO
(switch clustered_disk_association where a clustered disk shows), what the script reports
(DisksUnknown), and which disk states make a logout fail (0xEFFF0040).
"""

import pytest

from tests.windows import hostactions


def sessions_of(channel, target):
    answer = channel.request({"op": "get_sessions", "connections": True, "disks": True})
    assert answer["ok"], answer
    iqn = target["target_iqn"].lower()
    return [s for s in answer["sessions"] if s["TargetNodeAddress"].lower() == iqn]


def test_which_associations_find_the_disks(channel, target, recorder, kind):
    hostactions.connect(target, multipath=True)
    try:
        hostactions.connect(target, multipath=True)  # a second MPIO session, if Windows lets
    except hostactions.HostActionError as exc:
        recorder.fact("second_mpio_session_refused", str(exc)[:2000], kind)
    seen = hostactions.act("disk_associations", target=target["target_iqn"])
    recorder.fact("disk_associations", seen, kind)
    reported = sessions_of(channel, target)
    recorder.fact("disks_as_the_script_reports", reported, kind)
    clustered = [d for s in seen["sessions"] for d in s["disks"] if d["IsClustered"]]
    if clustered:
        by_session = all(isinstance(n, int) for s in seen["sessions"] for n in s["by_session"])
        value = "session" if by_session else "connection"
        recorder.behaviour("clustered_disk_association", value, kind)
    # The script unions both associations: it shows every disk either finds.
    for found, shown in zip(seen["sessions"], reported, strict=True):
        numbers = {n for n in found["by_session"] + found["by_connection"] if isinstance(n, int)}
        assert {d["Number"] for d in shown["Disks"]} == numbers, (found, shown)


@pytest.mark.parametrize("state", ["offline", "online", "volume"])
def test_which_disk_states_make_logout_fail(channel, target, recorder, kind, state):
    sid = hostactions.connect(target)["SessionIdentifier"]
    try:
        disks = hostactions.act("disk_state", target=target["target_iqn"], state=state)
        recorder.fact(f"disk_{state}", disks, kind)
        answer = channel.request(
            {"op": "disconnect", "sessions": [{"id": sid, "node_address": target["target_iqn"]}]}
        )
        recorder.fact(f"logout_with_disk_{state}", answer, kind)
        assert answer["ok"], answer
    finally:
        # A disk left online keeps the session from logging out: the clean-up needs it off.
        if sessions_of(channel, target):
            hostactions.act("disk_state", target=target["target_iqn"], state="offline")


def test_a_bound_volume_is_reported_and_unbound(channel, target, recorder, kind):
    """The persistently bound list (iscsicli BindPersistentVolumes): what its entries look
    like, whether get_sessions sees the volume as bound, and whether unbind_volumes (iscsicli
    RemovePersistentDevices <path>) takes it off."""
    sid = hostactions.connect(target, persistent=True)["SessionIdentifier"]
    before = hostactions.act("bound_list")
    try:
        hostactions.act("disk_state", target=target["target_iqn"], state="volume")
        bound = hostactions.act("bind_volumes")
        recorder.fact("bind_persistent_volumes", bound, kind)
        (session,) = [s for s in sessions_of(channel, target) if s["SessionIdentifier"] == sid]
        volumes = [v for d in session["Disks"] for v in d["Volumes"]]
        recorder.fact("bound_volumes_as_reported", volumes, kind)
        answer = channel.request({"op": "unbind_volumes", "ids": [sid]})
        recorder.fact("unbind_volumes", answer, kind)
        after = hostactions.act("bound_list")
        recorder.fact("bound_list_after_unbind", after, kind)
        assert answer["ok"], answer
        assert sorted(after) == sorted(before), (before, after)
    finally:
        if sessions_of(channel, target):
            hostactions.act("disk_state", target=target["target_iqn"], state="offline")
