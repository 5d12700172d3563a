"""The library's configurable circulation policy, as plain data.

The kiosk builds a :class:`Policy` from its config file; the reference hub builds one from
the county's settings and re-runs the same rules with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class OnLoanToOther(StrEnum):
    """What to do when the book in front of us is, by the cache, on loan to someone else."""

    REFUSE = "refuse"
    RETURN_THEN_LEND = "return-then-lend"


class UnknownItem(StrEnum):
    """What to do with a tag whose item the cache has never heard of."""

    LEND_AND_FLAG = "lend-and-flag"
    REFUSE = "refuse"


class Station(StrEnum):
    KIOSK = "kiosk"
    DESK = "desk"


@dataclass(frozen=True)
class OfflineLimits:
    """Limits that apply only while the hub cannot be reached."""

    max_loans_per_patron: int = 10
    unknown_item: UnknownItem = UnknownItem.LEND_AND_FLAG


@dataclass(frozen=True)
class Policy:
    max_fines_cents: int = 1000
    on_loan_to_other_kiosk: OnLoanToOther = OnLoanToOther.REFUSE
    on_loan_to_other_desk: OnLoanToOther = OnLoanToOther.RETURN_THEN_LEND
    online_unknown_item: UnknownItem = UnknownItem.REFUSE
    unknown_item_loan_days: int = 14
    hold_pickup_days: int = 7
    offline: OfflineLimits = field(default_factory=OfflineLimits)

    def on_loan_to_other(self, station: Station) -> OnLoanToOther:
        if station is Station.DESK:
            return self.on_loan_to_other_desk
        return self.on_loan_to_other_kiosk

    def unknown_item(self, online: bool) -> UnknownItem:
        return self.online_unknown_item if online else self.offline.unknown_item
