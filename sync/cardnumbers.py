"""Issuing library card numbers offline, from the ranges the hub leased to this device.

**Format.** A card issued here is the range's prefix, the number zero-padded to 8 digits,
and one Luhn check digit: ``4311`` + ``00900000`` + ``8`` = ``4311009000008`` (13 digits).
The check digit is there because van staff type card numbers by hand: Luhn catches every
single mistyped digit and every swap of two neighbouring digits except 09/90, so
:func:`typed_problem` can say "check the number" before anything is looked up, instead of
"no such reader". The check digit cannot make two cards collide: every issued number is 13
digits and the body (prefix + 8 digits) is unique by the hub's leases, while the county's
existing cards (``4311`` + 8 digits, 12 in all, as in :mod:`sync.sample_plan`) are a
different length, so no issued number can equal an existing one. The hub treats a card
number as an opaque string, so it accepts both lengths unchanged. Older 12-digit cards
carry no check digit and are accepted as typed.

**Who issues what.** Each device issues only from ranges leased to it (the hub never leases
a number twice: :meth:`sync.hub.store.SqliteHubStore.lease_card_range`), so two devices can
never issue the same number, online or not.

**Allocation** (:func:`allocate`) runs inside the caller's write transaction, so the range's
``next_number`` moves together with the registration that uses it: a rolled-back
registration gives its number back. It takes from the unexpired range that expires first. A
range is usable through its ``expires_on`` day.

**Supply** (:func:`supply`): ``low`` once fewer than ``max(50, 10 %)`` of the unexpired
numbers are left, so a van asks the hub for a new lease well before it runs out; ``none``
when nothing is left (or every range expired), and then :func:`allocate` refuses with
:class:`CardNumbersExhausted` and issues nothing.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

BODY_DIGITS = 8
LOW_MIN = 50
LOW_FRACTION = 0.10


def luhn_digit(body: str) -> str:
    """The Luhn check digit for the digit string ``body``."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # doubled: the rightmost digit of the body, then every second one
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    return len(number) > 1 and number.isascii() and number.isdigit() \
        and luhn_digit(number[:-1]) == number[-1]


def card_number(prefix: str, n: int) -> str:
    """The card issued for number ``n`` of a range under ``prefix``."""
    body = f"{prefix}{n:0{BODY_DIGITS}d}"
    if len(body) != len(prefix) + BODY_DIGITS:
        raise ValueError(f"card number {n} does not fit in {BODY_DIGITS} digits")
    return body + luhn_digit(body)


def typed_problem(card: str, prefix: str) -> str | None:
    """Why a card number typed by staff cannot be right, or None. Only a number of the
    issued form (prefix + 9 digits) is checked; anything else is looked up as it is."""
    card = card.strip()
    if len(card) == len(prefix) + BODY_DIGITS + 1 and card.startswith(prefix) \
            and card.isascii() and card.isdigit() and not luhn_valid(card):
        return "registration.card.bad_check_digit"
    return None


class SupplyState(StrEnum):
    OK = "ok"
    LOW = "low"
    NONE = "none"


@dataclass(frozen=True)
class Supply:
    """Card numbers this device can still issue today, across its unexpired ranges."""

    left: int
    total: int
    state: SupplyState
    expired_ranges: int = 0

    @property
    def message_key(self) -> str | None:
        if self.state is SupplyState.OK:
            return None
        if self.state is SupplyState.NONE and self.total == 0 and self.expired_ranges:
            return "registration.card.ranges_expired"
        return f"registration.card.{self.state}"

    def as_dict(self) -> dict[str, object]:
        return {"left": self.left, "total": self.total, "state": str(self.state),
                "expired_ranges": self.expired_ranges, "message_key": self.message_key}


class CardNumbersExhausted(RuntimeError):
    """No card number is left in this device's unexpired ranges; nothing was issued. The
    device must lease a new range from the hub (``kiosk sync`` once the network is back)."""

    def __init__(self, supply: Supply) -> None:
        super().__init__(f"no card numbers left to issue ({supply.expired_ranges} ranges"
                         " expired)")
        self.supply = supply
        self.message_key = supply.message_key or "registration.card.none"
        self.params = {"left": 0}


def supply(conn: sqlite3.Connection, today: date) -> Supply:
    """How many numbers are left; reads only."""
    day = today.isoformat()
    left, total = conn.execute(
        "SELECT coalesce(sum(last_number + 1 - next_number), 0),"
        " coalesce(sum(last_number + 1 - first_number), 0) FROM card_ranges"
        " WHERE expires_on IS NULL OR expires_on >= ?", (day,)).fetchone()
    expired = conn.execute(
        "SELECT count(*) FROM card_ranges WHERE expires_on < ?", (day,)).fetchone()[0]
    if left <= 0:
        state = SupplyState.NONE
    elif left < max(LOW_MIN, LOW_FRACTION * total):
        state = SupplyState.LOW
    else:
        state = SupplyState.OK
    return Supply(left, total, state, expired)


def allocate(conn: sqlite3.Connection, today: date) -> str:
    """Take the next card number; must run inside the caller's write transaction (the
    number is used only if that transaction commits). Raises
    :class:`CardNumbersExhausted` when none is left."""
    if not conn.in_transaction:
        raise RuntimeError("cardnumbers.allocate must run inside the registration's"
                           " transaction")
    row = conn.execute(
        "UPDATE card_ranges SET next_number = next_number + 1 WHERE id = ("
        " SELECT id FROM card_ranges WHERE next_number <= last_number"
        " AND (expires_on IS NULL OR expires_on >= ?)"
        " ORDER BY expires_on IS NULL, expires_on, id LIMIT 1)"
        " RETURNING prefix, next_number - 1", (today.isoformat(),)).fetchone()
    if row is None:
        raise CardNumbersExhausted(supply(conn, today))
    return card_number(row[0], row[1])
