"""The library's errors: Salt's own exception types, so the loader modules need no mapping.

``IscsiError`` is a ``CommandExecutionError`` (something went wrong on the host or on the
way to it); ``IscsiInputError`` is a ``SaltInvocationError`` (the caller's arguments or
configuration are wrong, and nothing was attempted).
"""

from __future__ import annotations

from salt.exceptions import CommandExecutionError, SaltInvocationError


class IscsiError(CommandExecutionError):
    """The host, PowerShell, WinRM or iscsiadm failed; the message says which and how."""


class ChannelError(IscsiError):
    """The channel to PowerShell failed (not started, died, timed out, garbled)."""


class LanguageModeError(ChannelError):
    """PowerShell runs in a restricted language mode (``mode``): the script cannot run."""

    def __init__(self, message: str, mode: str) -> None:
        super().__init__(message)
        self.mode = mode


class IscsiInputError(SaltInvocationError):
    """Bad arguments or configuration, found before anything was sent to the host."""


def safe_text(value: object, limit: int = 200) -> str:
    """``value`` quoted for a message or a log line: control and bidi characters escaped.

    User-given values (computer names, globs) are quoted with ``repr`` so that a newline,
    an ANSI escape or U+202E cannot forge a log line or garble a terminal.
    """
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    # repr escapes every non-printable character: controls, line separators, and the
    # format characters (Cf) that reorder text.
    return repr(text)
