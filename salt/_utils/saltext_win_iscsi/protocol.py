"""The wire format between Python and the fixed PowerShell script: facts stated once.

A request is one line: base64 of a UTF-8 JSON document ``{"v": VERSION, "op": ...}``.
The answer is one line: ``RESPONSE_MARKER`` + base64 of a UTF-8 JSON document with
``v``, ``ok`` and the op's fields, or ``error`` (a Windows error record). Base64 keeps
both directions ASCII whatever the console code page. The PowerShell side
(``powershell/main.ps1``, ``bootstrap.ps1``) states the same facts; a unit test holds
the two together.
"""

from __future__ import annotations

import base64
import json
import re

from saltext_win_iscsi.errors import ChannelError

PROTOCOL_VERSION = 2
RESPONSE_MARKER = "ISCSI1 "

# Get-IscsiSession's fields, in the cmdlet's order (MSFT_iSCSISession plus the
# IsMultipathEnabled that PowerShell shows).
SESSION_FIELDS = (
    "SessionIdentifier",
    "InitiatorSideIdentifier",
    "TargetSideIdentifier",
    "NumberOfConnections",
    "TargetNodeAddress",
    "InitiatorPortalAddress",
    "InitiatorNodeAddress",
    "InitiatorInstanceName",
    "AuthenticationType",
    "IsConnected",
    "IsPersistent",
    "IsDiscovered",
    "IsDataDigest",
    "IsHeaderDigest",
    "IsMultipathEnabled",
)
CONNECTION_FIELDS = (
    "ConnectionIdentifier",
    "InitiatorAddress",
    "InitiatorPortNumber",
    "TargetAddress",
    "TargetPortNumber",
)
# One persistent login (WMI MSiSCSIInitiator_PersistentLoginClass, TargetPortal flattened).
# Two entries with equal values are the same registration made twice (MPIO).
LOGIN_FIELDS = (
    "TargetName",
    "InitiatorInstance",
    "InitiatorPortNumber",
    "TargetPortalAddress",
    "TargetPortalPort",
)
ANY_PORT = 0xFFFFFFFF  # InitiatorPortNumber meaning "any port"

POWERSHELL_ARGS = ("-NoLogo", "-NoProfile", "-NonInteractive", "-EncodedCommand")


def login_key(login: dict) -> tuple[str, ...]:
    """What identifies a persistent login (case-insensitive, as Windows compares)."""
    return tuple(str(login.get(field)).lower() for field in LOGIN_FIELDS)


def encode_powershell_command(script: str) -> str:
    """Encode ``script`` for powershell.exe ``-EncodedCommand`` (base64 of UTF-16LE)."""
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


def encode_script(script: str) -> str:
    """The main script as the first stdin line the bootstrap reads."""
    return base64.b64encode(script.encode("utf-8")).decode("ascii")


def encode_request(request: dict) -> str:
    """Encode one request as the single stdin line the main script reads."""
    body = json.dumps({"v": PROTOCOL_VERSION, **request}, ensure_ascii=True)
    return base64.b64encode(body.encode("utf-8")).decode("ascii")


def decode_response(text: str) -> dict:
    """Decode the main script's answer, raising ChannelError if it is not one."""
    try:
        response = json.loads(base64.b64decode(text.strip(), validate=True).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ChannelError(
            f"iSCSI: PowerShell answered with something that is not a response ({exc}): "
            f"{preview(text)}"
        ) from exc
    if not isinstance(response, dict) or response.get("v") != PROTOCOL_VERSION:
        raise ChannelError(
            f"iSCSI: PowerShell answered in an unknown protocol version: {preview(text)}"
        )
    return response


def response_from_line(line: str, where: str = "PowerShell") -> dict:
    """The response carried by one output line; ChannelError for any other text."""
    if not line.startswith(RESPONSE_MARKER):
        raise ChannelError(f"iSCSI: {where} printed unexpected output: {preview(line)}")
    return decode_response(line[len(RESPONSE_MARKER) :])


def preview(text: str, limit: int = 200) -> str:
    """A short, quoted excerpt of output for an error message."""
    text = text.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


def describe_windows_error(error: dict) -> str:
    """One line for a Windows error record as the main script reports it."""
    message = str(error.get("message") or "unknown error").strip()
    details = [d for d in (error.get("category"), error.get("error_id")) if d]
    return f"{message} ({', '.join(details)})" if details else message


def is_not_found(error: dict) -> bool:
    """True for the CDXML 'No MSFT_iSCSISession objects found' error."""
    return str(error.get("error_id", "")).startswith("CmdletizationQuery_NotFound")


def meaningful_stderr(text: str) -> str:
    """stderr without PowerShell's CLIXML progress records (not errors); errors kept."""
    text = text.strip()
    if not text.startswith("#< CLIXML"):
        return text
    errors = re.findall(r'<S S="Error">(.*?)</S>', text, re.DOTALL)
    return "".join(errors).replace("_x000D__x000A_", "\n").strip()
