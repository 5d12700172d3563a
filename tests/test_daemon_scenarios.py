"""Scenario tests of the whole daemon: a script of hardware events on the simulated devices
and the outcomes a patron and staff would see (loans recorded, tags flagged, receipts
printed), including faults in the middle of a session.

The daemon runs in this process (see tests/daemon_helpers.py) with the real drivers on the
simulators: a FEIG reader on a pty, an MFRC522 at the register level, an ESC/POS printer.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hardware.sim.books import book_tag, uid_for
from hardware.sim.feig import FeigSimulator
from hardware.sim.iso15693 import VirtualTag
from kiosk.daemon.db import Writer
from kiosk.daemon.state import Finish
from sync import db
from sync.circulation import Circulation
from sync.clock import SystemClock
from tests.daemon_helpers import (
    BOOKS,
    CARDS,
    make_world,
    remove_tree,
    running,
    settings_for,
    short_dir,
    write_config,
)
from tests.invariants import violations

ON_LOAN, ON_SHELF = 0xC2, 0x07


@pytest.fixture
def kiosk_dir():
    folder = short_dir()
    make_world(folder / "kiosk.db")
    yield folder
    remove_tree(folder)


def _settings(folder: Path, **daemon):
    return settings_for(write_config(folder, folder / "kiosk.db"), **daemon)


def _loans(folder: Path) -> dict[str, str]:
    """Open loans: barcode -> card."""
    with db.Cache.open(folder / "kiosk.db") as cache:
        rows = cache.conn.execute(
            "SELECT i.barcode, p.card_number FROM loans l JOIN items i ON i.id = l.item_id"
            " JOIN patrons p ON p.id = l.patron_id WHERE l.returned_at IS NULL").fetchall()
        assert violations(cache.conn) == []
    return dict(rows)


def _events(folder: Path) -> list[str]:
    with db.Cache.open(folder / "kiosk.db") as cache:
        return [r[0] for r in cache.conn.execute("SELECT kind FROM outbox ORDER BY seq")]


def _journal(folder: Path) -> list[tuple[str, str]]:
    with db.Cache.open(folder / "kiosk.db") as cache:
        return cache.conn.execute("SELECT barcode, state FROM flag_pending").fetchall()


def test_card_then_three_books_are_lent_flagged_and_receipted(kiosk_dir):
    card, books = CARDS[0], BOOKS[:3]
    with running(_settings(kiosk_dir)) as k:
        k.tap(card)
        started = k.wait_for("session_started", mode="lend")
        k.place(*books)
        for barcode in books:
            k.wait_for("lent", barcode=barcode)
        assert [k.afi(b) for b in books] == [ON_LOAN] * 3
        k.put(Finish())
        k.wait_for("session_ended", session=started["session"], reason="finished")
        printed = k.wait_for("receipt_printed", kind="loan")
        assert printed["items"] == 3
        receipt = k.sims.printer.jobs[-1]
        assert not receipt.lost and receipt.cut
        for barcode in books:
            assert f"书{barcode}" in receipt.text
        assert "借书凭条" in receipt.text and card not in receipt.text  # the card is masked
    assert _loans(kiosk_dir) == dict.fromkeys(books, card)
    assert _events(kiosk_dir) == ["checkout"] * 3
    assert _journal(kiosk_dir) == []


def test_books_placed_without_a_card_are_returned(kiosk_dir):
    card, books = CARDS[1], BOOKS[3:5]
    with running(_settings(kiosk_dir)) as k:
        k.tap(card)
        k.place(*books)
        for barcode in books:
            k.wait_for("lent", barcode=barcode)
        k.lift_card()
        k.put(Finish())
        k.wait_for("session_ended", reason="finished")
        lifted = k.mark()
        for barcode in books:
            k.sims.tag_pad.remove(uid_for(barcode))
        k.wait_for("tags", start=lifted, books=0)
        # Later someone brings them back and puts them down, with no card.
        mark = k.mark()
        for barcode in books:
            k.sims.tag_pad.place(_tag_at(barcode, ON_LOAN))
        started = k.wait_for("session_started", start=mark, mode="return")
        for barcode in books:
            k.wait_for("returned", start=mark, barcode=barcode)
        assert [k.afi(b) for b in books] == [ON_SHELF] * 2
        k.put(Finish())
        k.wait_for("session_ended", start=mark, session=started["session"])
        k.wait_for("receipt_printed", start=mark, kind="return")
        assert "还书凭条" in k.sims.printer.jobs[-1].text
    assert _loans(kiosk_dir) == {}
    assert _events(kiosk_dir) == ["checkout", "checkout", "checkin", "checkin"]


def _tag_at(barcode: str, afi: int) -> VirtualTag:
    return book_tag(barcode, afi=afi)


def test_reader_unplugged_while_lending_leaves_nothing_half_done(kiosk_dir):
    card, books = CARDS[2], BOOKS[5:8]
    with running(_settings(kiosk_dir)) as k:
        k.tap(card)
        k.wait_for("session_started")
        # The cable comes out while the first book's security flag is being written.
        k.sims.tag_pad.inject("unplug", on="write_afi")
        k.place(*books)
        first = k.wait_for("loan_committed")
        k.wait_for("not_lent", barcode=first["barcode"],
                   message_key="daemon.book.not_secured")
        k.wait_for("state", state="degraded")
        others = [b for b in books if b != first["barcode"]]
        for barcode in others:
            k.wait_for("not_lent", barcode=barcode, message_key="daemon.book.reader_offline")
        assert k.kinds("lent") == []
        status = k.control("status")
        assert status["state"] == "degraded" and not status["devices"]["tag_reader"]["online"]
        # The undone loan's tag may say "on loan" (the write reached the tag before the
        # cable went): the journal lists it until the tag is back on the shelf.
        assert [(r["barcode"], r["state"]) for r in status["flag_pending"]] == [
            (first["barcode"], "undone")]
        k.sims.tag_pad.replug()
        k.wait_for("state", state="ready", timeout=15)
        k.wait_for("flag_settled", barcode=first["barcode"])
        assert k.afi(first["barcode"]) == ON_SHELF
    assert _loans(kiosk_dir) == {}
    assert _events(kiosk_dir) == ["checkout", "checkin"]
    assert _journal(kiosk_dir) == []


def test_printer_out_of_paper_says_the_loans_are_recorded(kiosk_dir):
    card, book = CARDS[3], BOOKS[8]
    with running(_settings(kiosk_dir)) as k:
        k.sims.printer.inject("paper_out")
        k.wait_for("printer", problems=["paper_out"])
        k.tap(card)
        k.place(book)
        k.wait_for("lent", barcode=book)
        k.put(Finish())
        failed = k.wait_for("receipt_failed", kind="loan")
        assert failed["message_key"] == "daemon.receipt.not_printed_loan"
        assert "paper" in failed["params"]["detail"]
        assert k.daemon.catalogue.text(failed["message_key"], **failed["params"]).endswith(
            "您的借阅已记录。")
        assert [j for j in k.sims.printer.jobs if not j.lost] == []
    assert _loans(kiosk_dir) == {book: card}


@pytest.mark.parametrize("fault", ["afi_write_fails", "afi_not_stick"])
def test_a_failed_afi_write_undoes_that_loan_only(kiosk_dir, fault):
    card, books = CARDS[4], BOOKS[9:12]
    with running(_settings(kiosk_dir)) as k:
        k.tap(card)
        k.wait_for("session_started")
        k.sims.tag_pad.inject(fault, count=1)
        k.place(*books)
        undone = k.wait_for("not_lent", message_key="daemon.book.not_secured")
        bad = undone["barcode"]
        good = [b for b in books if b != bad]
        for barcode in good:
            k.wait_for("lent", barcode=barcode)
        k.wait_for("loan_undone", barcode=bad)
        assert k.afi(bad) == ON_SHELF and [k.afi(b) for b in good] == [ON_LOAN] * 2
        k.put(Finish())
        k.wait_for("receipt_printed")
        text = k.sims.printer.jobs[-1].text
        assert "未能办理" in text and f"书{bad}" in text
    assert _loans(kiosk_dir) == dict.fromkeys(good, card)
    assert sorted(_events(kiosk_dir)) == ["checkin", "checkout", "checkout", "checkout"]
    assert _journal(kiosk_dir) == []


def test_a_card_left_on_the_reader_does_not_keep_the_session(kiosk_dir):
    with running(_settings(kiosk_dir, session_timeout_s=1.5, session_warning_s=0.8)) as k:
        k.tap(CARDS[5])
        started = k.wait_for("session_started")
        k.place(BOOKS[12])
        k.wait_for("lent", barcode=BOOKS[12])
        warned = k.wait_for("warning", session=started["session"])
        assert warned["message_key"] == "daemon.session.warning"
        ended = k.wait_for("session_ended", session=started["session"], timeout=5)
        assert ended["reason"] == "timeout"
        assert ended["mono"] - warned["mono"] < 1.5
        # The card still lies there: no new session starts by itself.
        time.sleep(1.0)
        assert len(k.kinds("session_started")) == 1
        assert k.control("status")["session"] is None


def test_a_new_card_ends_the_previous_session(kiosk_dir):
    first, second = CARDS[6], CARDS[7]
    with running(_settings(kiosk_dir)) as k:
        k.tap(first)
        one = k.wait_for("session_started")
        k.place(BOOKS[13])
        k.wait_for("lent", barcode=BOOKS[13])
        k.tap(second)
        ended = k.wait_for("session_ended", session=one["session"])
        assert ended["reason"] == "new_card"
        two = k.wait_for("session_started", start=k.events.index(ended))
        assert two["session"] != one["session"]
        k.wait_for("receipt_printed", session=one["session"])
        # The first patron's book still lies on the pad: it is not lent to the second.
        k.place(BOOKS[14])
        k.wait_for("lent", barcode=BOOKS[14], session=two["session"])
    assert _loans(kiosk_dir) == {BOOKS[13]: first, BOOKS[14]: second}


def test_a_book_not_on_loan_placed_without_a_card_is_not_returned(kiosk_dir):
    with running(_settings(kiosk_dir)) as k:
        k.wait_for("tags", initial=True)
        k.place(BOOKS[15])
        k.wait_for("session_started", mode="return")
        refused = k.wait_for("not_returned", barcode=BOOKS[15])
        assert refused["message_key"].startswith("circ.reason.")
        k.put(Finish())
        ended = k.wait_for("session_ended")
        assert ended["receipts"] == 0
    assert _events(kiosk_dir) == []


def test_books_on_the_pad_at_start_are_left_alone_and_unconfirmed_loans_undone(kiosk_dir):
    """The tag reader is a simulator of this test's own (as a real reader would be): its
    books lie on the pad before the daemon starts and after it stops."""
    lent_before_crash, lying_there = BOOKS[16], BOOKS[17]
    # A loan committed with its journal row, its tag never set: as a crash leaves it.
    settings = _settings(kiosk_dir)
    writer = Writer(kiosk_dir / "kiosk.db", settings.identity(), settings.policy(), SystemClock())
    writer.open()
    uid = uid_for(lent_before_crash).hex().upper()
    assert writer.lend(CARDS[8], lent_before_crash, uid).allowed
    writer.close()
    assert _journal(kiosk_dir) == [(lent_before_crash, "lent")]
    with FeigSimulator(kiosk_dir, link_name="ttyPAD") as pad:
        pad.place(book_tag(lent_before_crash))
        pad.place(book_tag(lying_there))
        config = write_config(kiosk_dir, kiosk_dir / "kiosk.db",
                              extra=f'[tag_reader]\nurl = "{pad.path}"\n')
        with running(settings_for(config)) as k:
            initial = k.wait_for("tags", initial=True)
            assert sorted(initial["barcodes"]) == sorted([lent_before_crash, lying_there])
            k.wait_for("flag_settled", barcode=lent_before_crash)
            k.tap(CARDS[0])
            k.wait_for("session_started")
            k.wait_for("card_seen")
            time.sleep(0.5)
            assert k.kinds("lent", "returned", "not_lent", "not_returned") == []
            assert k.control("status")["flag_pending"] == []
        assert pad.tag(uid_for(lent_before_crash)).afi == ON_SHELF
    assert _loans(kiosk_dir) == {}
    assert _events(kiosk_dir) == ["checkout", "checkin"]


def test_an_unreadable_tag_is_reported_and_the_others_lent(kiosk_dir):
    with running(_settings(kiosk_dir)) as k:
        k.tap(CARDS[0])
        k.wait_for("session_started")
        blank = VirtualTag(bytes.fromhex("E004010000000001"), bytearray(28 * 4))
        k.sims.tag_pad.place(blank)
        k.place(BOOKS[18])
        k.wait_for("lent", barcode=BOOKS[18])
        bad = k.wait_for("unreadable", timeout=5)
        assert bad["message_key"] == "daemon.book.unreadable"
        assert bad["uid"] == blank.uid.hex().upper()


def test_the_flag_journal_follows_the_book(kiosk_dir):
    """A journal row says what a tag must say only until the book circulates again."""
    settings = _settings(kiosk_dir)
    writer = Writer(kiosk_dir / "kiosk.db", settings.identity(), settings.policy(), SystemClock())
    writer.open()
    try:
        book, uid = BOOKS[20], uid_for(BOOKS[20]).hex().upper()
        first = writer.lend(CARDS[0], book, uid)
        txn = first.events[0].txn_id
        assert _journal(kiosk_dir) == [(book, "lent")]
        # A refused attempt changes nothing in the journal.
        assert not writer.lend(CARDS[1], book, uid).allowed
        assert _journal(kiosk_dir) == [(book, "lent")]
        writer.undo(book, txn)
        assert _journal(kiosk_dir) == [(book, "undone")]
        # Lent again: the new loan's row replaces the old one.
        second = writer.lend(CARDS[1], book, uid)
        assert [(r[0], r[1]) for r in _journal(kiosk_dir)] == [(book, "lent")]
        writer.flag_confirmed(second.events[0].txn_id)
        assert _journal(kiosk_dir) == []
        # A loan left unconfirmed, then returned with `kiosk circ checkin` while no daemon
        # ran (so nothing touched the journal): the row is stale, and goes.
        other = BOOKS[21]
        writer.lend(CARDS[2], other, uid_for(other).hex().upper())
        with db.Cache.open(kiosk_dir / "kiosk.db") as cache:
            Circulation(cache, settings.identity(), settings.policy(), SystemClock()).checkin(other)
        assert _journal(kiosk_dir) == [(other, "lent")]
        assert writer.forget_stale() == 1 and _journal(kiosk_dir) == []
    finally:
        writer.close()
