"""A CHAP secret reaches Windows and nothing else: no log (at any level), job cache,
event, return or error text."""

import hashlib
from pathlib import Path

from tests.integration.conftest import CHAP_SECRET


def everything_written(*roots: Path) -> dict[Path, bytes]:
    """Every file under the daemons' directories (logs, job caches, minion caches)."""
    files = {}
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                files[path] = path.read_bytes()
    return files


def test_chap_secret_stays_secret(salt_cli, master, minion, seeded, event_listener):
    ids = [s["SessionIdentifier"] for s in seeded.sessions()]
    salt_cli.run("iscsi.unregister_session", "target_node_address=*", minion_tgt=minion.id)
    seeded.set_fault("fail_sessions", {ids[1]: "persistent_save"})

    ret = salt_cli.run(
        "iscsi.register_session",
        f"session_identifier={ids[0]},{ids[1]}",
        "chap_username=deepcore",
        "chap_secret=sdb://isecrets/chap_secret",
        minion_tgt=minion.id,
    )
    assert ret.data[ids[0]]["status"] == "registered", ret
    assert ret.data[ids[1]]["status"] == "failed"
    # The secret did travel to Windows, intact.
    login = [lg for lg in seeded.persistent_logins() if lg["session"] == ids[0]][-1]
    assert login["chap_secret_sha256"] == hashlib.sha256(CHAP_SECRET.encode()).hexdigest()

    secret = CHAP_SECRET.encode()
    assert secret not in (ret.stdout + ret.stderr).encode()
    for event in event_listener.store:
        assert CHAP_SECRET not in repr(event.data), event.tag
    written = everything_written(Path(master.config["root_dir"]), Path(minion.config["root_dir"]))
    logs = [p for p in written if p.suffix == ".log" or p.name in ("master", "minion")]
    assert logs, "the daemons' logs must be among the files searched"
    # The logs really are at the most verbose level, so the search means something.
    assert any(b"[TRACE" in written[p] or b"[GARBAGE" in written[p] for p in logs)
    leaks = [str(p) for p, content in written.items() if secret in content]
    assert leaks == []


def test_literal_secret_on_the_cli_is_rejected_when_malformed_without_echo(salt_call_cli, seeded):
    ret = salt_call_cli.run(
        "iscsi.register_session",
        f"session_identifier={seeded.sessions()[0]['SessionIdentifier']}",
        "chap_secret=tooShort",
    )
    assert ret.returncode != 0
    assert "12 to 16 bytes" in ret.stdout + ret.stderr
    assert "tooShort" not in ret.stdout + ret.stderr
