"""``luns.wait_for_disks``: how long ``iscsi.connected`` waits for a new session's disks,
and what it says, on a clock the test moves."""

from saltext_win_iscsi import luns
from saltext_win_iscsi.outcome import Outcome
from saltext_win_iscsi.spec import TargetSpec

TARGET = "iqn.1991-05.com.contoso:db-01"
DISK = {"Number": 4, "FriendlyName": "LIO-ORG disk"}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def wait(answers: list[list[dict]], timeout: float = 10) -> tuple[Outcome, int, float]:
    """The outcome, the number of reads and the seconds waited; the last answer repeats."""
    clock, reads = Clock(), []

    def read() -> list[dict]:
        reads.append(clock.now)
        return answers[min(len(reads), len(answers)) - 1]

    report = Outcome()
    luns.wait_for_disks(read, TargetSpec(TARGET), timeout, report, clock, clock.sleep)
    return report, len(reads), clock.now


def session(**fields) -> dict:
    return {"TargetNodeAddress": TARGET, "Disks": [], **fields}


def test_a_disk_that_appears_ends_the_wait():
    report, reads, waited = wait([[session()], [session()], [session(Disks=[DISK])]])
    assert report.errors == [] and reads == 3 and waited == 2 * luns.POLL


def test_no_disk_within_the_timeout_is_an_error():
    report, reads, waited = wait([[session()]], timeout=3)
    assert waited == 3 and reads == 3 / luns.POLL + 1
    (error,) = report.errors
    assert error.startswith(
        f"session up, no disk: {TARGET} is connected but shows no disk after 3 s"
    )


def test_disks_the_host_cannot_tell_are_said_so_at_once():
    report, reads, waited = wait([[session(DisksUnknown=True)]])
    assert report.errors == [] and reads == 1 and waited == 0
    assert report.comments == [
        f"{TARGET}: not waiting for disks: its disks are unknown (none found, but the "
        "cluster service runs: Windows may not associate clustered disks with the session)"
    ]


def test_other_targets_sessions_do_not_count():
    other = {"TargetNodeAddress": "iqn.1991-05.com.contoso:other", "Disks": [DISK]}
    report, _, waited = wait([[other, session()]], timeout=1)
    assert waited == 1 and len(report.errors) == 1
