"""Write ``scripts.py`` from the ``.ps1`` files: ``python -m saltext_win_iscsi.windows.powershell.generate``.

``--check`` exits 1 (and writes nothing) when ``scripts.py`` is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = {"BOOTSTRAP": "bootstrap.ps1", "MAIN": "main.ps1"}
TARGET = HERE / "scripts.py"


def render(directory: Path = HERE) -> str:
    """The text ``scripts.py`` must hold for the ``.ps1`` files in ``directory``."""
    parts = ['"""Generated from bootstrap.ps1 and main.ps1 by ``./dev scripts``: do not edit."""\n']
    for name, filename in SOURCES.items():
        lines = (directory / filename).read_text(encoding="utf-8").split("\n")
        body = "".join(f"        {line!r},\n" for line in lines)
        parts.append(f'\n# {filename}\n{name} = "\\n".join(\n    [\n{body}    ]\n)\n')
    return "".join(parts)


def main(argv: list[str]) -> int:
    wanted = render()
    current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
    if current == wanted:
        print(f"{TARGET.name} is up to date")
        return 0
    if "--check" in argv:
        print(f"{TARGET} is stale: run ./dev scripts", file=sys.stderr)
        return 1
    TARGET.write_text(wanted, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
