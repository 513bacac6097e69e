"""Run one piece of work here, or on many remote computers at once (``-ThrottleLimit``)."""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable
from typing import Any

from saltext_win_iscsi.computers import RemoteComputer
from saltext_win_iscsi.errors import IscsiError, IscsiInputError

log = logging.getLogger(__name__)

DEFAULT_THROTTLE_LIMIT = 32


def throttle(throttle_limit: Any, count: int) -> int:
    """Workers for ``count`` computers; 0 means the default, as for the cmdlet."""
    if (
        isinstance(throttle_limit, bool)
        or not isinstance(throttle_limit, int)
        or throttle_limit < 0
    ):
        raise IscsiInputError(f"throttle_limit must be a whole number >= 0, not {throttle_limit!r}")
    return max(1, min(throttle_limit or DEFAULT_THROTTLE_LIMIT, count))


def on_each(
    computers: list[RemoteComputer] | None,
    throttle_limit: Any,
    work: Callable[[RemoteComputer | None], Any],
) -> tuple[Any, bool]:
    """``(result, failed)``: ``work(None)`` here, or ``{computer: result}`` for each computer.

    One computer's failure (down, credentials refused, timeout) is reported under its name
    as ``{"error": ...}`` with ``failed`` set; the others go on.
    """
    if computers is None:
        return work(None), False
    workers = throttle(throttle_limit, len(computers))
    results: dict[str, Any] = {}
    failed = False
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(work, computer): computer for computer in computers}
        for future in concurrent.futures.as_completed(futures):
            name = futures[future].name
            try:
                results[name] = future.result()
            except (IscsiError, IscsiInputError) as exc:
                log.error("iSCSI: %s", exc)
                results[name] = {"error": str(exc)}
                failed = True
    return {computer.name: results[computer.name] for computer in computers}, failed
