"""Request encoding, response decoding and Windows error mapping."""

import base64
import json

import pytest
from salt.exceptions import CommandExecutionError

from saltext_win_iscsi.windows import protocol, wire


def test_request_is_base64_json_with_the_protocol_version():
    line = protocol.encode_request({"op": "unregister", "ids": ["a'b", "\u2019$(x)"]})
    assert line.isascii() and "\n" not in line
    assert json.loads(base64.b64decode(line)) == {
        "v": wire.PROTOCOL_VERSION,
        "op": "unregister",
        "ids": ["a'b", "\u2019$(x)"],
    }


def test_response_round_trip():
    answer = {"v": wire.PROTOCOL_VERSION, "ok": True, "sessions": []}
    body = base64.b64encode(json.dumps(answer).encode()).decode()
    assert protocol.decode_response(body) == answer


def test_secrets_travel_outside_the_json():
    """ConvertFrom-Json's parameters are module-logged: a secret must not be in the JSON."""
    secret = "Chap-S3cret-42"
    line = protocol.encode_request({"op": "register", "ids": ["s1"]}, {"chap_secret": secret})
    head, tail = line.split(" ")
    request = json.loads(base64.b64decode(head))
    assert request["secrets"] == ["chap_secret"]
    assert secret not in json.dumps(request)
    assert base64.b64decode(tail).decode() == secret
    # No secrets: no suffix and no "secrets" key; a None secret is not sent.
    assert " " not in protocol.encode_request({"op": "x"}, {"chap_secret": None})


def test_constrained_language_marker_is_a_clear_error():
    for text in ("ISCSI1-LANGUAGE ConstrainedLanguage", "ISCSI1-LANGUAGE ConstrainedLanguage\r"):
        with pytest.raises(CommandExecutionError, match="ConstrainedLanguage.*WDAC or AppLocker"):
            protocol.response_from_line(text.rstrip("\r"))
    with pytest.raises(CommandExecutionError, match="RestrictedLanguage language mode"):
        protocol.decode_response("ISCSI1-LANGUAGE RestrictedLanguage")


def test_clixml_stderr_is_unescaped():
    """Errors in CLIXML: XML entities and _xHHHH_ escapes are undone; progress is dropped."""
    clixml = (
        "#< CLIXML\r\n"
        '<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
        '<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject'
        '</T></TN><MS><I64 N="SourceId">1</I64></MS></Obj>'
        '<S S="Error">Cannot bind &lt;Id&gt; &amp; _x005F_x: "a"_x000D__x000A_</S>'
        '<S S="Error">second line_x000D__x000A_</S></Objs>'
    )
    assert protocol.meaningful_stderr(clixml) == 'Cannot bind <Id> & _x: "a"\nsecond line'
    progress_only = clixml.split('<S S="Error">')[0] + "</Objs>"
    assert protocol.meaningful_stderr(progress_only) == ""
    assert protocol.meaningful_stderr("plain text\n") == "plain text"


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
