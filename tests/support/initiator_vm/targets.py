"""The iSCSI targets a test puts in the VM (LIO), as the data the guest's lio.py reads."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Chap:
    """One-way CHAP credentials a target demands (the secret is never printed)."""

    userid: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class Target:
    """A target, its portals (``address:port``; several for multipath-shaped tests), its
    LUNs (one disk each), CHAP, and in mutual CHAP the credentials it answers with."""

    iqn: str
    portals: tuple[str, ...] = ("127.0.0.1:3260",)
    luns: int = 1
    chap: Chap | None = None
    mutual: Chap | None = None


def _credentials(chap: Chap | None) -> dict | None:
    return {"userid": chap.userid, "password": chap.secret} if chap else None


def spec(targets: list[Target]) -> dict:
    """What lio.configure takes."""
    return {
        "targets": [
            {
                "iqn": t.iqn,
                "portals": list(t.portals),
                "luns": t.luns,
                "chap": _credentials(t.chap),
                "mutual": _credentials(t.mutual),
            }
            for t in targets
        ]
    }
