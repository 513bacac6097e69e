"""Request encoding, response decoding and Windows error mapping."""

import base64
import json

import pytest
from salt.exceptions import CommandExecutionError

from saltext_win_iscsi import protocol


def test_request_is_base64_json_with_the_protocol_version():
    line = protocol.encode_request({"op": "unregister", "ids": ["a'b", "\u2019$(x)"]})
    assert line.isascii() and "\n" not in line
    assert json.loads(base64.b64decode(line)) == {
        "v": 2,
        "op": "unregister",
        "ids": ["a'b", "\u2019$(x)"],
    }


def test_response_round_trip():
    body = base64.b64encode(json.dumps({"v": 2, "ok": True, "sessions": []}).encode()).decode()
    assert protocol.decode_response(body) == {"v": 2, "ok": True, "sessions": []}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not base64 at all!", "not a response"),
        (base64.b64encode(b"{truncated").decode(), "not a response"),
        (base64.b64encode(b"\xff\xfe").decode(), "not a response"),
        (base64.b64encode(b'{"v": 99, "ok": true}').decode(), "unknown protocol version"),
        (base64.b64encode(b"[1, 2]").decode(), "unknown protocol version"),
    ],
)
def test_malformed_responses_raise(text, message):
    with pytest.raises(CommandExecutionError, match=message):
        protocol.decode_response(text)


def test_encoded_command_is_utf16le_base64():
    encoded = protocol.encode_powershell_command("Get-Date # é")
    assert base64.b64decode(encoded).decode("utf-16-le") == "Get-Date # é"


def test_windows_error_description_and_not_found():
    error = {
        "message": "No MSFT_iSCSISession objects found with property 'SessionIdentifier' equal to 'x'.",
        "category": "ObjectNotFound",
        "error_id": "CmdletizationQuery_NotFound_SessionIdentifier,Unregister-IscsiSession",
    }
    assert protocol.describe_windows_error(error).endswith(
        "(ObjectNotFound, CmdletizationQuery_NotFound_SessionIdentifier,Unregister-IscsiSession)"
    )
    assert protocol.is_not_found(error)
    assert not protocol.is_not_found({"error_id": "Windows System Error 5,Unregister-IscsiSession"})
    assert protocol.describe_windows_error({}) == "unknown error"
