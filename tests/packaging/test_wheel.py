"""The release: sdist and wheel build and pass ``twine check``, their metadata says what
pyproject.toml and the library say; the pip-installed wheel loads iscsi.* through the
salt.loader entry point, with no saltutil.sync and no module in file_roots."""

import email.message
import email.parser
import json
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import REPO_ROOT
from tests.support.simhost.model import SimulatedHost
from tests.support.simhost.powershell_standin import install


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    """sdist and wheel as a release makes them: ``python -m build`` (the wheel is built from
    the sdist, so a file missing from the sdist breaks it), from a copy of this checkout."""
    root = tmp_path_factory.mktemp("dist")
    # Build from a copy: setuptools writes *.egg-info and build/ into the source tree, and an
    # egg-info left in the checkout would announce a broken entry point to every Salt process
    # started from it.
    source = root / "source"
    shutil.copytree(
        REPO_ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv*",
            "*.egg-info",
            "build",
            "dist",
            "__pycache__",
            ".*_cache",
            ".hypothesis",
            "artifacts",
            "_build",
        ),
    )
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--no-isolation",
            "--outdir",
            str(root / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    (sdist,) = (root / "dist").glob("saltext_win_iscsi-*.tar.gz")
    (wheel,) = (root / "dist").glob("saltext_win_iscsi-*.whl")
    return {"sdist": sdist, "wheel": wheel}


@pytest.fixture(scope="module")
def installed(dist, tmp_path_factory) -> Path:
    """The wheel, installed (no deps) into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
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
            str(dist["wheel"]),
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


# -- release checks ---------------------------------------------------------------------


def metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode())


def test_sdist_and_wheel_pass_twine_check(dist):
    check = subprocess.run(
        [
            sys.executable,
            "-m",
            "twine",
            "check",
            "--strict",
            str(dist["sdist"]),
            str(dist["wheel"]),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("PASSED") == 2, check.stdout


def test_the_metadata_says_what_the_project_says(dist):
    import saltext_win_iscsi

    found = metadata(dist["wheel"])
    assert found["Version"] == saltext_win_iscsi.__version__
    assert found["License-Expression"] == "Apache-2.0"
    assert "salt-extension" in found["Keywords"].split(",")
    urls = dict(u.split(", ", 1) for u in found.get_all("Project-URL"))
    assert urls["Documentation"].startswith("https://")
    with zipfile.ZipFile(dist["wheel"]) as archive:
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in archive.namelist())


def test_the_sdist_has_what_file_roots_users_copy(dist):
    with tarfile.open(dist["sdist"]) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    wanted = {
        "LICENSE",
        "CHANGELOG.md",
        "pillar.example",
        "salt/iscsi/policy.sls",
        "salt/reactor/iscsi_enforce.sls",
        "docs/conf.py",
    }
    assert wanted <= names, wanted - names
    assert not [n for n in names if n.startswith("docs/_build")]


def test_the_oldest_salt_tested_is_the_oldest_supported():
    """pyproject's lower bound of salt is the Salt ./dev test-oldest installs."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    (salt,) = [Requirement(d) for d in project["dependencies"] if d.startswith("salt")]
    lower = [s.version for s in salt.specifier if s.operator == ">="]
    pins = [
        Requirement(line)
        for line in (REPO_ROOT / "requirements-oldest.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert [str(p.specifier) for p in pins if p.name == "salt"] == [f"=={v}" for v in lower]


def test_the_changelog_has_a_section_per_version():
    """One ``## x.y.z`` section per release, newest first. On top either ``## Unreleased``
    (the work toward ``__version__``, newer than every release), or, in a release commit,
    the section of ``__version__`` itself (CONTRIBUTING.md, "Releasing")."""
    import saltext_win_iscsi

    current = Version(saltext_win_iscsi.__version__)
    headings = re.findall(r"^## (.+)$", (REPO_ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    unreleased = headings[0] == "Unreleased"
    released = [Version(h.split()[0]) for h in headings[1 if unreleased else 0 :]]
    assert released, "no released version"
    assert released == sorted(released, reverse=True)
    if unreleased:
        assert current > released[0]
    else:
        assert current == released[0]
