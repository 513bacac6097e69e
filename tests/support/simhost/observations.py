"""What a real Windows host was seen to do, as the simulator's behaviour defaults (test code).

``tests/windows`` runs the fixed script on a real host and writes what it saw to a JSON file
(``artifacts/windows-observations.json`` by default)::

    {"format": 1,
     "windows": {"Caption": "...", "Version": "10.0.20348", "UBR": 2762, ...},
     "behaviour": {"unregister_non_persistent": "noop", "unregister_removes": "all", ...},
     "facts": {"<what>": <any JSON value>, ...}}

``behaviour`` holds switches of ``model.DEFAULT_BEHAVIOUR``; a value of ``null`` means "not
observed" and keeps the model's default. ``facts`` are the raw answers behind them (error
records, event texts), for people. A simulated host takes its defaults from such a file
given as ``SimulatedHost(path, observations=...)`` (a path or a loaded document), or named
by the environment variable ``ISCSI_SIM_OBSERVATIONS``.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from pathlib import Path
from typing import Any

# model.py imports this module only inside empty_state(), so there is no import cycle.
from tests.support.simhost.model import DEFAULT_BEHAVIOUR

FORMAT = 1
ENV = "ISCSI_SIM_OBSERVATIONS"
KEYS = {"format", "windows", "behaviour", "facts"}
# The values each switch may take; misreport_persistent is a list of session ids.
CHOICES = {
    "unregister_removes": ("one", "all"),
    "unregister_non_persistent": ("noop", "error"),
    "remove_persistent_removes": ("one", "all"),
    "method_failures": ("exception", "return_value"),
    "new_existing_portal": ("refresh", "error"),
    "username_nul_terminated": ("no", "yes"),
    "remove_without_portal": ("all_portals", "portal_less_only"),
    "wmi_persistent_logins": ("each", "one_per_target"),
    "clustered_disk_association": ("session", "connection", "none"),
}
LISTS = {"misreport_persistent"}


class ObservationsError(ValueError):
    """An observations file that the simulator cannot take."""


def check(document: Any, where: str = "observations") -> dict:
    """``document`` if it is a valid observations document; ObservationsError naming the
    first problem otherwise."""
    if not isinstance(document, dict):
        raise ObservationsError(
            f"{where}: a JSON object is expected, not {type(document).__name__}"
        )
    unknown = sorted(set(document) - KEYS)
    if unknown:
        raise ObservationsError(f"{where}: unknown key(s) {unknown}; known: {sorted(KEYS)}")
    if document.get("format") != FORMAT:
        raise ObservationsError(
            f"{where}: 'format' must be {FORMAT}, not {document.get('format')!r}"
        )
    for key in ("windows", "behaviour", "facts"):
        if not isinstance(document.get(key, {}), dict):
            raise ObservationsError(f"{where}: '{key}' must be a JSON object")
    for name, value in document.get("behaviour", {}).items():
        if name not in DEFAULT_BEHAVIOUR:
            raise ObservationsError(
                f"{where}: unknown behaviour {name!r}; known: {sorted(DEFAULT_BEHAVIOUR)}"
            )
        if value is None:
            continue
        if name in LISTS:
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise ObservationsError(f"{where}: behaviour {name!r} must be a list of strings")
        elif value not in CHOICES.get(name, ()):
            raise ObservationsError(
                f"{where}: behaviour {name!r} is {value!r}; it must be one of "
                f"{list(CHOICES.get(name, ()))} (or null: not observed)"
            )
    return document


def load_observations(path: str | os.PathLike) -> dict:
    """The checked observations document in the JSON file at ``path``."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ObservationsError(f"{path}: cannot read observations: {exc}") from exc
    except ValueError as exc:
        raise ObservationsError(f"{path}: not JSON: {exc}") from exc
    return check(document, str(path))


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, _mtime_ns: int, _size: int) -> dict:
    return load_observations(path)


def _document(observations: Any) -> dict | None:
    if observations is None:
        path = os.environ.get(ENV)
        if not path:
            return None
        observations = path
    if isinstance(observations, (str, os.PathLike)):
        stat = Path(observations).stat() if Path(observations).exists() else None
        if stat is None:
            return load_observations(observations)  # raises, naming the path
        return _load_cached(os.fspath(observations), stat.st_mtime_ns, stat.st_size)
    return check(observations)


def behaviour_defaults(observations: Any = None) -> dict:
    """``model.DEFAULT_BEHAVIOUR`` with every observed switch value in its place.

    ``observations``: a document, a path to one, or None for ``$ISCSI_SIM_OBSERVATIONS``
    (nothing set: the model's own defaults)."""
    behaviour = copy.deepcopy(DEFAULT_BEHAVIOUR)
    document = _document(observations)
    for name, value in ((document or {}).get("behaviour") or {}).items():
        if value is not None:
            behaviour[name] = copy.deepcopy(value)
    return behaviour


def dump_observations(path: str | os.PathLike, document: dict) -> None:
    """Check ``document`` and write it to ``path`` (what tests/windows does)."""
    check(document, str(path))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
