"""The wire format between Python and the fixed PowerShell script: encoding and decoding.

A request is one line: base64 of a UTF-8 JSON document ``{"v": VERSION, "op": ...}``,
then, for each name in its ``secrets`` list, a space and base64 of that secret. Secrets stay
out of the JSON because the script parses the JSON with a cmdlet (``ConvertFrom-Json``),
whose parameters PowerShell module logging records. The answer is one line:
``RESPONSE_MARKER`` + base64 of a UTF-8 JSON document with ``v``, ``ok`` and the op's
fields, or ``error`` (a Windows error record). Base64 keeps both directions ASCII whatever
the console code page. The version and markers are in ``wire``; the PowerShell side
(``powershell/main.ps1``, ``bootstrap.ps1``) states the same facts, and a unit test holds
the two together.
"""

from __future__ import annotations

import base64
import html
import json
import re

from saltext_win_iscsi.errors import ChannelError, LanguageModeError, safe_text
from saltext_win_iscsi.windows.wire import LANGUAGE_MARKER, PROTOCOL_VERSION, RESPONSE_MARKER


def encode_powershell_command(script: str) -> str:
    """Encode ``script`` for powershell.exe ``-EncodedCommand`` (base64 of UTF-16LE)."""
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


def encode_script(script: str) -> str:
    """The main script as the first stdin line the bootstrap reads."""
    return base64.b64encode(script.encode("utf-8")).decode("ascii")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def encode_request(request: dict, secrets: dict[str, str] | None = None) -> str:
    """Encode one request as the single stdin line the main script reads."""
    secrets = {name: value for name, value in (secrets or {}).items() if value is not None}
    body = {"v": PROTOCOL_VERSION, **request}
    if secrets:
        body["secrets"] = list(secrets)
    line = _b64(json.dumps(body, ensure_ascii=True))
    return "".join([line, *(f" {_b64(value)}" for value in secrets.values())])


def language_error(mode: str) -> LanguageModeError:
    return LanguageModeError(
        f"iSCSI: PowerShell runs in {mode.strip() or 'a restricted'} language mode (a WDAC or "
        "AppLocker system lockdown policy), where the extension's script cannot run; allow "
        "it by policy or manage this computer over WinRM from an unrestricted host",
        mode.strip(),
    )


def decode_response(text: str) -> dict:
    """Decode the main script's answer, raising ChannelError if it is not one."""
    if text.startswith(LANGUAGE_MARKER):
        raise language_error(text[len(LANGUAGE_MARKER) :])
    try:
        response = json.loads(base64.b64decode(text.strip(), validate=True).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ChannelError(
            f"iSCSI: PowerShell answered with something that is not a response ({exc}): "
            f"{safe_text(text.strip())}"
        ) from exc
    if not isinstance(response, dict) or response.get("v") != PROTOCOL_VERSION:
        raise ChannelError(
            f"iSCSI: PowerShell answered in an unknown protocol version: {safe_text(text.strip())}"
        )
    return response


def response_from_line(line: str, where: str = "PowerShell") -> dict:
    """The response carried by one output line; ChannelError for any other text."""
    if line.startswith(LANGUAGE_MARKER):
        raise language_error(line[len(LANGUAGE_MARKER) :])
    if not line.startswith(RESPONSE_MARKER):
        raise ChannelError(f"iSCSI: {where} printed unexpected output: {safe_text(line.strip())}")
    return decode_response(line[len(RESPONSE_MARKER) :])


def describe_windows_error(error: dict) -> str:
    """One line for a Windows error record as the main script reports it."""
    message = str(error.get("message") or "unknown error").strip()
    details = [d for d in (error.get("category"), error.get("error_id")) if d]
    return f"{message} ({', '.join(details)})" if details else message


def is_not_found(error: dict) -> bool:
    """True for the CDXML 'No MSFT_iSCSISession objects found' error."""
    return str(error.get("error_id", "")).startswith("CmdletizationQuery_NotFound")


_CLIXML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


def meaningful_stderr(text: str) -> str:
    """stderr without PowerShell's CLIXML progress records (not errors); errors kept.

    CLIXML escapes twice: XML entities (``&lt;``) and ``_xHHHH_`` for characters XML
    cannot hold (``_x000D__x000A_`` is CR LF, ``_x005F_`` an underscore).
    """
    text = text.strip()
    if not text.startswith("#< CLIXML"):
        return text
    errors = re.findall(r'<S S="Error">(.*?)</S>', text, re.DOTALL)
    unescaped = _CLIXML_ESCAPE.sub(
        lambda m: chr(int(m.group(1), 16)), html.unescape("".join(errors))
    )
    return unescaped.replace("\r\n", "\n").strip()
