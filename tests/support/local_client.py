"""What ``salt <minion> <fun> <args>`` does, from the test's own process.

A ``salt`` or ``salt-call`` process costs over a second of CPU before it sends anything
(Salt's imports and config; for ``salt-call`` a whole minion loader), and the suite sends
hundreds of jobs. ``LocalCli`` publishes them through the master with Salt's
``LocalClient`` instead: the same master, event bus and minion daemon run each job, the
arguments are parsed as the ``salt`` command parses them, and the exit code is the one it
would give (salt-factories' in-process client returns the data only). The tests of the
command lines themselves (tests/integration/test_cli.py, test_secrets.py) run the real
``salt`` and ``salt-call``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import salt.client
import salt.config
import salt.defaults.exitcodes
import salt.runner
import salt.utils.args


@dataclass(frozen=True)
class Ran:
    """One job's outcome, shaped as salt-factories' result of a ``salt`` run."""

    returncode: int
    data: object
    stdout: str
    stderr: str = ""


class LocalCli:
    """``run(fun, *args, minion_tgt=id)``: that minion's return, as ``salt`` gives it.
    With ``minion_tgt`` given here, ``run`` targets that minion unless told otherwise."""

    def __init__(self, master_config: dict, timeout: float, minion_tgt: str | None = None):
        self.master_config = dict(master_config)
        self.timeout = timeout
        self.minion_tgt = minion_tgt

    def bound(self, minion_tgt: str) -> LocalCli:
        return LocalCli(self.master_config, self.timeout, minion_tgt)

    def run(
        self, fun: str, *args: str, minion_tgt: str | None = None, timeout: float | None = None
    ) -> Ran:
        target = minion_tgt or self.minion_tgt
        assert target, "no minion to run on"
        # A client per job: one that outlived a master restart would hold stale sockets.
        client = salt.client.LocalClient(mopts=dict(self.master_config))
        try:
            returns = client.cmd(
                target,
                fun,
                salt.utils.args.parse_input(list(args)),  # "key=value" as salt reads it
                timeout=self.timeout if timeout is None else timeout,
                full_return=True,
            )
        finally:
            client.destroy()
        if target not in returns:
            message = f"Minion did not return. [No response] ({target})"
            return Ran(salt.defaults.exitcodes.EX_GENERIC, None, "", message)
        answer = returns[target]
        data = answer.get("ret")
        # salt exits 1 when a minion's job failed, 0 otherwise
        failed = answer.get("retcode", 0) != 0
        code = salt.defaults.exitcodes.EX_GENERIC if failed else salt.defaults.exitcodes.EX_OK
        return Ran(code, data, json.dumps(data, default=str))


def sync_all(master_config: dict, minion_id: str, timeout: float = 120) -> dict:
    """``saltutil.sync_all`` on a started minion, as a job of its daemon (modules from the
    master's file_roots, as users deploy them): what it synced."""
    ret = LocalCli(master_config, timeout, minion_id).run("saltutil.sync_all")
    assert ret.returncode == 0, ret
    return ret.data


def sync_beacon(master_config: dict, minion_id: str) -> dict:
    """``sync_all``, then ``saltutil.refresh_beacons``: a running minion does not rebuild
    its beacons on a sync, so the synced ``iscsi`` beacon runs only after the refresh."""
    synced = sync_all(master_config, minion_id)
    assert "beacons.iscsi" in synced["beacons"], synced
    refresh = LocalCli(master_config, 60, minion_id).run("saltutil.refresh_beacons")
    assert refresh.returncode == 0, refresh
    return synced


def sync_master(config_file: str) -> list[str]:
    """What ``salt-run saltutil.sync_utils`` then ``saltutil.sync_runners`` do, for file_roots
    users: the library, then the runner, onto the master. In this process: a runner runs in
    its caller's, and a ``salt-run`` process would add some 1.5 CPU-seconds of start-up."""
    with salt.runner.RunnerClient(salt.config.master_config(config_file)) as runner:
        return [
            *runner.cmd("saltutil.sync_utils", print_event=False),
            *runner.cmd("saltutil.sync_runners", print_event=False),
        ]
