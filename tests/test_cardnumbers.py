"""Card numbers issued offline from leased ranges: check digit, allocation, supply, and two
devices against the reference hub never issuing the same number."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync import cardnumbers, db
from sync.cardnumbers import CardNumbersExhausted, SupplyState, card_number, luhn_valid
from sync.hub.testing import HubServer
from sync.sample_plan import CARD_BASE, CARD_PREFIX
from sync.syncer import Syncer
from tests.conftest import NOON_ISH, TODAY, ManualClock
from tests.test_sync_client import FAST, client_for


def _range(w, first: int, last: int, *, next_number: int | None = None,
           expires_on: str | None = "2027-11-25", prefix: str = "4311") -> int:
    return w._insert("card_ranges", {
        "prefix": prefix, "first_number": first, "last_number": last,
        "next_number": first if next_number is None else next_number,
        "leased_at": "2026-11-01T00:00:00+00:00", "expires_on": expires_on})


def _take(w, today: date = TODAY) -> str:
    with w.cache.transaction() as conn:
        return cardnumbers.allocate(conn, today)


def test_issued_number_is_prefix_8_digits_and_luhn():
    assert card_number("4311", 900_000) == "431100900000" + "8"
    assert luhn_valid("79927398713")  # the textbook Luhn example
    with pytest.raises(ValueError):
        card_number("4311", 100_000_000)


@given(st.integers(0, 99_999_999), st.integers(0, 12), st.integers(1, 9))
def test_one_mistyped_digit_is_caught(n, position, delta):
    card = card_number("4311", n)
    wrong = card[:position] + str((int(card[position]) + delta) % 10) + card[position + 1:]
    assert not luhn_valid(wrong)
    assert cardnumbers.typed_problem(wrong, "4311") == "registration.card.bad_check_digit" \
        or not wrong.startswith("4311")


@given(st.integers(0, 99_999_999), st.integers(0, 11))
def test_swapped_neighbours_are_caught_except_09(n, i):
    card = card_number("4311", n)
    swapped = card[:i] + card[i + 1] + card[i] + card[i + 2:]
    if swapped != card and {card[i], card[i + 1]} != {"0", "9"}:
        assert not luhn_valid(swapped)


@given(st.integers(1, 99_999_999), st.integers(1, 99_999_999))
def test_issued_numbers_never_collide_with_each_other_or_existing_cards(a, b):
    existing = f"{CARD_PREFIX}{CARD_BASE + a % 1000:08d}"  # sync.sample_plan.card()
    assert card_number(CARD_PREFIX, a) != existing  # 13 digits against 12
    assert (card_number(CARD_PREFIX, a) == card_number(CARD_PREFIX, b)) == (a == b)


def test_typed_old_cards_are_not_checked():
    assert cardnumbers.typed_problem("431110000001", "4311") is None
    assert cardnumbers.typed_problem(card_number("4311", 5), "4311") is None


def test_allocation_takes_the_range_expiring_first_and_moves_next_number(world):
    later = _range(world, 100, 199, expires_on="2027-12-31")
    sooner = _range(world, 500, 599, expires_on="2027-01-31")
    assert _take(world) == card_number("4311", 500)
    assert _take(world) == card_number("4311", 501)
    assert world.one("SELECT next_number FROM card_ranges WHERE id = ?", sooner) == 502
    assert world.one("SELECT next_number FROM card_ranges WHERE id = ?", later) == 100


def test_a_rolled_back_registration_gives_its_number_back(world):
    _range(world, 100, 199)
    with pytest.raises(RuntimeError, match="boom"), world.cache.transaction() as conn:
        cardnumbers.allocate(conn, TODAY)
        raise RuntimeError("boom")
    assert _take(world) == card_number("4311", 100)


def test_allocation_outside_a_transaction_is_refused(world):
    _range(world, 100, 199)
    with pytest.raises(RuntimeError, match="transaction"):
        cardnumbers.allocate(world.cache.conn, TODAY)


def test_supply_warns_well_before_it_runs_out(world):
    _range(world, 0, 999)  # 1000 numbers: low below max(50, 100) = 100
    with world.cache.snapshot() as conn:
        assert cardnumbers.supply(conn, TODAY).state is SupplyState.OK
    world.sql("UPDATE card_ranges SET next_number = 901")
    with world.cache.snapshot() as conn:
        s = cardnumbers.supply(conn, TODAY)
    assert (s.state, s.left, s.message_key) == (SupplyState.LOW, 99, "registration.card.low")
    world.sql("UPDATE card_ranges SET next_number = 1000")
    with world.cache.snapshot() as conn:
        s = cardnumbers.supply(conn, TODAY)
    assert (s.state, s.left, s.message_key) == (SupplyState.NONE, 0, "registration.card.none")


def test_small_ranges_warn_below_fifty(world):
    _range(world, 0, 99)
    world.sql("UPDATE card_ranges SET next_number = 51")
    with world.cache.snapshot() as conn:
        assert cardnumbers.supply(conn, TODAY).state is SupplyState.LOW


def test_none_left_is_a_clear_refusal_and_issues_nothing(world):
    _range(world, 100, 100)
    assert _take(world) == card_number("4311", 100)
    with pytest.raises(CardNumbersExhausted) as err:
        _take(world)
    assert err.value.message_key == "registration.card.none"
    assert world.one("SELECT next_number FROM card_ranges") == 101


def test_an_expired_range_issues_nothing(world):
    _range(world, 100, 199, expires_on="2026-11-24")
    with pytest.raises(CardNumbersExhausted) as err:
        _take(world)
    assert err.value.message_key == "registration.card.ranges_expired"
    _range(world, 300, 399, expires_on="2026-11-25")  # usable through its last day
    assert _take(world) == card_number("4311", 300)


def test_no_range_at_all(world):
    with pytest.raises(CardNumbersExhausted) as err:
        _take(world)
    assert err.value.message_key == "registration.card.none"


# -- two devices against the reference hub -------------------------------------------------

DEVICES = {"van-01": "van-01-token-0123456789", "van-02": "van-02-token-0123456789"}


def test_two_devices_never_issue_the_same_number(tmp_path: Path):
    issued: dict[str, list[str]] = {}
    with HubServer(tmp_path / "hub.db", sample="small", devices=DEVICES) as hub:
        for device, token in DEVICES.items():
            clock = ManualClock(NOON_ISH, boot_id=f"boot-{device}")
            with db.create(tmp_path / f"{device}.db") as cache, \
                    client_for(hub.url, clock, device=device, token=token) as client:
                syncer = Syncer(cache, client, options=FAST)
                assert syncer.run_once().ok
                for _ in range(2):  # two leases each, interleaved with the other device's
                    client.lease_card_range(size=20)
                assert syncer.run_once().ok
                issued[device] = []
                while True:
                    try:
                        with cache.transaction() as conn:
                            issued[device].append(cardnumbers.allocate(conn, TODAY))
                    except CardNumbersExhausted:
                        break
        with sqlite3.connect(hub.db_path) as h:
            existing = {r[0] for r in h.execute("SELECT card_number FROM patrons")}
    assert [len(v) for v in issued.values()] == [40, 40]
    everyone = [c for cards in issued.values() for c in cards]
    assert len(set(everyone)) == 80
    assert all(luhn_valid(c) and len(c) == 13 for c in everyone)
    assert not existing & set(everyone)
