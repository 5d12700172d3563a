"""Online circulation over SIP2: while the link is up the library system decides, and the
cache keeps what it learned (kiosk/daemon/ils.py, sync/online.py).

The real daemon runs in this process with its simulated hardware (tests/daemon_helpers.py)
against the test ILS (tests/sip2_server.py) over real TCP on loopback. The cache lends for
30 days (tests/conftest.py's rules), the test ILS for 14: the due date says who decided.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from hardware.sim.books import uid_for
from kiosk.daemon.state import Finish, PinEntered
from sync.sip2.messages import (
    BlockPatron,
    Checkin,
    Checkout,
    ItemInformationRequest,
    PatronStatusRequest,
    Renew,
)
from tests.daemon_helpers import (
    BOOKS,
    CARDS,
    free_port,
    make_world,
    remove_tree,
    running,
    settings_for,
    short_dir,
    wait_until,
    write_config,
)
from tests.invariants import violations
from tests.sip2_server import INSTITUTION, Ils, Item, Patron, Sip2TestServer

ON_LOAN, ON_SHELF = 0xC2, 0x07
STRANGER = "431100000199"  # a card the library system knows and the cache does not


def make_ils() -> Ils:
    ils = Ils()
    for card in (*CARDS[:4], STRANGER):
        ils.add_patron(Patron(card, f"Reader {card}", "1234"))
    for book in BOOKS[:8]:
        ils.add_item(Item(book, f"ILS title {book}"))
    return ils






@contextlib.contextmanager
def kiosk(port: int, *, timeout_ms: int = 2000, online: bool = True,
          learn: bool = False, sip2_extra: str = "", doors: bool = False,
          before: Any = None, **daemon: Any) -> Iterator[Any]:
    """The daemon with ``[sip2]`` pointing at ``port`` (SIP2 its only sync); with
    ``online``, once its worker has reached the library system. ``learn``: look up each
    card at the start of its session (off here by default: these tests count and break
    the requests of loans and returns one by one)."""
    folder = short_dir()
    try:
        make_world(folder / "kiosk.db")
        if before is not None:
            before(folder)
        (folder / "pw").write_text("secret\n", encoding="utf-8")
        extra = (f'[sip2]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'
                 f'login_user = "kiosk"\npassword_file = "pw"\n'
                 f'institution_id = "{INSTITUTION}"\nprofile = "koha"\nretry_s = 1\n'
                 f"timeout_ms = {timeout_ms}\nconnect_timeout_ms = 1000\n"
                 f"learn_patrons = {'true' if learn else 'false'}\n{sip2_extra}")
        if doors:
            extra += "[lockers]\nopen_timeout_ms = 1000\n"
        config_path = write_config(folder, folder / "kiosk.db", extra=extra, doors=doors)
        with running(settings_for(config_path, **daemon)) as k:
            k.folder = folder
            if online:
                assert wait_until(lambda: k.daemon.sip2.online), "the SIP2 link did not come up"
            yield k
    finally:
        remove_tree(folder)


def lend(k: Any, card: str, book: str) -> dict[str, Any]:
    """Tap ``card``, put ``book`` down: the ``lent`` or ``not_lent`` event of the book."""
    k.lift_card()
    time.sleep(0.2)  # the reader sees the card go (a card lying still starts nothing)
    mark = k.mark()
    k.tap(card)
    k.wait_for("session_started", start=mark, mode="lend")
    k.place(book)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for event in k.kinds("lent", "not_lent")[::-1]:
            if event["barcode"] == book and k.events.index(event) >= mark:
                return event
        time.sleep(0.05)
    raise AssertionError(f"{book} was neither lent nor refused")


def finish(k: Any) -> None:
    mark = k.mark()
    k.put(Finish())
    k.wait_for("session_ended", start=mark)


def passes(k: Any, n: int = 2) -> None:
    """Wait for ``n`` more passes of the SIP2 worker (it replays whatever is pending)."""
    worker = k.daemon.sip2
    for _ in range(n):
        before = worker.last_pass_at
        assert wait_until(lambda b=before: worker.last_pass_at != b, 5)


def query(folder: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{folder / 'kiosk.db'}?mode=ro", uri=True)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def sent(server: Sip2TestServer, kind: type) -> list[Any]:
    return [m for m in server.decoded() if isinstance(m, kind)]


def outcomes(folder: Path) -> list[tuple[str, str, str | None, int]]:
    return query(folder, "SELECT kind, state, code, attempts FROM sip2_outcomes ORDER BY seq")


def checkout_payloads(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p) for (p,) in query(
        folder, "SELECT payload FROM outbox WHERE kind = 'checkout' ORDER BY seq")]


def local_due() -> str:
    """The due date the cache's own rules give today (30 days, no closed days here)."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    return (datetime.now(ZoneInfo("Asia/Shanghai")).date() + timedelta(days=30)).isoformat()


def test_online_loan_and_return_are_decided_by_the_ils_and_kept_in_the_cache():
    ils = make_ils()
    card, book = CARDS[0], BOOKS[0]
    with Sip2TestServer(ils) as server, kiosk(server.port) as k:
        lent = lend(k, card, book)
        assert lent["event"] == "lent"
        ils_due = ils.items[book].due.date().isoformat()
        assert ils_due != local_due()
        assert lent["params"]["due_date"] == ils_due  # what the patron is told
        assert k.afi(book) == ON_LOAN
        finish(k)
        printed = k.wait_for("receipt_printed", kind="loan")
        assert printed["items"] == 1 and ils_due in k.sims.printer.jobs[-1].text
        # One checkout, asked with no block = N; the replayer sends nothing after it.
        passes(k)
        (checkout,) = sent(server, Checkout)
        assert not checkout.no_block and checkout.patron_identifier == card
        assert ils.checkouts == 1 and ils.items[book].charged_to == card
        folder = k.folder
        ((due, flags),) = query(folder, "SELECT due_date, flags FROM loans")
        assert due == ils_due and "ils_decided" in flags.split(",")
        (payload,) = checkout_payloads(folder)
        assert payload["due_date"] == ils_due and "ils_decided" in payload["flags"]
        assert "offline" not in payload["flags"]  # decided online, by the ILS
        assert "local_reason" not in payload  # the cache would have lent it too
        assert outcomes(folder) == [("checkout", "ok", "online", 1)]
        assert query(folder, "SELECT count(*) FROM outbox WHERE acked_at IS NULL") == [(0,)]

        # The patron brings it back, no card: checkin (09) asked first, decided there.
        k.lift_card()
        lifted = k.mark()
        k.sims.tag_pad.remove(uid_for(book))
        k.wait_for("tags", start=lifted, books=0)
        mark = k.mark()
        k.place(book, afi=ON_LOAN)
        k.wait_for("returned", start=mark, barcode=book)
        assert k.afi(book) == ON_SHELF
        finish(k)
        passes(k)
        (checkin,) = sent(server, Checkin)
        assert not checkin.no_block and ils.items[book].charged_to is None
        assert len(sent(server, Checkout)) == 1
        assert outcomes(folder)[1] == ("checkin", "ok", "online", 1)
        assert query(folder, "SELECT count(*) FROM loans WHERE returned_at IS NULL") == [(0,)]
        (returned,) = query(folder, "SELECT payload FROM outbox WHERE kind = 'checkin'")[0]
        assert "ils_decided" in json.loads(returned)["flags"]


def test_an_ils_refusal_is_shown_with_its_message_and_nothing_is_recorded():
    ils = make_ils()
    card, book = CARDS[1], BOOKS[1]
    ils.patrons[card].blocked = True  # the library system blocked the card; the cache
    with Sip2TestServer(ils) as server, kiosk(server.port) as k:  # does not know yet
        refused = lend(k, card, book)
        assert refused["event"] == "not_lent"
        assert refused["message_key"] == "sip2.refused"
        assert refused["params"]["detail"] == "Card blocked"
        assert k.daemon.catalogue.text(refused["message_key"], **refused["params"]) == \
            "图书馆系统没有同意：Card blocked"
        assert k.afi(book) == ON_SHELF
        finish(k)
        passes(k)
        assert len(sent(server, Checkout)) == 1 and ils.checkouts == 0
        folder = k.folder
        assert query(folder, "SELECT count(*) FROM loans") == [(0,)]
        assert query(folder, "SELECT count(*) FROM outbox") == [(0,)]
        # The same card in the cache alone would have been lent the book: the ILS decided.
        assert query(folder, "SELECT count(*) FROM patron_blocks") == [(0,)]


def test_the_ils_lends_what_the_cache_would_refuse_and_the_cache_learns_it():
    """A block the cache still has but the library system lifted, and a card the cache
    has never seen: the library system decides, and the cache records both loans with
    its due date (the stranger as a reader learned from the library system by the loan
    itself: patron lookups are off in this test)."""
    ils = make_ils()
    card = CARDS[2]
    with Sip2TestServer(ils) as server:
        port = server.port
        with kiosk(port) as k:
            conn = sqlite3.connect(k.folder / "kiosk.db")
            with conn:
                conn.execute("INSERT INTO patron_blocks (patron_id, reason, created_at)"
                             " SELECT id, 'fines', '2026-01-01' FROM patrons"
                             " WHERE card_number = ?", (card,))
            conn.close()
            assert lend(k, card, BOOKS[2])["event"] == "lent"
            finish(k)
            stranger = lend(k, STRANGER, BOOKS[3])
            assert stranger["event"] == "lent"
            assert stranger["params"]["due_date"] == ils.items[BOOKS[3]].due.date().isoformat()
            finish(k)
            passes(k)
            folder = k.folder
            blocked, learned = checkout_payloads(folder)
            assert blocked["local_reason"] == "patron_blocked"
            assert learned["local_reason"] == "patron_unknown"
            assert learned["card"] == STRANGER and "ils_decided" in learned["flags"]
            assert query(folder, "SELECT name, patron_type, loan_count FROM patrons"
                         " WHERE card_number = ?", STRANGER) == [("", "sip2", 1)]
            assert [o[:3] for o in outcomes(folder)] == [("checkout", "ok", "online")] * 2
            assert len(sent(server, Checkout)) == 2 and ils.checkouts == 2
            conn = sqlite3.connect(f"file:{folder / 'kiosk.db'}?mode=ro", uri=True)
            try:
                assert violations(conn) == []
            finally:
                conn.close()


def test_link_down_lends_offline_and_replays_once_when_it_is_back():
    ils = make_ils()
    card, book, later = CARDS[3], BOOKS[4], BOOKS[5]
    port = free_port()  # nothing listening yet
    with kiosk(port, online=False) as k:
        assert wait_until(lambda: k.daemon.sip2.last_report is not None)
        assert not k.daemon.sip2.online
        lent = lend(k, card, book)
        assert lent["event"] == "lent" and lent["params"]["due_date"] == local_due()
        finish(k)
        folder = k.folder
        assert outcomes(folder) == []  # nothing was asked: an ordinary offline loan
        (payload,) = checkout_payloads(folder)
        assert "ils_decided" not in payload["flags"] and "offline" in payload["flags"]
        with Sip2TestServer(ils, port=port) as server:
            assert wait_until(lambda: ils.items[book].charged_to == card)
            assert wait_until(lambda: k.daemon.sip2.online)
            # Online again: the next loan is asked first, with no block = N.
            assert lend(k, card, later)["event"] == "lent"
            finish(k)
            passes(k)
            replayed, asked = sent(server, Checkout)
            assert replayed.no_block and replayed.item_identifier == book
            assert not asked.no_block and asked.item_identifier == later
            assert ils.checkouts == 2
            assert outcomes(folder) == [("checkout", "ok", None, 1),
                                        ("checkout", "ok", "online", 1)]


def test_a_reply_slower_than_the_timeout_falls_back_without_a_second_loan():
    """The ILS lends but answers too late: the kiosk decides from its cache, records the
    event as sent with a lost reply, and the replayer finds the book charged (17) instead
    of sending the checkout again."""
    ils = make_ils()
    card, book = CARDS[0], BOOKS[6]
    with Sip2TestServer(ils) as server, kiosk(server.port, timeout_ms=400) as k:
        server.faults.delay = 1.0
        lent = lend(k, card, book)
        server.faults.delay = 0.0
        assert lent["event"] == "lent" and lent["params"]["due_date"] == local_due()
        assert k.afi(book) == ON_LOAN
        finish(k)
        folder = k.folder
        assert wait_until(lambda: outcomes(folder) == [("checkout", "ok", "confirmed", 1)])
        passes(k)
        (checkout,) = sent(server, Checkout)  # the online one, never resent
        assert not checkout.no_block
        assert book in [m.item_identifier for m in sent(server, ItemInformationRequest)]
        assert ils.checkouts == 1 and ils.items[book].charged_to == card
        assert ils.items[book].renewals == 0
        assert query(folder, "SELECT count(*) FROM loans WHERE returned_at IS NULL") == [(1,)]


def test_a_flag_that_fails_undoes_the_ils_loan_through_the_replay():
    ils = make_ils()
    card, book = CARDS[1], BOOKS[7]
    with Sip2TestServer(ils) as server, kiosk(server.port) as k:
        mark = k.mark()
        k.tap(card)
        k.wait_for("session_started", start=mark)
        k.sims.tag_pad.inject("afi_write_fails", count=1)
        k.place(book)
        undone = k.wait_for("not_lent", start=mark, barcode=book)
        assert undone["message_key"] == "daemon.book.not_secured"
        k.wait_for("loan_undone", start=mark, barcode=book)
        assert k.afi(book) == ON_SHELF
        finish(k)
        # The ILS lent it online; the undo's checkin reaches it through the replay.
        assert wait_until(lambda: ils.items[book].charged_to is None)
        passes(k)
        (checkout,) = sent(server, Checkout)
        (checkin,) = sent(server, Checkin)
        assert not checkout.no_block and checkin.no_block
        folder = k.folder
        assert outcomes(folder) == [("checkout", "ok", "online", 1),
                                    ("checkin", "ok", None, 1)]
        assert query(folder, "SELECT count(*) FROM loans WHERE returned_at IS NULL") == [(0,)]
        assert query(folder, "SELECT count(*) FROM outbox WHERE acked_at IS NULL") == [(0,)]



# -- the cache's side alone (sync.online through Circulation) ------------------------------


def test_an_ils_loan_of_a_book_the_cache_has_on_loan_to_another_reader(world):
    """The library system lent a book the cache still shows lent to someone else: the old
    loan ends first, both events are marked answered, and the loan counts stay right."""
    from sync.online import IlsDecision
    from sync.sip2.replay import pending

    world.patron("C1")
    world.patron("C2")
    world.item("B1")
    circ = world.circulation()
    assert circ.checkout("C1", "B1").allowed
    refused = circ.checkout("C2", "B1")
    assert not refused.allowed  # the cache alone says no
    due = date(2027, 1, 15)
    out = circ.checkout("C2", "B1", decided_by_ils=IlsDecision(due, "Title from the ILS"))
    assert out.allowed and out.decision.due_date == due
    assert [e.kind for e in out.events] == ["checkin", "checkout"]
    loan = out.events[-1].payload
    assert loan["local_reason"] == str(refused.decision.reason)
    assert {"ils_decided", "return_then_lend", "on_loan_to_other"} <= set(loan["flags"])
    assert world.one("SELECT title FROM items WHERE barcode = 'B1'") == "书B1"  # kept
    # A book the cache does not know at all: recorded with the ILS's title.
    unknown = circ.checkout("C1", "B9", decided_by_ils=IlsDecision(due, "ILS 书名"))
    assert unknown.allowed and "unknown_item" in unknown.events[-1].payload["flags"]
    assert world.one("SELECT title FROM items WHERE barcode = 'B9'") == "ILS 书名"
    states = world.cache.conn.execute(
        "SELECT kind, state, code FROM sip2_outcomes ORDER BY seq").fetchall()
    assert states == [("checkin", "ok", "online"), ("checkout", "ok", "online"),
                      ("checkout", "ok", "online")]
    # Only the first, offline loan is left for the replayer.
    assert [e.kind for e, _ in pending(world.cache.conn)] == ["checkout"]
    assert world.one("SELECT group_concat(loan_count) FROM patrons ORDER BY id") == "1,1"
    assert violations(world.cache.conn) == []


def test_a_connection_dropped_while_idle_is_reopened_and_the_ils_still_decides():
    ils = make_ils()
    card, book = CARDS[2], BOOKS[5]
    with Sip2TestServer(ils) as server, kiosk(server.port) as k:
        server.faults.drop_before = 1  # the next request is read, then the line goes dead
        lent = lend(k, card, book)
        assert lent["event"] == "lent"
        assert lent["params"]["due_date"] == ils.items[book].due.date().isoformat()
        finish(k)
        passes(k)
        assert len(sent(server, Checkout)) == 2 and ils.checkouts == 1  # one dropped unread
        assert outcomes(k.folder) == [("checkout", "ok", "online", 1)]


def test_a_renewal_is_asked_of_the_ils_and_its_refusal_shown():
    """Renewing from the touchscreen asks the library system (29) first: its yes is
    recorded with its due date and never replayed; its no is the patron's answer, with
    nothing recorded; the replayer sends nothing more."""
    ils = make_ils()
    card, book, other = CARDS[2], BOOKS[2], BOOKS[3]
    with Sip2TestServer(ils) as server, kiosk(server.port) as k:
        assert lend(k, card, book)["event"] == "lent"
        k.place(other)  # the same session
        k.wait_for("lent", barcode=other)
        finish(k)
        ils.items[book].due -= timedelta(days=10)  # so that a renewal moves it
        ok, key, params = k.call(lambda: k.daemon.steps.renew(card, book))
        assert ok and key == "circ.renew.ok", (key, params)
        ils_due = ils.items[book].due.date().isoformat()
        assert params["due_date"] == ils_due and ils.items[book].renewals == 1
        ((due, renewals),) = query(k.folder, "SELECT l.due_date, l.renewals FROM loans l"
                                   " JOIN items i ON i.id = l.item_id WHERE i.barcode = ?",
                                   book)
        assert (due, renewals) == (ils_due, 1)
        ils.items[other].holds.append(CARDS[3])  # another reader waits for it there only
        ok, key, params = k.call(lambda: k.daemon.steps.renew(card, other))
        assert not ok and key == "sip2.refused" and params["detail"] == "Cannot renew"
        assert query(k.folder, "SELECT l.renewals FROM loans l JOIN items i"
                     " ON i.id = l.item_id WHERE i.barcode = ?", other) == [(0,)]
        passes(k)
        assert len(sent(server, Renew)) == 2  # one each, asked online; nothing replayed
        assert [o for o in outcomes(k.folder) if o[0] == "renew"] == [
            ("renew", "ok", "online", 1)]


def test_kiosk_status_says_whether_the_library_system_is_reachable(capsys):
    from tests.daemon_helpers import kiosk as run_kiosk

    with Sip2TestServer(make_ils()) as server, kiosk(server.port) as k:
        code, out, _ = run_kiosk(capsys, k.folder, "status")
        assert code == 0
        assert f"(SIP2, koha): sip2://127.0.0.1:{server.port} is reachable" in out
    port = free_port()  # nothing listens there
    with kiosk(port, online=False) as k:
        passes(k, 1)
        _, out, _ = run_kiosk(capsys, k.folder, "status")
        assert f"sip2://127.0.0.1:{port} is not reachable now" in out


def test_the_cache_learns_readers_and_their_blocks_from_the_library_system():
    """SIP2 as the only link: each card that starts a session is looked up (23) and the
    cache keeps the answer for offline use: an unknown reader added with their name, a
    block the library system has, lifted again once it lets them borrow."""
    ils = make_ils()
    ils.patrons[CARDS[3]].blocked = True
    with Sip2TestServer(ils) as server, kiosk(server.port, learn=True) as k:
        for card in (STRANGER, CARDS[3]):
            k.lift_card()
            time.sleep(0.2)
            mark = k.mark()
            k.tap(card)
            k.wait_for("patron_learned", start=mark)
            finish(k)
        assert query(k.folder, "SELECT name, patron_type FROM patrons WHERE card_number = ?",
                     STRANGER) == [(f"Reader {STRANGER}", "sip2")]
        blocks = ("SELECT b.reason FROM patron_blocks b JOIN patrons p ON p.id = b.patron_id"
                  " WHERE p.card_number = ?")
        assert query(k.folder, blocks, CARDS[3]) == [("library_system",)]
        ils.patrons[CARDS[3]].blocked = False
        k.lift_card()
        time.sleep(0.2)
        mark = k.mark()
        k.tap(CARDS[3])
        assert k.wait_for("patron_learned", start=mark)["changed"] == ["unblocked"]
        assert query(k.folder, blocks, CARDS[3]) == []
        assert len(sent(server, PatronStatusRequest)) == 3


@pytest.mark.parametrize("block", [True, False])
def test_a_card_locked_for_wrong_pins_is_blocked_in_the_library_system_if_configured(block):
    from sync.pins import hash_pin

    ils = make_ils()
    card = CARDS[0]
    with Sip2TestServer(ils) as server, kiosk(
            server.port, sip2_extra=f"block_on_pin_lockout = {str(block).lower()}\n",
            pin="if_set", pin_attempts=2) as k:
        conn = sqlite3.connect(k.folder / "kiosk.db")
        with conn:
            conn.execute("UPDATE patrons SET pin_hash = ? WHERE card_number = ?",
                         (hash_pin("2580"), card))
        conn.close()
        mark = k.mark()
        k.tap(card)
        k.wait_for("pin_needed", start=mark)
        for _ in range(2):
            k.put(PinEntered("1111"))
        k.wait_for("pin_locked", start=mark)
        if block:
            assert wait_until(lambda: ils.patrons[card].blocked)
            (sent_block,) = sent(server, BlockPatron)
            assert sent_block.patron_identifier == card
            assert "too many wrong PINs" in sent_block.blocked_card_msg  # cp850: English
        else:
            passes(k)
            assert sent(server, BlockPatron) == [] and not ils.patrons[card].blocked


@pytest.mark.parametrize("ils_says", ["yes", "no", "yes, but the locker jams"])
def test_a_hold_in_a_locker_is_asked_of_the_ils_before_the_locker_opens(ils_says):
    from tests.test_daemon_doors import _add_hold

    ils = make_ils()
    card, book = CARDS[0], BOOKS[4]
    if ils_says == "no":
        ils.patrons[card].blocked = True
    holds: list[int] = []
    with Sip2TestServer(ils) as server, kiosk(
            server.port, doors=True,
            before=lambda folder: holds.append(_add_hold(folder, card, book, "A02"))) as k:
        if ils_says.endswith("jams"):
            k.control("sim", device="door", action="jam", name="A02")
        k.tap(card)
        k.wait_for("session_started", mode="lend")
        k.control("session", action="pickup", hold=holds[0])
        if ils_says.endswith("jams"):  # lent there, not taken here: given back there
            failed = k.wait_for("pickup_failed", hold_id=holds[0])
            assert failed["message_key"] == "daemon.pickup.not_opened"
            assert [type(m).__name__ for m in server.decoded()
                    if isinstance(m, (Checkout, Checkin))] == ["Checkout", "Checkin"]
            assert ils.items[book].charged_to is None
            assert query(k.folder, "SELECT status FROM holds") == [("ready",)]
        elif ils_says == "yes":
            told = k.wait_for("picked_up", hold_id=holds[0])
            assert told["params"]["due_date"] == ils.items[book].due.date().isoformat()
            k.wait_for("locker_opened", hold_id=holds[0])
            passes(k)
            assert len(sent(server, Checkout)) == 1  # asked online; nothing replayed
            assert [o[:3] for o in outcomes(k.folder)] == [("pickup", "ok", "online")]
        else:
            failed = k.wait_for("pickup_failed", hold_id=holds[0])
            assert failed["message_key"] == "sip2.refused"
            assert failed["params"]["detail"] == "Card blocked"
            assert [e for e in k.kinds("locker_opened")] == []  # nothing opened
            assert query(k.folder, "SELECT status FROM holds") == [("ready",)]
