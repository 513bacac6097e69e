"""Parse PowerShell with the tree-sitter PowerShell grammar (test helper).

The project's rule: every PowerShell script the extension sends must parse cleanly, and
no value may change a script's structure. ``errors`` checks the first, ``shape`` lets a
test compare the structure of two scripts.
"""

from __future__ import annotations

from functools import cache

import tree_sitter
import tree_sitter_powershell

__all__ = ["errors", "parse", "shape"]


@cache
def _parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


def parse(script: str) -> tree_sitter.Tree:
    """The syntax tree of ``script`` (UTF-8 encoded for the parser)."""
    return _parser().parse(script.encode("utf-8"))


def errors(script: str) -> list[str]:
    """Every ERROR and MISSING node of ``script``'s tree; empty if it parses cleanly.

    Each entry reads ``"ERROR at 3:14: '<text>'"`` or ``"MISSING '}' at 9:1"`` with
    1-based line and column. The whole tree is walked, not just the root's flag.
    """
    found = []
    stack = [parse(script).root_node]
    while stack:
        node = stack.pop()
        line, column = node.start_point.row + 1, node.start_point.column + 1
        if node.is_missing:
            found.append(f"MISSING {node.type!r} at {line}:{column}")
        elif node.is_error:
            text = (node.text or b"").decode("utf-8", "replace")
            found.append(f"ERROR at {line}:{column}: {text[:80]!r}")
        stack.extend(reversed(node.children))
    return found


def shape(script: str) -> str:
    """The s-expression of ``script``'s tree: its structure, without the literal text."""
    return str(parse(script).root_node)
