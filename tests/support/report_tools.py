"""Tools the report tests need from outside, fetched through ordinary clients, never
committed: the common JUnit schema (from pytest's sdist) and a headless browser (Debian's
chromium package)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
import xmlschema

from tests.support import apt

PYTEST_SDIST = "pytest==9.2.0"
SCHEMA_MEMBER = "pytest-9.2.0/testing/example_scripts/junit-10.xsd"


def junit_schema(directory: Path) -> Path:
    """junit-10.xsd from pytest's source distribution (``pip download``); skips the test
    with the reason when it cannot be had."""
    found = list(directory.glob("pytest-*.tar.gz"))
    if not found:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "-q",
                "-d",
                str(directory),
                PYTEST_SDIST,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        found = list(directory.glob("pytest-*.tar.gz"))
        if out.returncode != 0 or not found:
            pytest.skip(
                f"cannot download {PYTEST_SDIST}'s sdist for the JUnit schema: "
                f"{(out.stderr or out.stdout).strip()[-300:]}"
            )
    with tarfile.open(found[0]) as sdist:
        member = sdist.getmember(SCHEMA_MEMBER)
        schema = directory / "junit-10.xsd"
        schema.write_bytes(sdist.extractfile(member).read())
    return schema


def validator(schema: Path):
    """A function that raises if an XML file is not valid against ``schema``."""
    compiled = xmlschema.XMLSchema(str(schema))
    return compiled.validate


def chromium() -> str:
    """The chromium executable (Debian's package, installed when missing and we are
    root); skips the test with the reason otherwise."""
    path, why = apt.ensure("chromium", ("chromium", "chromium-browser"))
    if path is None:
        pytest.skip(why)
    return path


class Browser:
    """Headless chromium: the DOM after scripts ran, and screenshots."""

    def __init__(self, executable: str, profile: Path) -> None:
        self.executable, self.profile = executable, profile

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        command = [
            self.executable,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={self.profile}",
            *args,
        ]
        out = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        return out

    def dom(self, page: Path) -> str:
        return self._run("--dump-dom", page.resolve().as_uri()).stdout

    def screenshot(self, page: Path, target: Path, size: str = "1280,900") -> Path:
        self._run(f"--screenshot={target}", f"--window-size={size}", page.resolve().as_uri())
        assert target.is_file() and target.stat().st_size > 0
        return target


_VOID = {"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


class _PageReader(HTMLParser):
    """The rows of ``table#hosts`` and the text of elements with an id, from a DOM dump."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.texts: dict[str, str] = {}
        self.tags: list[str] = []
        self._in_hosts = False
        self._in_body = False
        self._cell: list[str] | None = None
        self._open_ids: list[tuple[str, str, list[str]]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "table" and attrs.get("id") == "hosts":
            self._in_hosts = True
        if self._in_hosts and tag == "tr" and self._in_body:
            self.rows.append([])
        if self._in_hosts and tag == "td":
            self._cell = []
        if tag == "tbody":
            self._in_body = True
        if attrs.get("id") and tag not in _VOID:  # a void element has no text, no end tag
            self._open_ids.append((tag, attrs["id"], []))

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None and self.rows:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None
        if tag == "tbody":
            self._in_body = False
        if tag == "table":
            self._in_hosts = False
        if self._open_ids and self._open_ids[-1][0] == tag:
            _, ident, parts = self._open_ids.pop()
            self.texts[ident] = "".join(parts).strip()

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        for _, _, parts in self._open_ids:
            parts.append(data)


def read_page(dom: str) -> _PageReader:
    reader = _PageReader()
    reader.feed(dom)
    reader.close()
    return reader
