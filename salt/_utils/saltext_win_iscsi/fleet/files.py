"""The report's files on the master: paths checked before the fleet is asked anything,
and written atomically (a reader never sees half a page)."""

from __future__ import annotations

import os
import tempfile

from saltext_win_iscsi.errors import IscsiInputError


def output_path(path: object, what: str) -> str | None:
    """The absolute path of an output file whose folder exists; None when not asked for."""
    if path is None:
        return None
    if not isinstance(path, str) or not path.strip():
        raise IscsiInputError(f"{what} must be a file path on the master")
    path = os.path.abspath(path)
    if not os.path.isdir(os.path.dirname(path)):
        raise IscsiInputError(f"{what}: the folder {os.path.dirname(path)!r} does not exist")
    return path


def write(path: str, text: str) -> None:
    """Write ``text`` to ``path``, atomically, readable by all (a report, no secrets)."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".iscsi-report-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
