"""PowerShell module logging on (policy ModuleNames=*): a CHAP secret sent with register must
not appear in event 4103 of Microsoft-Windows-PowerShell/Operational."""

import base64
import time

import pytest

from tests.windows import hostactions
from tests.windows.twin import Twin

SECRET = "Modlog-Secret7"  # 14 bytes, used by no other test


@pytest.fixture
def module_logging():
    saved = hostactions.act("module_logging")
    yield saved
    hostactions.act("module_logging_restore", saved=saved)


def test_chap_secret_is_not_in_event_4103(
    module_logging, make_channel, session, recorder, kind, tmp_path, request
):
    # Opened after the policy is set: a new powershell.exe reads it at start. Whether the
    # in-process runspace (a process that started before) logs is recorded, not assumed.
    twin = Twin(make_channel(), kind, recorder, tmp_path, request.node.name)
    start_ms = int(time.time() * 1000) - 1000
    answer = twin.request(
        {
            "op": "register",
            "ids": [session],
            "is_multipath_enabled": False,
            "chap_username": "salt-modlog",
        },
        secrets={"chap_secret": SECRET},
    )
    end_ms = int(time.time() * 1000) + 1000
    time.sleep(5)  # the event log is written asynchronously
    needles = [SECRET, base64.b64encode(SECRET.encode()).decode()]
    events = hostactions.act(
        "events_4103",
        start_ms=start_ms,
        end_ms=end_ms,
        needles_hex=[hostactions.hex_text(n) for n in needles],
    )
    recorder.fact("module_logging_4103", events, kind)
    assert answer["results"][0]["ok"], answer
    assert events["found"] == [False, False], "the CHAP secret (or its base64) is in event 4103"
    if kind == "process":
        assert events["count"] > 0, "module logging is on but no event 4103: nothing was checked"
