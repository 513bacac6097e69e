"""WinRM fan-out: one get_sessions on N simulated computers, sequential vs throttled.

Each computer is a loopback WS-Management endpoint (tests/support/simhost/winrm_endpoint.py) with
its own simulated initiator; the PowerShell stand-in sleeps ``ps_startup`` seconds to
model powershell.exe's start-up cost. The module runs through Salt's real loader and the
real pywinrm client. Run: ``python -m bench.fanout [hosts] [throttle] [ps_startup]``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from bench.common import loader
from tests.support.simhost.model import SimulatedHost
from tests.support.simhost.powershell_standin import COMMAND as STANDIN_COMMAND
from tests.support.simhost.winrm_endpoint import WinRMEndpoint

STANDIN = STANDIN_COMMAND
USER, PASSWORD = "bench", "bench-password-1"


def measure(hosts: int = 50, throttle: int = 10, ps_startup: float = 0.3) -> dict:
    """Seconds for one get_sessions on ``hosts`` computers at throttle 1 and ``throttle``."""
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        root = Path(tmp)
        endpoints, profiles = [], {}
        try:
            for i in range(hosts):
                host = SimulatedHost(root / f"host-{i}.json").reset(sessions=3)
                host.set_fault("startup_delay", ps_startup)
                name = f"127.0.{1 + (i + 2) // 250}.{(i + 2) % 250 + 1}"
                endpoint = WinRMEndpoint(
                    command_map={"powershell": STANDIN},
                    username=USER,
                    password=PASSWORD,
                    tls=True,
                    host=name,
                    env={"ISCSI_SIM_STATE": str(host.path)},
                ).start()
                endpoints.append(endpoint)
                profiles[name] = {
                    "transport": "ssl",
                    "port": endpoint.port,
                    "username": USER,
                    "password": PASSWORD,
                    "ca_trust_path": endpoint.ca_cert_path,
                }
            names = list(profiles)
            funcs = loader(
                root, **{"iscsi.winrm": profiles, "iscsi.winrm_hosts": {n: n for n in names}}
            )
            results = {}
            for limit in (1, throttle):
                start = time.monotonic()
                out = funcs["iscsi.get_sessions"](computer_name=names, throttle_limit=limit)
                results[limit] = time.monotonic() - start
                failed = [n for n, r in out.items() if isinstance(r, dict)]
                if failed:
                    raise RuntimeError(f"fan-out failed on {failed[:3]}: {out[failed[0]]}")
            concurrency = max(e.max_concurrent_commands for e in endpoints)
        finally:
            for endpoint in endpoints:
                endpoint.stop()
    return {
        "hosts": hosts,
        "throttle": throttle,
        "ps_startup": ps_startup,
        "sequential_s": results[1],
        "throttled_s": results[throttle],
        "speedup": results[1] / results[throttle],
        "max_commands_per_host": concurrency,
    }


def main(argv: list[str]) -> None:
    hosts, throttle, startup = (
        (int(argv[0]) if argv else 50),
        (int(argv[1]) if len(argv) > 1 else 10),
        (float(argv[2]) if len(argv) > 2 else 0.3),
    )
    print(
        f"WinRM fan-out, simulated Windows hosts (loopback WS-Management endpoints, "
        f"PowerShell start-up modelled as {startup} s): get_sessions on {hosts} hosts"
    )
    r = measure(hosts, throttle, startup)
    print(
        f"  sequential (throttle_limit=1): {r['sequential_s']:.2f} s\n"
        f"  throttle_limit={throttle}:        {r['throttled_s']:.2f} s\n"
        f"  ratio: {r['speedup']:.1f}x faster (target >= 5x)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
