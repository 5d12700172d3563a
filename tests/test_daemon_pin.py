"""The PIN step: the session machine's gate (books wait for the PIN), the count of wrong
PINs and the lockout, and the step against a real cache with real scrypt hashes."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from kiosk.daemon.actions import (
    AskPin,
    EndSession,
    Lend,
    Notify,
    PinChecked,
    StartSession,
    VerifyPin,
)
from kiosk.daemon.db import Writer
from kiosk.daemon.pin import PinStep, PinTries
from kiosk.daemon.session import SessionMachine
from kiosk.daemon.state import CardSeen, Mode, PadBook, Pickup, PinEntered, SetMode, TagsChanged
from sync import pins
from sync.clock import SystemClock
from sync.policy import Policy
from tests.daemon_helpers import CARDS, make_world, settings_for, write_config

CARD = "431100000017"


def pad(*barcodes: str) -> TagsChanged:
    return TagsChanged(tuple(PadBook(f"E0{b}", b) for b in barcodes))


def test_books_wait_on_the_pad_until_the_pin_is_right() -> None:
    m = SessionMachine(60, 45, ask_pin=True)
    actions = m.feed(CardSeen(CARD, "04AA"), 0.0)
    assert [type(a) for a in actions] == [StartSession, AskPin]
    assert m.feed(PinChecked(1, False, message_key="daemon.pin.enter"), 0.1)[0].what == \
        "pin_needed"
    assert m.feed(pad("B1", "B2"), 1.0) == []  # nothing lent yet
    assert m.feed(Pickup(7), 1.5)[0].message_key == "daemon.pin.needed"
    verify = m.feed(PinEntered("1234"), 2.0)
    assert verify == [VerifyPin(1, CARD, "1234")]
    assert "1234" not in repr(verify) and "1234" not in repr(PinEntered("1234"))
    told = m.feed(PinChecked(1, False, message_key="daemon.pin.wrong", params={"left": 2}),
                  2.1)
    assert [(a.what, a.params) for a in told] == [("pin_needed", {"left": 2})]
    done = m.feed(PinChecked(1, True), 3.0)
    assert isinstance(done[0], Notify) and done[0].what == "pin_ok"
    assert [a.barcode for a in done if isinstance(a, Lend)] == ["B1", "B2"]


def test_no_pin_needed_lends_at_once_and_says_nothing_about_pins() -> None:
    m = SessionMachine(60, 45, ask_pin=True)
    m.feed(CardSeen(CARD, "04AA"), 0.0)
    m.feed(pad("B1"), 0.5)
    actions = m.feed(PinChecked(1, True, needed=False), 1.0)
    assert [type(a) for a in actions] == [Lend]


def test_returns_need_no_pin() -> None:
    m = SessionMachine(60, 45, ask_pin=True)
    m.feed(CardSeen(CARD, "04AA"), 0.0)
    m.feed(PinChecked(1, False, message_key="daemon.pin.enter"), 0.1)
    m.feed(SetMode(Mode.RETURN), 0.5)
    actions = m.feed(pad("B1"), 1.0)
    assert [type(a).__name__ for a in actions] == ["Return"]


def test_a_locked_out_card_ends_its_session() -> None:
    m = SessionMachine(60, 45, ask_pin=True)
    m.feed(CardSeen(CARD, "04AA"), 0.0)
    actions = m.feed(PinChecked(1, False, message_key="daemon.pin.locked",
                                params={"minutes": 15}, locked=True), 0.1)
    assert actions[0].what == "pin_locked"
    assert isinstance(actions[1], EndSession) and actions[1].reason == "pin_locked"
    assert m.session is None


def test_a_pin_typed_when_none_is_asked_is_ignored() -> None:
    m = SessionMachine(60, 45)
    m.feed(CardSeen(CARD, "04AA"), 0.0)
    assert m.feed(PinEntered("1234"), 0.5) == []


def test_wrong_pins_lock_the_card_out_for_a_while() -> None:
    now = [0.0]
    tries = PinTries(attempts=3, lockout_s=600, clock=lambda: now[0])
    assert [tries.wrong("c"), tries.wrong("c")] == [2, 1]
    tries.right("c")
    assert [tries.wrong("c"), tries.wrong("c"), tries.wrong("c")] == [2, 1, 0]
    assert tries.locked_for("c") == 10 and tries.locked_for("other") == 0
    now[0] = 599.0
    assert tries.locked_for("c") == 1
    now[0] = 600.0
    assert tries.locked_for("c") == 0 and tries.wrong("c") == 2


def _step(tmp_path: Path, policy: str, pin_hash: str | None) -> PinStep:
    path = tmp_path / "kiosk.db"
    make_world(path, cards=[CARDS[0], CARDS[1]])
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE patrons SET pin_hash = ? WHERE card_number = ?",
                     (pin_hash, CARDS[0]))
    settings = settings_for(write_config(tmp_path, path))
    writer = Writer(path, settings.identity(), Policy(), SystemClock())
    writer.open()
    return PinStep(writer, policy, PinTries(attempts=2, lockout_s=60))


def test_the_step_checks_real_hashes_and_locks_out(tmp_path: Path) -> None:
    step = _step(tmp_path, "if_set", pins.hash_pin("2468", log2_n=10))

    async def script() -> list[PinChecked]:
        return [await step.ask(AskPin(1, CARDS[0])),
                await step.ask(AskPin(1, CARDS[1])),
                await step.verify(VerifyPin(1, CARDS[0], "2468")),
                await step.verify(VerifyPin(1, CARDS[0], "1111")),
                await step.verify(VerifyPin(1, CARDS[0], "1111")),
                await step.verify(VerifyPin(1, CARDS[0], "2468"))]

    asked, no_pin, right, wrong, locked, still = asyncio.run(script())
    assert (asked.ok, asked.message_key) == (False, "daemon.pin.enter")
    assert (no_pin.ok, no_pin.needed) == (True, False)
    assert right.ok
    assert (wrong.ok, wrong.params, wrong.locked) == (False, {"left": 1}, False)
    assert (locked.locked, locked.message_key) == (True, "daemon.pin.locked")
    assert (still.ok, still.locked) == (False, True)  # the right PIN does not help now


@pytest.mark.parametrize(("policy", "stored", "key"), [
    ("always", None, "daemon.pin.none"),
    ("if_set", "md5$0123", "daemon.pin.unreadable"),
])
def test_a_patron_who_cannot_give_a_pin_is_sent_to_staff(tmp_path: Path, policy: str,
                                                         stored: str | None, key: str) -> None:
    step = _step(tmp_path, policy, stored)

    async def script() -> PinChecked:
        first = await step.ask(AskPin(1, CARDS[0]))
        if not first.locked:
            return await step.verify(VerifyPin(1, CARDS[0], "1234"))
        return first

    result = asyncio.run(script())
    assert (result.ok, result.locked, result.message_key) == (False, True, key)
