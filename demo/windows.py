"""The demo's Windows minion: a salt-minion whose PowerShell is the simulated host's."""

from __future__ import annotations

from pathlib import Path

from demo import show
from demo.daemons import Fleet

ALLOWED = "iqn.1991-05.com.contoso:db-01"
OLD = "iqn.1991-05.com.contoso:old-archive"


class WindowsSide:
    """Microsoft's example host (three persistent sessions to a testiscsi target), plus a
    persistent session the policy allows and one to a target that must be absent."""

    label = "Windows"

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.minion, self.host = fleet.windows_minion("win01")
        self.host.reset(sessions=3)
        self.host.add_session(ALLOWED, persistent=True)
        self.host.add_session(OLD, portal="10.0.7.1", persistent=True)
        self.forbidden = ""

    def start(self) -> None:
        self.fleet.start_minion(self.minion)

    def describe(self) -> str:
        return f"{self.minion.id}: a simulated Windows host ({self.host.path})"

    def table(self) -> None:
        show.table(
            ["session", "target", "persistent"],
            [
                [s["SessionIdentifier"], s["TargetNodeAddress"], s["IsPersistent"]]
                for s in self.host.sessions()
            ],
        )

    def beacon_ticked(self) -> bool:
        """the beacon's first tick has run (it keeps a baseline in the minion's cache)"""
        return (Path(self.minion.config["cachedir"]) / "iscsi_beacon.json").exists()

    def register_by_hand(self) -> str:
        self.forbidden = self.host.sessions()[0]["SessionIdentifier"]
        self.host.register_by_hand(self.forbidden)
        return f"Register-IscsiSession -SessionIdentifier {self.forbidden}"

    def undone(self) -> bool:
        """the registration by hand is undone"""
        return self.forbidden not in self.host.persistent_ids()

    def close(self) -> None:
        """Nothing beyond the minion, which the fleet stops."""
