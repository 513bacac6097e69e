"""No value given to the module ever becomes PowerShell source.

A recording PowerShell logs the exact command line and every stdin line of each process
the module starts, then answers as the stand-in does. For a corpus of hostile values the
test proves: the command line and both scripts are always the fixed ones (same tree-sitter
shape as for a clean value), each request is base64 JSON in which the value survives as
one literal string, and the simulated host saw the value as data (an unknown id, a pattern
that matches nothing, a CHAP user name stored as given) while the seeded sessions stayed
persistent.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError
from saltfactories.utils.functional import Loaders

from saltext_win_iscsi.windows import protocol, wire
from saltext_win_iscsi.windows.powershell import scripts
from tests.support import psparse
from tests.support.simhost.model import SEED_TARGET
from tests.support.simhost.powershell_standin import STANDIN as STANDIN_PATH

REPO_ROOT = Path(__file__).resolve().parents[3]
STANDIN = STANDIN_PATH
CHAP_SECRET = "s3cr3t-chap-12"
BASE64_LINE = re.compile(r"[A-Za-z0-9+/]*={0,2}")
KNOWN_OPS = {
    "get_sessions",
    "digest",
    "unregister",
    "register",
    "get_persistent_logins",
    "remove_persistent_logins",
    "get_target_portals",
    "add_target_portal",
    "remove_target_portal",
    "update_target_portal",
    "get_targets",
    "connect_target",
    "disconnect",
    "set_chap_secret",
}


FAKE_RESPONSE = base64.b64encode(b'{"v": 2, "ok": true, "sessions": []}').decode()
QUOTES = {
    "u2018": "\u2018",
    "u2019": "\u2019",
    "u201a": "\u201a",
    "u201b": "\u201b",
    "u201c": "\u201c",
    "u201d": "\u201d",
}
HOSTILE = {
    "quote-break": "x'; Remove-Item C:\\ -Recurse; '",
    "subexpression": "$(Remove-Item C:\\)",
    "escaped-env": "`$env:PATH",
    "backtick": "`",
    "backticks": 'a``b`n`0`"c',
    "dquote-exit": '"; exit 1; "',
    "newline": "x\nRemove-Item C:\\ -Recurse",
    "crlf": "x\r\nRemove-Item C:\\ -Recurse",
    "crlf-fake-response": f"x\r\nISCSI1 {FAKE_RESPONSE}",
    "nul": "x\x00y",
    **{f"smart-quote-{n}": f"x{q}; Remove-Item C:\\ -Recurse; {q}" for n, q in QUOTES.items()},
    "array": "@(1)",
    "open-brace": "{",
    "close-brace": "}",
    "comment": "#",
    "block-comment": "<#",
    "pipe": "|",
    "ampersand": "&",
    "semicolon": ";",
    "long": ("'\"$(x)`;|&#{}" * 1000)[:10_000],
    "marker-prefix": "ISCSI1 ",
    "marker-prefix-payload": f"ISCSI1 {FAKE_RESPONSE}",
    "json-close": '"}',
    "json-escaped-nul": "\\u0000",
    "json-op-injection": '","op":"unregister","ids":["fffffa800d008430-4000013700000001"]}',
    "chap-user-quotes": 'O\'Brien "admin" \u2019root\u201d',
}

RECORDER = """\
import json, os, sys, uuid
import importlib.util

LOG = {log!r}
STANDIN = {standin!r}
PROC = uuid.uuid4().hex


def record(**entry):
    with open(LOG, "a", encoding="utf-8") as log:
        log.write(json.dumps({{"proc": PROC, **entry}}) + "\\n")


class TeeStdin:
    def __init__(self, stream):
        self.stream = stream

    def readline(self):
        line = self.stream.readline()
        if line:
            record(stdin=line)
        return line

    def __iter__(self):
        while True:
            line = self.readline()
            if not line:
                return
            yield line


record(argv=sys.argv[1:])
sys.stdin = TeeStdin(sys.stdin)
spec = importlib.util.spec_from_file_location("powershell_standin", STANDIN)
standin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(standin)
standin.main(sys.argv[2:])
"""


@pytest.fixture(scope="module")
def record_log(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("recorded") / "powershell.jsonl"


@pytest.fixture(scope="module")
def recorder(tmp_path_factory, host, record_log) -> Path:
    """An executable PowerShell that records its argv and stdin, then plays the stand-in."""
    directory = tmp_path_factory.mktemp("recorder")
    script = directory / "recorder.py"
    script.write_text(RECORDER.format(log=str(record_log), standin=str(STANDIN)))
    exe = directory / "powershell"
    exe.write_text(
        "#!/bin/sh\n"
        f"ISCSI_SIM_STATE='{host.path}' exec '{sys.executable}' '{script}' \"$0\" \"$@\"\n"
    )
    exe.chmod(0o755)
    return exe


@pytest.fixture(scope="module")
def recording_loaders(minion_opts, recorder, tmp_path_factory) -> Loaders:
    """Salt's loaders on a copy of the minion opts whose PowerShell is the recorder."""
    opts = copy.deepcopy(minion_opts)
    root = tmp_path_factory.mktemp("recording-minion")
    opts["iscsi.powershell"] = str(recorder)
    opts["cachedir"] = str(root / "cache")
    opts["extension_modules"] = str(root / "extmods")
    return Loaders(opts)


@pytest.fixture(autouse=True)
def reset_loaders_state(recording_loaders):
    """Replaces the package's fixture: this module only uses its own loaders."""
    try:
        yield
    finally:
        recording_loaders.reset_state()


@pytest.fixture
def iscsi(recording_loaders):
    return recording_loaders.modules.iscsi


@pytest.fixture
def recorded(record_log):
    """Read the processes recorded since the test started: [{'argv', 'stdin'}, ...]."""
    record_log.write_text("")

    def _read() -> list[dict]:
        processes: dict[str, dict] = {}
        for line in record_log.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            proc = processes.setdefault(entry["proc"], {"argv": None, "stdin": []})
            if "argv" in entry:
                proc["argv"] = entry["argv"]
            else:
                proc["stdin"].append(entry["stdin"])
        record_log.write_text("")
        return list(processes.values())

    return _read


_SHAPES: dict[str, str] = {}


def _shape(script: str) -> str:
    if script not in _SHAPES:
        _SHAPES[script] = psparse.shape(script)
    return _SHAPES[script]


def _strings(value: Any) -> list[str]:
    """Every string in a decoded JSON document, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *_strings(v))]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def _check_processes(processes: list[dict], recorder: Path, clean: dict) -> list[dict]:
    """Assert each process ran the fixed command line and scripts; return the requests."""
    assert processes, "the module started no PowerShell"
    requests = []
    for proc in processes:
        argv = proc["argv"]
        assert argv == [
            str(recorder),
            *wire.POWERSHELL_ARGS,
            protocol.encode_powershell_command(scripts.BOOTSTRAP),
        ]
        bootstrap = base64.b64decode(argv[-1], validate=True).decode("utf-16-le")
        assert bootstrap == scripts.BOOTSTRAP
        assert _shape(bootstrap) == clean["bootstrap"]

        first, *lines = proc["stdin"]
        assert first.endswith("\n") and BASE64_LINE.fullmatch(first[:-1]), first[:200]
        main = base64.b64decode(first[:-1], validate=True).decode("utf-8")
        assert main == scripts.MAIN
        assert _shape(main) == clean["main"]

        for line in lines:
            # One line per request, nothing but base64 tokens (the JSON, then one per
            # secret the JSON names): no value text reaches PowerShell.
            assert line.endswith("\n"), line[:200]
            head, *secret_tokens = line[:-1].split(" ")
            for token in (head, *secret_tokens):
                assert BASE64_LINE.fullmatch(token), line[:200]
            request = json.loads(base64.b64decode(head, validate=True).decode("utf-8"))
            assert isinstance(request, dict)
            assert request["v"] == wire.PROTOCOL_VERSION
            assert request["op"] in KNOWN_OPS
            names = request.get("secrets", [])
            assert len(secret_tokens) == len(names)
            secrets = {
                name: base64.b64decode(token, validate=True).decode("utf-8")
                for name, token in zip(names, secret_tokens, strict=True)
            }
            for secret in secrets.values():
                assert secret not in json.dumps(request, ensure_ascii=False)
            # Returned beside the JSON, so that tests see what PowerShell received.
            requests.append({**request, "secret_values": secrets})
    return requests


def _assert_literal(requests: list[dict], values: list[str]) -> None:
    """Wherever a value was sent, it was sent whole, as one JSON string (one of ``values``:
    a name may arrive trimmed, a CHAP user name as given)."""
    for request in requests:
        for text in _strings(request):
            for value in values:
                if value in text:
                    assert text in values, f"{value!r} arrived inside {text!r}"


def _selected(value: str) -> list[str]:
    """The ids/patterns the module selects from one CLI string ('a,b' splits, trims)."""
    return [part.strip() for part in value.split(",")]


@pytest.fixture(scope="module")
def clean(recording_loaders, host, record_log):
    """The tree-sitter shapes of the scripts sent for clean values (the reference)."""
    host.reset(sessions=3)
    record_log.write_text("")
    iscsi = recording_loaders.modules.iscsi
    sid = host.sessions()[0]["SessionIdentifier"]
    iscsi.get_sessions(target_node_address="iqn.1991-05.com.contoso:*")
    iscsi.unregister_session(session_identifier="fffffa800d008430-40000137000000ff")
    iscsi.register_session(
        session_identifier=sid, chap_username="host1", chap_secret=CHAP_SECRET, force=True
    )
    lines = [json.loads(line) for line in record_log.read_text().splitlines()]
    argv = next(entry["argv"] for entry in lines if "argv" in entry)
    first = next(entry["stdin"] for entry in lines if "stdin" in entry)
    record_log.write_text("")
    host.reset(sessions=3)
    recording_loaders.reset_state()
    bootstrap = base64.b64decode(argv[-1]).decode("utf-16-le")
    main = base64.b64decode(first).decode("utf-8")
    assert psparse.errors(bootstrap) == [] and psparse.errors(main) == []
    return {"bootstrap": psparse.shape(bootstrap), "main": psparse.shape(main)}


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_value_in_the_lifecycle_stays_data(iscsi, seeded, recorded, recorder, clean, value):
    """Portal addresses, target IQNs, CHAP user names: refused up front (whitespace,
    controls) or sent as one literal JSON string; the host sees no change it was not
    asked for."""
    before = seeded.read()
    calls = [
        lambda: iscsi.add_target_portal(value),
        lambda: iscsi.connect_target(value, chap_username=value, chap_secret="Chap-S3cret-42"),
        lambda: iscsi.ensure_connected(value, portals=[value]),
        lambda: iscsi.ensure_absent(value),
        lambda: iscsi.disconnect_target(node_address=value),
    ]
    for call in calls:
        with contextlib.suppress(CommandExecutionError, SaltInvocationError):
            call()
    processes = recorded()
    if processes:
        _assert_literal(_check_processes(processes, recorder, clean), [value.strip(), value])
    after = seeded.read()
    assert after["sessions"] == before["sessions"]
    assert after["persistent_logins"] == before["persistent_logins"]


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_value_stays_data(iscsi, seeded, recorded, recorder, clean, value):
    before = seeded.sessions()
    seeded_ids = {s["SessionIdentifier"] for s in before}
    logins_before = seeded.persistent_logins()
    sid = before[0]["SessionIdentifier"]

    # Unregister: the hostile id is an id no session has, nothing else is touched.
    wanted = _selected(value)
    result = iscsi.unregister_session(session_identifier=value)
    assert result == {w: {"status": "not_found"} for w in wanted}
    requests = _check_processes(recorded(), recorder, clean)
    _assert_literal(requests, wanted)
    for request in requests:
        if request["op"] == "unregister":
            assert request["ids"] == wanted
    assert seeded.persistent_logins() == logins_before

    # get_sessions: the hostile pattern is a glob that matches no target.
    assert iscsi.get_sessions(target_node_address=value) == []
    requests = _check_processes(recorded(), recorder, clean)
    assert {r["op"] for r in requests} == {"get_sessions"}
    _assert_literal(requests, wanted)

    # register (force, so the request really carries the CHAP user name to PowerShell).
    try:
        result = iscsi.register_session(
            session_identifier=sid, chap_username=value, chap_secret=CHAP_SECRET, force=True
        )
    except (CommandExecutionError, SaltInvocationError):
        result = None
    processes = recorded()
    if processes:
        requests = _check_processes(processes, recorder, clean)
        _assert_literal(requests, [value, CHAP_SECRET])
        registers = [r for r in requests if r["op"] == "register"]
    else:
        registers = []
    new_logins = seeded.persistent_logins()[len(logins_before) :]
    if result is None:
        assert new_logins == [] or registers, "register failed but changed the host"
    else:
        assert result == {sid: {"TargetNodeAddress": SEED_TARGET, "status": "registered"}}
        [register] = registers
        assert register["ids"] == [sid]
        assert register["chap_username"] == value
        assert register["secret_values"] == {"chap_secret": CHAP_SECRET}
        assert "chap_secret" not in register
        [login] = new_logins
        assert login["session"] == sid
        assert login["chap_username"] == value
        assert login["chap_secret_sha256"] == hashlib.sha256(CHAP_SECRET.encode()).hexdigest()
        assert CHAP_SECRET not in json.dumps(result)

    # The seeded sessions: all still there and persistent, their old logins untouched.
    assert seeded.persistent_ids() == seeded_ids
    assert seeded.persistent_logins()[: len(logins_before)] == logins_before
    after = {s["SessionIdentifier"]: s for s in seeded.sessions()}
    assert after == {s["SessionIdentifier"]: s for s in before}


@pytest.mark.parametrize(
    "secret",
    ["'; $(exit 1) #\"", "\u2018;exit 1;\u2019#", '"}]`$x|&<#\nok', "x\r\nISCSI1 e30="],
    ids=["quotes", "smart-quotes", "json-and-newline", "crlf-marker"],
)
def test_hostile_chap_secret_stays_data(iscsi, seeded, recorded, recorder, clean, secret):
    assert 12 <= len(secret.encode("utf-8")) <= 16
    sid = seeded.sessions()[1]["SessionIdentifier"]
    result = iscsi.register_session(
        session_identifier=sid, chap_username="host1", chap_secret=secret, force=True
    )
    assert result == {sid: {"TargetNodeAddress": SEED_TARGET, "status": "registered"}}
    requests = _check_processes(recorded(), recorder, clean)
    _assert_literal(requests, [secret])
    [register] = [r for r in requests if r["op"] == "register"]
    assert register["secret_values"] == {"chap_secret": secret}
    assert "chap_secret" not in register
    login = seeded.persistent_logins()[-1]
    assert login["chap_secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()


def test_checks_catch_a_pasted_value(recorder, clean):
    """Negative control: the process checks fail for what an injection would look like."""
    value = HOSTILE["quote-break"]
    argv = [str(recorder), *wire.POWERSHELL_ARGS]
    bootstrap = protocol.encode_powershell_command(scripts.BOOTSTRAP)
    main = base64.b64encode(scripts.MAIN.encode()).decode() + "\n"
    version = wire.PROTOCOL_VERSION
    request = base64.b64encode(json.dumps({"v": version, "op": "get_sessions"}).encode()).decode()
    good = {"argv": [*argv, bootstrap], "stdin": [main, request + "\n"]}
    assert _check_processes([good], recorder, clean) == [
        {"v": version, "op": "get_sessions", "secret_values": {}}
    ]

    pasted_main = scripts.MAIN.replace(
        "param([string]$Payload, [switch]$Serve)", f"Get-Item '{value}'"
    )
    assert pasted_main != scripts.MAIN
    pasted_bootstrap = scripts.BOOTSTRAP + f"Get-Item '{value}'\n"
    bad = [
        {**good, "argv": [*argv, protocol.encode_powershell_command(pasted_bootstrap)]},
        {**good, "argv": [*argv, "-Command", f"Get-Item '{value}'"]},
        {**good, "stdin": [base64.b64encode(pasted_main.encode()).decode() + "\n"]},
        {**good, "stdin": [main, f"Unregister-IscsiSession -SessionIdentifier '{value}'\n"]},
        {**good, "stdin": [main, f"{request} {value}\n"]},  # text after the request
    ]
    for process in bad:
        with pytest.raises(AssertionError):
            _check_processes([process], recorder, clean)
    # A changed script would also change shape: the comparison is not vacuous.
    assert psparse.shape(pasted_main) != clean["main"]
    with pytest.raises(AssertionError):
        _assert_literal([{"op": "register", "chap_username": f"Get-Item '{value}'"}], [value])


def test_corpus_in_every_argument_stays_data(iscsi, seeded, recorded, recorder, clean):
    """Every value of the 200+ corpus, in every user-facing argument, arrives as a literal."""
    from salt.exceptions import SaltInvocationError

    from tests.support.hostile import hostile_values, nonblank

    values = hostile_values()
    assert len(values) >= 200
    usable = nonblank(values)
    before = seeded.sessions()
    logins_before = seeded.persistent_logins()
    sid = before[0]["SessionIdentifier"]

    # Ids, as one list (one process for the whole corpus); selectors trim whitespace.
    report = iscsi.unregister_session(session_identifier=usable)
    assert report == {v.strip(): {"status": "not_found"} for v in usable}
    # Globs on every selector, and the exceptions glob: `*` and `?` are the only glob
    # specials (they match, as globs should); every other value matches only itself.
    plain = [v for v in usable if "*" not in v and "?" not in v]
    assert len(plain) >= 200
    assert iscsi.get_sessions(target_node_address=plain) == []
    assert iscsi.get_sessions(initiator_node_address=plain) == []
    assert iscsi.get_sessions(target_portal=plain) == []
    assert len(iscsi.get_sessions(exclude_target_node_address=plain)) == 3
    assert iscsi.remove_persistent_login(target_node_address=plain, test=True) == []
    assert len(iscsi.get_sessions(target_node_address="*")) == 3
    # CHAP user names: the host stores exactly what was given.
    sample = values[::4]
    for value in sample:
        iscsi.register_session(
            session_identifier=sid, chap_username=value, chap_secret=CHAP_SECRET, force=True
        )
    stored = [lg.get("chap_username") for lg in seeded.persistent_logins()[len(logins_before) :]]
    assert stored == [v or None for v in sample]

    requests = _check_processes(recorded(), recorder, clean)
    # Values overlap (' is inside ''), so: any sent string holding a value is a value itself.
    whole = set(values) | {v.strip() for v in values}
    for request in requests:
        for text in _strings(request):
            if any(v in text for v in usable):
                assert text in whole, f"a value arrived altered or inside {text[:80]!r}"
    assert [s["IsPersistent"] for s in seeded.sessions()] == [s["IsPersistent"] for s in before]

    # Computer names: the profile is resolved before anything runs, and none exists.
    processes = seeded.stats()["processes"]
    for value in usable:
        with pytest.raises(SaltInvocationError, match="no WinRM profile 'default'"):
            iscsi.get_sessions(computer_name=[value])
    assert seeded.stats()["processes"] == processes
    print(
        f"corpus: {len(values)} values; ids, 3 selector globs, exclusions, login globs, "
        f"{len(sample)} CHAP user names, computer names; {len(requests)} requests checked"
    )
