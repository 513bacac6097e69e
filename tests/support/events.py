"""Bringing the test's event listener up to date with a master's event bus.

salt-factories' engine forwards the master's events to the listener from a queue it polls
once a second while idle, so an event reaches the listener up to a second or so after the
master fired it: a test reading the listener right after an action may not see it yet.
``flush`` fires a marker on the master's bus and waits until the listener has it; the
queue is first in, first out, so every event the master fired before is then there.
"""

from __future__ import annotations

import time
import uuid

import salt.utils.event

from tests.support import waiting

FLUSH_TAG = "saltext-iscsi-test/flush"


def flush(listener, master, timeout: float = 30) -> None:
    """Return once every event ``master``'s bus carried before this call is in
    ``listener``."""
    tag = f"{FLUSH_TAG}/{uuid.uuid4().hex}"
    opts = master.config
    fired = time.time()  # the listener's default is "after now"
    with salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=False) as bus:
        bus.fire_event({}, tag)

    def arrived():
        """the flush marker reached the event listener"""
        return listener.get_events([(master.id, tag)], after_time=fired)

    waiting.wait_for(arrived, timeout)
