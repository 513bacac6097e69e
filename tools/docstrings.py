"""The loader modules' docstrings render as reStructuredText, every public function of
the execution module and the runner has a ``CLI Example:`` (Salt's convention) and every
state an SLS example (a ``.. code-block:: yaml``), for ``./dev lint``; ``./dev docs``
publishes them as the reference.

The modules are read with ``ast``, not imported: no Salt loader, no dunders needed.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import docutils.core
import docutils.nodes
import docutils.utils

ROOT = Path(__file__).resolve().parents[1] / "salt"
FACES = ("_modules", "_states", "_beacons", "_runners")
WITH_CLI_EXAMPLE = ("_modules", "_runners")
WITH_SLS_EXAMPLE = ("_states",)


def _problems(text: str) -> list[str]:
    """docutils' warnings and errors for one docstring."""
    settings = {"report_level": 5, "halt_level": 5, "warning_stream": False}
    doctree = docutils.core.publish_doctree(text, settings_overrides=settings)
    return [
        node.astext().replace("\n", " ")[:300]
        for node in doctree.findall(docutils.nodes.system_message)
        if node["level"] >= docutils.utils.Reporter.WARNING_LEVEL
    ]


def check(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    documented = [("module", ast.get_docstring(tree))]
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            doc = ast.get_docstring(node)
            documented.append((node.name, doc))
            if path.parent.name in WITH_CLI_EXAMPLE and "CLI Example:" not in (doc or ""):
                found.append(f"{path}: {node.name}: no 'CLI Example:'")
            if path.parent.name in WITH_SLS_EXAMPLE and ".. code-block:: yaml" not in (doc or ""):
                found.append(f"{path}: {node.name}: no SLS example ('.. code-block:: yaml')")
    for name, doc in documented:
        if not doc:
            found.append(f"{path}: {name}: no docstring")
            continue
        found += [f"{path}: {name}: {problem}" for problem in _problems(doc)]
    return found


def main() -> int:
    found = [
        p for face in FACES for path in sorted((ROOT / face).glob("*.py")) for p in check(path)
    ]
    for problem in found:
        print(problem)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
