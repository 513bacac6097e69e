"""How the demo prints: numbered steps, the command a person would type, small tables."""

from __future__ import annotations

import sys
import time

BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")
WIDEST = 70  # characters of one cell; longer ones are cut with "..."


class Steps:
    """Numbered steps, each with the seconds since the demo started."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.number = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def step(self, title: str, *commands: str) -> None:
        self.number += 1
        print(f"\n{BOLD}{self.number}. {title}{RESET}  {DIM}[{self.elapsed():.0f} s]{RESET}")
        for command in commands:
            print(f"   $ {command}")
        sys.stdout.flush()


def note(text: str) -> None:
    print(f"   {text}", flush=True)


def _cell(value: object) -> str:
    text = " ".join(str("" if value is None else value).split())
    return text if len(text) <= WIDEST else text[: WIDEST - 3] + "..."


def table(headers: list[str], rows: list[list[object]]) -> None:
    """A plain text table, indented under its step."""
    cells = [[_cell(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "   " + "  ".join("-" * w for w in widths)
    print("   " + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print(line)
    for row in cells:
        print("   " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    sys.stdout.flush()
