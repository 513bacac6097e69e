"""pip-installed Salt extension: the built wheel loads iscsi.* through the salt.loader entry
point, with no saltutil.sync and no module in file_roots."""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.support.simhost.model import SimulatedHost
from tests.support.simhost.powershell_standin import install


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel built from this checkout, installed (no deps) into its own folder."""
    root = tmp_path_factory.mktemp("wheel")
    # Build from a copy: setuptools writes *.egg-info and build/ into the source tree, and an
    # egg-info left in the checkout would announce a broken entry point to every Salt process
    # started from it.
    source = root / "source"
    shutil.copytree(
        REPO_ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "*.egg-info", "build", "dist", "__pycache__", ".*_cache", ".hypothesis"
        ),
    )
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(root / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if build.returncode != 0:
        pytest.skip(f"the wheel cannot be built here: {build.stderr[-500:]}")
    (wheel,) = (root / "dist").glob("saltext_win_iscsi-*.whl")
    target = root / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    return target


@pytest.fixture(scope="module")
def minion_config_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pip-minion")
    host = SimulatedHost(root / "host.json").reset(sessions=3)
    empty_roots = root / "file_roots"
    empty_roots.mkdir()
    config = root / "etc"
    config.mkdir()
    (config / "minion").write_text(
        f"id: pip-minion\nroot_dir: {root / 'root'}\nfile_client: local\n"
        f"file_roots:\n  base:\n    - {empty_roots}\n"
        "iscsi.backend: windows\n"
        f"iscsi.powershell: {install(root / 'bin', host.path)}\n"
    )
    return config


def salt_call(installed: Path, config: Path, *args: str) -> dict:
    out = subprocess.run(
        [
            str(Path(sys.executable).with_name("salt-call")),
            "--local",
            "-c",
            str(config),
            "--out=json",
            "--log-level=quiet",
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=config,
        env={"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)["local"]


def test_module_and_state_load_without_sync(installed, minion_config_dir):
    sessions = salt_call(installed, minion_config_dir, "iscsi.get_sessions")
    assert len(sessions) == 3
    states = salt_call(installed, minion_config_dir, "sys.list_state_functions", "iscsi")
    assert {"iscsi.not_persistent", "iscsi.persistent"} <= set(states)
    # Nothing was synced: no extension module cache exists.
    assert not list((minion_config_dir.parent / "root").rglob("extmods/modules/iscsi.py"))


def test_beacon_loads_from_the_wheel(installed, minion_config_dir):
    probe = textwrap.dedent(
        f"""
        import salt.config, salt.loader
        opts = salt.config.minion_config({str(minion_config_dir / "minion")!r})
        opts["grains"] = {{}}
        beacons = salt.loader.beacons(opts, {{}})
        print(beacons["iscsi.beacon"].__module__, "iscsi.validate" in beacons)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=False,
        cwd=minion_config_dir,
        env={"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["salt.loaded.ext.beacons.iscsi", "True"]


def test_runner_loads_from_the_wheel(installed, tmp_path):
    """salt-run users of the wheel get iscsi.report with no saltutil.sync_runners."""
    config = tmp_path / "master"
    config.write_text(f"root_dir: {tmp_path / 'root'}\nid: pip-master\n")
    probe = textwrap.dedent(
        f"""
        import json, salt.config, salt.loader
        opts = salt.config.master_config({str(config)!r})
        runners = salt.loader.runner(opts, utils=salt.loader.utils(opts))
        print(json.dumps({{
            "module": runners["iscsi.report"].__module__,
            "functions": sorted(f for f in runners if f.startswith("iscsi.")),
            "library": runners["iscsi.version"]()["library"],
        }}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    found = json.loads(out.stdout.splitlines()[-1])
    assert found["module"] == "salt.loaded.ext.runners.iscsi"
    assert found["functions"] == ["iscsi.enforce", "iscsi.report", "iscsi.version"]
    assert found["library"] == str(installed / "saltext_win_iscsi")
    # Nothing was synced: the master has no extension modules.
    assert not list(tmp_path.rglob("extmods/runners/iscsi.py"))
