"""Settings of a reference hub: plain data, with defaults that suit the sample county."""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sync.policy import OnLoanToOther, Policy, UnknownItem

# Applying an event is "physical fact first": the book left, so it is on loan, whatever the
# rules would have said. The hub's policy therefore never refuses for these two reasons; the
# other rule outcomes become exception codes on the event's verdict.
HUB_POLICY = Policy(
    on_loan_to_other_kiosk=OnLoanToOther.RETURN_THEN_LEND,
    on_loan_to_other_desk=OnLoanToOther.RETURN_THEN_LEND,
    online_unknown_item=UnknownItem.LEND_AND_FLAG,
)


@dataclass(frozen=True)
class HubConfig:
    """What a county sets for its hub.

    Card numbers leased to devices are ``card_prefix`` followed by 8 digits (a device issuing
    a card appends a Luhn check digit: :mod:`sync.cardnumbers`), taken from
    ``card_first_number`` to ``card_last_number``; the sample county's patrons start at
    10,000,001 and the sample device's own range is 900,000-909,999, so the defaults meet
    neither. ``future_tolerance_ns`` is how far past the hub's clock an event may claim to
    be before it is flagged ``time_in_future`` (clocks and round trips are never exact).

    Pushed events are stored at once and applied by a background applier
    (:mod:`sync.hub.applier`), ``apply_chunk_events`` per write transaction. It gives way to
    pushes: it starts once no push has come for ``apply_settle_s``, or once it has waited
    ``apply_max_lag_s`` since it was woken, whichever is first, and it also looks every
    ``apply_interval_s``. None of this is needed for correctness: whatever reads circulation
    state applies the events still waiting first.
    """

    card_prefix: str = "4311"
    card_first_number: int = 1_000_000
    card_last_number: int = 9_999_999
    card_range_days: int = 365
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    policy: Policy = HUB_POLICY
    max_body_bytes: int = 32 * 1024 * 1024
    max_events: int = 5000
    future_tolerance_ns: int = 120 * 1_000_000_000
    change_page_default: int = 1000
    change_page_max: int = 5000
    snapshot_batch_rows: int = 2000
    apply_chunk_events: int = 200
    apply_settle_s: float = 0.05
    apply_max_lag_s: float = 1.0
    apply_interval_s: float = 5.0
    # The county page (sync/hub/county.py): a device with no heartbeat for this long is
    # "silent"; the charts show this many days back from today by default.
    silent_after_s: float = 15 * 60
    county_days: int = 14
