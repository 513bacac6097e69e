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


def nodes(script: str, kind: str) -> list[tree_sitter.Node]:
    """Every node of type ``kind`` in ``script``'s tree, in source order."""
    found, stack = [], [parse(script).root_node]
    while stack:
        node = stack.pop()
        if node.type == kind:
            found.append(node)
        stack.extend(reversed(node.children))
    return found


def commands(script: str) -> list[tuple[str, list[str], str]]:
    """``(name, parameters, text)`` of every command invocation in ``script``.

    ``parameters`` are the ``-Name`` tokens (as written) with the token after each, so that
    ``-ErrorAction Stop`` shows as ``"-ErrorAction Stop"``.
    """
    found = []
    for node in nodes(script, "command"):
        name = node.child_by_field_name("command_name") or next(
            (c for c in node.children if c.type == "command_name"), None
        )
        if name is None:
            continue
        elements = next((c for c in node.children if c.type == "command_elements"), None)
        tokens = [
            c.text.decode()
            for c in (elements.children if elements else [])
            if c.type != "command_argument_sep"
        ]
        parameters = [
            f"{tok} {tokens[i + 1]}" if i + 1 < len(tokens) else tok
            for i, tok in enumerate(tokens)
            if tok.startswith("-")
        ]
        found.append((name.text.decode(), parameters, node.text.decode()))
    return found


def function_names(script: str) -> set[str]:
    return {n.text.decode().lower() for n in nodes(script, "function_name")}
