"""The kiosk's effective settings, as typed, validated data.

:func:`kiosk.config.load` builds a :class:`Settings` from a TOML file (or from a profile's
defaults when no file is given); everything else in the kiosk reads settings only from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from sync.circulation import Identity
from sync.policy import OfflineLimits, OnLoanToOther, Policy, Station, UnknownItem

PROFILES = ("24h-space", "van", "sim")

# The sample county (see sync.sample) is the simulated world of the `sim` profile.
SIM_BRANCH = "CN-431121-0002"


def default_database_path(profile: str) -> Path:
    """Where the cache lives when the config does not say: the systemd StateDirectory on an
    installed kiosk, the user's state folder for the simulated one."""
    if profile != "sim":
        return Path("/var/lib/library-kiosk/kiosk.db")
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "library-kiosk" / "kiosk.db"


@dataclass(frozen=True)
class DeviceSettings:
    id: str = "sim-01"
    branch: str = SIM_BRANCH
    profile: str = "sim"
    timezone: str = "Asia/Shanghai"
    language: str = "zh-CN"


@dataclass(frozen=True)
class DatabaseSettings:
    path: Path = field(default_factory=lambda: default_database_path("sim"))


@dataclass(frozen=True)
class OfflineSettings:
    max_loans_per_patron: int = 10
    unknown_item: UnknownItem = UnknownItem.LEND_AND_FLAG


@dataclass(frozen=True)
class CirculationSettings:
    max_fines_cents: int = 1000
    on_loan_to_other_kiosk: OnLoanToOther = OnLoanToOther.REFUSE
    on_loan_to_other_desk: OnLoanToOther = OnLoanToOther.RETURN_THEN_LEND
    online_unknown_item: UnknownItem = UnknownItem.REFUSE
    unknown_item_loan_days: int = 14
    hold_pickup_days: int = 7
    offline: OfflineSettings = field(default_factory=OfflineSettings)


@dataclass(frozen=True)
class Settings:
    device: DeviceSettings = field(default_factory=DeviceSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    circulation: CirculationSettings = field(default_factory=CirculationSettings)
    source: Path | None = None

    def policy(self) -> Policy:
        c = self.circulation
        return Policy(
            max_fines_cents=c.max_fines_cents,
            on_loan_to_other_kiosk=c.on_loan_to_other_kiosk,
            on_loan_to_other_desk=c.on_loan_to_other_desk,
            online_unknown_item=c.online_unknown_item,
            unknown_item_loan_days=c.unknown_item_loan_days,
            hold_pickup_days=c.hold_pickup_days,
            offline=OfflineLimits(
                max_loans_per_patron=c.offline.max_loans_per_patron,
                unknown_item=c.offline.unknown_item,
            ),
        )

    def identity(self, station: Station = Station.KIOSK) -> Identity:
        return Identity(
            device_id=self.device.id,
            branch=self.device.branch,
            timezone=ZoneInfo(self.device.timezone),
            station=station,
        )
