"""The benchmark suite: ``./dev bench`` (or ``python -m bench``). Not part of the tests.

Prints, for each figure, our number, the naive alternative measured in the same run (for
the fleet report: linear growth from its smallest fleet), and their ratio; writes the same to bench/results.json. The Windows side is the simulated
host; powershell.exe's start-up cost is modelled by the stand-in (``--ps-startup``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench import fanout, latency, processes, remediation, report, scale, tick
from bench.common import SIMULATED


def main() -> None:
    parser = argparse.ArgumentParser(prog="./dev bench")
    parser.add_argument(
        "--ps-startup", type=float, default=0.3, help="modelled powershell.exe start-up, s"
    )
    parser.add_argument(
        "--no-daemons", action="store_true", help="skip the salt-master/minion latency run"
    )
    parser.add_argument("--hosts", type=int, default=50, help="WinRM fan-out hosts")
    args = parser.parse_args()
    print(f"{SIMULATED}; PowerShell start-up modelled as {args.ps_startup} s\n")
    rows, results = [], {"ps_startup": args.ps_startup}

    print(
        "1. Unregister N sessions: PowerShell processes and seconds (ours: one call; naive: a call per session)"
    )
    results["processes"] = []
    for n in (1, 10, 100, 1000):
        r = processes.measure(n, args.ps_startup)
        results["processes"].append(r)
        mark = " (naive extrapolated from 100)" if r["naive_extrapolated"] else ""
        print(
            f"   N={n:5}: ours {r['ours_processes']} process, {r['ours_s']:.2f} s | naive "
            f"{r['naive_processes']} processes, {r['naive_s']:.1f} s{mark} | "
            f"time ratio {r['ours_s'] / r['naive_s']:.3f}"
        )
        rows.append(
            (
                f"unregister N={n}: processes",
                r["ours_processes"],
                r["naive_processes"],
                r["ours_processes"] / r["naive_processes"],
                r["ours_processes"] == 1,
            )
        )

    print(
        "\n2. PowerShell processes per remediation run (ours: the not_persistent state; naive: "
        "a module call per step)"
    )
    r = remediation.measure()
    results["remediation"] = r
    print(f"   ours {r['ours_processes']} | naive {r['naive_processes']}")
    rows.append(
        (
            "processes per remediation run",
            r["ours_processes"],
            r["naive_processes"],
            r["ours_processes"] / r["naive_processes"],
            r["ours_processes"] == 1,
        )
    )

    print(
        "\n3. Beacon tick with nothing new (ours: Monitor.tick, persistent-login digest on a kept "
        "PowerShell; naive: new process + full query)"
    )
    results["tick"] = []
    for sessions in (3, 1000):
        r = tick.measure(ticks=30, ps_startup=args.ps_startup, sessions=sessions)
        results["tick"].append(r)
        print(
            f"   {sessions:5} sessions: ours {r['idle_tick_s'] * 1000:.1f} ms ({r['idle_processes']} processes) | "
            f"naive {r['full_query_s'] * 1000:.0f} ms | ratio {r['ratio']:.4f}"
        )
        rows.append(
            (
                f"idle tick, {sessions} sessions (s)",
                r["idle_tick_s"],
                r["full_query_s"],
                r["ratio"],
                r["ratio"] < 0.01,
            )
        )

    if not args.no_daemons:
        print("\n4. Registration -> remediated through real master, minion, beacon, reactor")
        r = latency.measure()
        results["latency"] = r
        print(
            f"   beacon interval {r['beacon_interval_s']} s: median {r['median_s']:.2f} s, worst {r['worst_s']:.2f} s | "
            f"naive: highstate every {r['naive_highstate_period_s']:.0f} s, {r['naive_expected_s']:.0f} s expected"
        )
        target = r["worst_s"] <= r["beacon_interval_s"] + 2
        rows.append(
            (
                "remediation median (s)",
                r["median_s"],
                r["naive_expected_s"],
                r["median_s"] / r["naive_expected_s"],
                target,
            )
        )

    print("\n5. get_sessions and policy evaluation vs sessions on one host")
    results["scale"] = []
    for n in (10, 1000, 10000):
        r = scale.measure(n)
        results["scale"].append(r)
        print(
            f"   {n:6} sessions: get_sessions {r['get_sessions_s']:.2f} s, policy {r['policy_s']:.2f} s | "
            f"naive policy {r['naive_policy_s']:.1f} s (extrapolated from 100)"
        )
    first, last = results["scale"][0], results["scale"][-1]
    growth = last["policy_s"] / first["policy_s"]
    print(f"   policy evaluation grew {growth:.0f}x for 1000x sessions (linear would be 1000x)")
    rows.append(
        (
            "policy, 10k sessions (s)",
            last["policy_s"],
            last["naive_policy_s"],
            last["policy_s"] / last["naive_policy_s"],
            growth <= 1000,
        )
    )

    print(f"\n6. WinRM fan-out to {args.hosts} hosts")
    r = fanout.measure(args.hosts, 10, args.ps_startup)
    results["fanout"] = r
    print(
        f"   sequential {r['sequential_s']:.2f} s | throttle_limit=10 {r['throttled_s']:.2f} s | {r['speedup']:.1f}x"
    )
    rows.append(
        (
            f"fan-out {args.hosts} hosts (s)",
            r["throttled_s"],
            r["sequential_s"],
            r["throttled_s"] / r["sequential_s"],
            r["speedup"] >= 5,
        )
    )

    print("\n7. The fleet report from recorded answers: build, rows, JUnit, HTML")
    results["report"] = report.run()
    report.show(results["report"])
    first, last = results["report"][0], results["report"][-1]
    scale_up = last["minions"] / first["minions"]
    linear_s = first["total_s"] * scale_up  # the largest fleet at the smallest's cost per minion
    rows.append(
        (
            f"report, {last['minions']} minions (s)",
            last["total_s"],
            linear_s,
            last["total_s"] / linear_s,
            report.growth(results["report"]) <= scale_up,
        )
    )

    print("\nfigure                               ours        naive       ratio    target met")
    for name, ours, naive, ratio, met in rows:
        print(f"{name:36} {ours:<11.4g} {naive:<11.4g} {ratio:<8.4f} {'yes' if met else 'NO'}")
    Path(__file__).with_name("results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
