"""Shared set-up for the benchmarks: a simulated host and Salt's real loader on it."""

from __future__ import annotations

from pathlib import Path

import salt.config
import salt.loader

from saltext_win_iscsi.config import Settings
from tests.support.simhost.model import SimulatedHost
from tests.support.simhost.powershell_standin import install

REPO = Path(__file__).resolve().parents[1]

SIMULATED = "Windows side: the simulated host (tests/support/simhost), not Windows"


def loader(root: Path, **settings) -> dict:
    """The minion's execution modules, with the extension's salt/_modules, on fresh opts."""
    opts = salt.config.minion_config(None)
    opts.update(
        root_dir=str(root),
        cachedir=str(root / "cache"),
        pki_dir=str(root / "pki"),
        sock_dir=str(root / "sock"),
        extension_modules=str(root / "extmods"),
        file_client="local",
        module_dirs=[str(REPO / "salt" / "_modules")],
        # the library, as synced minions have it in extmods/utils
        utils_dirs=[str(REPO / "salt" / "_utils")],
        pillar={},
    )
    opts.update(settings)
    opts["grains"] = salt.loader.grains(opts)
    return salt.loader.minion_mods(opts, utils=salt.loader.utils(opts))


def settings_for(root: Path, host: SimulatedHost) -> Settings:
    """The library's settings for a minion managing ``host`` (no Salt loader)."""
    return Settings(backend="windows", powershell=str(install(root / "bin", host.path)))


def local_host(root: Path, sessions: int, ps_startup: float) -> tuple[SimulatedHost, dict]:
    """A host with ``sessions`` persistent sessions and the loader pointed at its stand-in."""
    host = SimulatedHost(root / "host.json").reset()
    targets = [f"iqn.1991-05.com.contoso:bench-{n % 10}" for n in range(1, sessions + 1)]
    host.add_sessions(targets, persistent=True)
    host.set_fault("startup_delay", ps_startup)
    funcs = loader(
        root,
        **{"iscsi.backend": "windows", "iscsi.powershell": str(install(root / "bin", host.path))},
    )
    return host, funcs
