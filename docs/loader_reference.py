"""Sphinx extension for the reference pages of the loader modules.

- ``.. loader-summary:: modules`` is an autosummary table of every public function of
  ``salt/_modules/*.py`` (or ``states``, ``beacons``, ``runners``), found with ``ast`` as
  ``tools.docstrings`` finds them, each named as Salt calls it (``iscsi.get_sessions``):
  a new function appears without editing the page.
- After reading, every public loader function must be documented (autodoc): one missing
  is a warning, so an error under ``./dev docs`` (``-W``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.ext.autosummary import Autosummary
from sphinx.util import logging

SALT = Path(__file__).resolve().parents[1] / "salt"
KINDS = ("modules", "states", "beacons", "runners")

logger = logging.getLogger(__name__)


def public_functions(kind: str) -> Iterator[tuple[str, str]]:
    """``(module, function)`` for each public function of ``salt/_<kind>``, in file order."""
    for path in sorted((SALT / f"_{kind}").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                yield path.stem, node.name


class LoaderSummary(Autosummary):
    """An autosummary of one loader kind's public functions (names as the wheel has them)."""

    required_arguments = 1
    optional_arguments = 0
    has_content = False
    option_spec: dict = {}

    def run(self) -> list:
        kind = self.arguments[0]
        if kind not in KINDS:
            raise self.error(f"loader-summary: {kind!r} is none of {', '.join(KINDS)}")
        names = [f"saltext_win_iscsi.{kind}.{m}.{f}" for m, f in public_functions(kind)]
        self.content = StringList(names, source=self.get_source_info()[0])
        self.arguments = []
        self.options = {"nosignatures": True}
        return super().run()

    def get_items(self, names: list[str]) -> list[tuple[str, str, str, str]]:
        """Each function shown as Salt calls it: ``iscsi.get_sessions``."""
        items = super().get_items(names)
        return [(".".join(real.split(".")[-2:]), sig, text, real) for _, sig, text, real in items]


def check(app: Sphinx, env: BuildEnvironment) -> None:
    documented = set(env.get_domain("py").objects)
    for kind in KINDS:
        for module, function in public_functions(kind):
            name = f"saltext_win_iscsi.{kind}.{module}.{function}"
            if name not in documented:
                logger.warning("the reference does not document %s", name)


def setup(app: Sphinx) -> dict:
    app.add_directive("loader-summary", LoaderSummary)
    app.connect("env-check-consistency", check)
    return {"parallel_read_safe": True}
