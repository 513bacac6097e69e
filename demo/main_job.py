"""The job this extension exists for, with real Salt daemons on a simulated Windows host.

A salt-master (reactor on ``salt/beacon/*/iscsi/violation``, the runner synced) and a
Windows minion whose PowerShell is the simulated host's stand-in
(``tests/support/simhost``), plus, with ``--linux``, a Linux minion on real iSCSI
sessions where the initiator VM can run: the pillar policy, a highstate with ``test=True`` and then for
real, a registration by hand undone by the beacon and the reactor (timed), and the fleet
report with its HTML page.
"""

from __future__ import annotations

import concurrent.futures
import time

import salt.utils.yaml

from demo import daemons, linux, show
from demo.windows import WindowsSide
from tests.conftest import REPO_ROOT

POLICY = {
    "iscsi": {
        "policy": {
            "not_persistent": [{"target": "*:testiscsi-*"}],
            "absent": [{"target": "iqn.1991-05.com.contoso:old-*"}],
            "defaults": {"node_startup": "manual"},  # Linux only: iscsid.conf
        }
    }
}
# pillar.example says interval 5; 1 s here, so the demo does not wait for it.
BEACONS = {"beacons": {"iscsi": [{"interval": 1}, {"backoff_max": 4}]}}
REPORT_PAGE = REPO_ROOT / "artifacts" / "demo-report.html"


def states_table(ret: dict) -> None:
    """One row per state: result, number of changes, the comment's first sentence."""
    rows = []
    for run in sorted(ret.values(), key=lambda r: r.get("__run_num__", 0)):
        comment = str(run.get("comment", "")).split(". ")[0]
        result = "None (test)" if run["result"] is None else run["result"]
        rows.append([run["__id__"], result, len(run.get("changes") or {}), comment])
    show.table(["state", "result", "changes", "comment"], rows)


def highstate(fleet: daemons.Fleet, sides: list, *args: str) -> None:
    ret = fleet.salt("state.highstate", *args)
    for side in sides:
        show.note(f"{side.minion.id}:")
        states_table(ret[side.minion.id])


def remediate(fleet: daemons.Fleet, sides: list) -> None:
    """A registration by hand on every side at once, each undone by beacon and reactor:
    timed (waiting on the host, each side in a thread of its own), with the events that
    did it."""
    since = time.time()
    for side in sides:
        show.note(f"{side.minion.id}: an admin runs {side.register_by_hand()}")
    with concurrent.futures.ThreadPoolExecutor(len(sides)) as pool:
        took = list(pool.map(lambda side: daemons.wait_for(side.undone, step=0.05), sides))
    for side, seconds in zip(sides, took, strict=True):
        show.note(f"{side.minion.id}: undone {seconds:.2f} s later, nobody typing anything:")
        chain = [
            *fleet.events(f"salt/beacon/{side.minion.id}/iscsi/*", since),
            *[
                e
                for e in fleet.events("salt/job/*/new", since)
                if e.data.get("fun") == "state.apply"
                and side.minion.id in e.data.get("minions", [])
            ],
        ]
        chain.sort(key=lambda e: e.stamp)
        show.table(
            ["+seconds", "on the master's event bus"],
            [[f"{e.stamp.timestamp() - since:.2f}", e.tag] for e in chain],
        )


def report(fleet: daemons.Fleet) -> None:
    REPORT_PAGE.parent.mkdir(exist_ok=True)
    found = fleet.salt_run("iscsi.report", f"html={REPORT_PAGE}", "days=1")
    show.table(
        ["minion", "status", "violations", "remediation runs", "error"],
        [
            [h["minion"], h["status"], h["violations"], h["remediations"], h["error"]]
            for h in found["hosts"]
        ],
    )
    show.table(
        ["time", "started by", "minion", "changed"],
        [[r["time"], r["started by"], r["minion"], r["changed"]] for r in found["remediation"]],
    )
    show.note(f"HTML page: {REPORT_PAGE}")


def linux_side(fleet: daemons.Fleet, wanted: bool) -> tuple[object | None, str]:
    """The Linux side when ``--linux`` asked for it and the VM can run, else why not.

    Off by default: the VM runs under software emulation (no KVM) and takes a core of its
    own; on 2 cores it made the demo more than twice as long (docs/quickstart.md)."""
    why_not = linux.unavailable()
    if why_not is not None:
        return None, f"Linux minion skipped: {why_not}."
    if not wanted:
        return (
            None,
            "Linux minion: ./dev demo --linux adds one on real sessions (a qemu VM, slower).",
        )
    return linux.LinuxSide(fleet), ""


def main(args: list[str]) -> None:
    """``--linux``: also a Linux minion on real iSCSI sessions, where the VM can run."""
    if set(args) - {"--linux"}:
        raise SystemExit("usage: ./dev demo [--linux] | ./dev demo walkthrough")
    steps = show.Steps()
    print("The main job: a pillar policy enforced at highstate and automatically, and reported.")
    print("Real salt-master and salt-minion daemons; Windows is simulated (tests/support/simhost).")
    with daemons.fleet() as fleet:
        steps.step("A salt-master with the reactor, and the minions")
        sides: list = [WindowsSide(fleet)]
        guest, why_not = linux_side(fleet, "--linux" in args)
        if guest is not None:
            sides.append(guest)
        try:
            with concurrent.futures.ThreadPoolExecutor(len(sides)) as pool:
                list(pool.map(lambda side: side.start(), sides))
            for side in sides:
                show.note(side.describe())
            if why_not:
                show.note(why_not)
            for side in sides:
                side.table()

            steps.step("The policy, in pillar (pillar.example has every key)")
            fleet.set_pillar(POLICY)
            fleet.salt("saltutil.refresh_pillar", "wait=True")
            for line in salt.utils.yaml.safe_dump(POLICY, default_flow_style=False).splitlines():
                show.note(line)

            steps.step("What a highstate would change", "salt '*' state.highstate test=True")
            highstate(fleet, sides, "test=True")

            steps.step("The highstate, for real", "salt '*' state.highstate")
            highstate(fleet, sides)
            for side in sides:
                side.table()

            steps.step("Automatic remediation: the beacon (in pillar) and the reactor")
            show.note(
                "pillar: " + salt.utils.yaml.safe_dump(BEACONS, default_flow_style=True).strip()
            )
            fleet.set_pillar({**POLICY, **BEACONS})
            fleet.salt("saltutil.refresh_pillar", "wait=True")
            for side in sides:
                daemons.wait_for(side.beacon_ticked)
            remediate(fleet, sides)

            steps.step(
                "The fleet report",
                f"salt-run iscsi.report days=1 html={REPORT_PAGE.relative_to(REPO_ROOT)}",
            )
            daemons.wait_for(lambda: not any(fleet.salt("saltutil.running").values()), step=0.5)
            report(fleet)
            steps.step("Stopping the daemons")
        finally:
            with concurrent.futures.ThreadPoolExecutor(len(sides)) as pool:
                list(pool.map(lambda side: side.close(), sides))
    print(
        f"\nDone in {steps.elapsed():.0f} s. The module alone, step by step: ./dev demo walkthrough"
    )
