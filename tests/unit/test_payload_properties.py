"""Property tests: any request survives the trip to PowerShell as data, unchanged."""

import base64
import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st
from salt.exceptions import CommandExecutionError

from saltext_win_iscsi import selection
from saltext_win_iscsi.windows import protocol, wire

# Any JSON document: text with every Unicode scalar value (control characters included).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=20,
)
requests = st.dictionaries(st.text(), json_values, max_size=6).filter(lambda d: "v" not in d)


@settings(max_examples=150)
@given(requests)
def test_request_line_round_trips(request):
    line = protocol.encode_request(request)
    assert line.isascii() and re.fullmatch(r"[A-Za-z0-9+/=]*", line)
    decoded = json.loads(base64.b64decode(line, validate=True).decode("utf-8"))
    assert decoded == {"v": wire.PROTOCOL_VERSION, **request}


@settings(max_examples=150)
@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_response_round_trips(body):
    body = {**body, "v": wire.PROTOCOL_VERSION}
    text = base64.b64encode(json.dumps(body).encode()).decode()
    assert protocol.decode_response(text) == body


@settings(max_examples=150)
@given(st.one_of(st.text(), st.binary().map(lambda b: base64.b64encode(b).decode())))
def test_garbage_is_always_a_command_execution_error(text):
    try:
        response = protocol.decode_response(text)
    except CommandExecutionError:
        return
    assert response["v"] == wire.PROTOCOL_VERSION  # only a real response gets through


@settings(max_examples=150)
@given(st.text(min_size=1).filter(lambda t: "*" not in t and "?" not in t))
def test_globs_treat_everything_but_star_and_question_mark_literally(text):
    glob = selection.glob(text)
    assert glob.fullmatch(text)
    assert glob.fullmatch(text.upper()) or text.upper().lower() != text.lower()
    assert not glob.fullmatch(text + "x")
