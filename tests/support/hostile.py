"""A corpus of hostile strings for injection tests, built systematically.

Base payloads (PowerShell syntax that would run code or break quoting if pasted into a
script: every quote kind incl. Unicode look-alikes PowerShell treats as quotes, subexpressions,
backticks, separators, redirections, comments, here-strings, JSON breakers, the response
marker, control characters, line breaks incl. U+0085/U+2028, homoglyphs, wildcards) are
combined with wrappers (as is, inside an IQN, after a quote, doubled, padded) and a few very
long strings.
"""

from __future__ import annotations

BASE = [
    "'",
    '"',
    "`",
    "\u2018",
    "\u2019",
    "\u201a",
    "\u201b",
    "\u201c",
    "\u201d",
    "\u201e",
    "\uff07",
    "\uff02",
    "$(Remove-Item C:\\ -Recurse)",
    "${env:PATH}",
    "$env:PATH",
    "@(1,2)",
    "@{a=1}",
    "`$x",
    "`n",
    "; Remove-Item C:\\ -Recurse",
    "| Out-File C:\\x",
    "& calc.exe",
    "&& calc",
    "|| calc",
    "> C:\\x",
    "2>&1",
    "# comment",
    "<# block",
    "#>",
    "@'\nx\n'@",
    '@"\nx\n"@',
    "\n",
    "\r",
    "\r\n",
    "\u0085",
    "\u2028",
    "\u2029",
    "\x00",
    "\x07",
    "\x1b[2J",
    '"}',
    '\\"}',
    "\\u0000",
    "{",
    "}",
    "[",
    "]",
    "*",
    "?",
    "[a-z]",
    "%PATH%",
    "iex 'calc'",
    "Invoke-Expression calc",
    "ISCSI1 eyJ2IjogMn0=",
    "eyJvcCI6ICJ1bnJlZ2lzdGVyIn0=",
    "\u0456qn.1991-05.com.contoso:x",  # Cyrillic i
    "ｉｑｎ.1991-05.com.contoso:x",  # fullwidth
    "$null",
    "$true",
    "-SessionIdentifier x",
    "--%",
    "<script>",
    "\t",
    "\\",
    "\\\\server\\share",
]
WRAPPERS = [
    "{}",
    "iqn.1991-05.com.contoso:{}",
    "x'{}'",
    'x"{}"',
    "{}{}",
    "  {}  ",
]


def hostile_values() -> list[str]:
    """At least 200 distinct hostile strings."""
    values: dict[str, None] = {}
    for base in BASE:
        for wrapper in WRAPPERS:
            values[
                wrapper.format(base, base) if wrapper.count("{}") == 2 else wrapper.format(base)
            ] = None
    for size in (10_000, 100_000):
        values["'" * size] = None
        values[("$(x)" * size)[:size]] = None
    return list(values)


def nonblank(values: list[str]) -> list[str]:
    """The values a selector accepts (the module rejects empty or blank ones)."""
    return [v for v in values if v.strip()]
