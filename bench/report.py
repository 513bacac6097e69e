"""The fleet report at fleet scale: 100, 1,000 and 10,000 minions' recorded answers.

The answers are the shapes Salt delivers (``tests/support/fleet_samples.py``): a mix of
compliant, violating (five violations each), failing and silent minions, every minion's
check naming its initiator and one in fifty sharing a cloned name. Timed: assembling the
report (``report.build``), its rows (``as_return``), JUnit and HTML; with the HTML page's
size. Growth from 100 to 10,000 minions should be about 100x (linear) or less.
"""

from __future__ import annotations

import time

from saltext_win_iscsi.fleet import html, junit, report
from tests.support import fleet_samples

ROLES = ("compliant",) * 7 + ("violating", "faulty", "silent")
CLONED = "iqn.1991-05.com.microsoft:cloned-template"


def answers(n: int) -> tuple[list[str], dict]:
    minions = [f"win-{i:05d}" for i in range(n)]
    recorded = fleet_samples.answers({m: ROLES[i % len(ROLES)] for i, m in enumerate(minions)})
    for i, (minion, check) in enumerate(recorded["check"].items()):
        if isinstance(check, dict):
            name = CLONED if i % 50 == 0 else f"iqn.1991-05.com.microsoft:{minion}"
            check["initiators"] = [name]
    return minions, recorded


def measure(n: int) -> dict:
    minions, recorded = answers(n)
    timings = {}
    start = time.perf_counter()
    fleet = report.build("*", "2025-11-25 10:30:00 +0000", minions, recorded, remediation=[])
    timings["build_s"] = time.perf_counter() - start
    start = time.perf_counter()
    rows = fleet.as_return()
    timings["rows_s"] = time.perf_counter() - start
    start = time.perf_counter()
    xml = junit.render(fleet)
    timings["junit_s"] = time.perf_counter() - start
    start = time.perf_counter()
    page = html.render(fleet)
    timings["html_s"] = time.perf_counter() - start
    assert len(rows["hosts"]) == n and rows["duplicate initiators"]
    # Usable at this size: the summary, then the filters, before the host list.
    assert page.index('class="cards"') < page.index('id="search"') < page.index('id="hosts"')
    return {
        "minions": n,
        **timings,
        "total_s": sum(timings.values()),
        "html_bytes": len(page.encode("utf-8")),
        "junit_bytes": len(xml.encode("utf-8")),
        "violation_rows": len(rows["violations"]),
    }


SIZES = (100, 1000, 10000)


def run(repeat: int = 3) -> list[dict]:
    """Each size's fastest of ``repeat`` runs (the machine is shared: the minimum is the
    cost, the rest is other work)."""
    return [min((measure(n) for _ in range(repeat)), key=lambda r: r["total_s"]) for n in SIZES]


def growth(results: list[dict]) -> float:
    """How much the total time grew from the smallest to the largest fleet."""
    return results[-1]["total_s"] / results[0]["total_s"]


def show(results: list[dict]) -> None:
    for r in results:
        print(
            f"   {r['minions']:6} minions: build {r['build_s']:.3f} s, rows {r['rows_s']:.3f} s, "
            f"JUnit {r['junit_s']:.3f} s, HTML {r['html_s']:.3f} s; total {r['total_s']:.2f} s "
            f"({r['total_s'] / r['minions'] * 1e6:.0f} us/minion) | HTML "
            f"{r['html_bytes'] / 1e6:.2f} MB, JUnit {r['junit_bytes'] / 1e6:.2f} MB"
        )
    scale = results[-1]["minions"] / results[0]["minions"]
    print(
        f"   the report grew {growth(results):.0f}x for {scale:.0f}x minions (linear: {scale:.0f}x)"
    )


if __name__ == "__main__":
    show(run())
