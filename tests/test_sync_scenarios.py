"""Stories of the county, end to end through the real hub: two vans lending the same book
offline, card numbers issued offline on two vans, and a van whose clock was wrong."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sync import db, maintenance
from sync.circulation import Circulation, Identity
from sync.hub.testing import HubServer
from sync.policy import Policy, Station
from sync.sample import EDGE_CASES as E
from sync.syncer import Syncer
from tests.conftest import NOON_ISH, ManualClock
from tests.test_sync_client import FAST, client_for

SPACE = "CN-431121-0002"
VANS = {"van-01": "van-01-token-0123456789", "van-02": "van-02-token-0123456789",
        "van-03": "van-03-token-0123456789"}


class Van:
    def __init__(self, hub: HubServer, folder: Path, device: str, clock: ManualClock):
        self.device = device
        self.clock = clock
        self.cache = db.create(folder / f"{device}.db")
        self.client = client_for(hub.url, clock, device=device, token=VANS[device])
        self.syncer = Syncer(self.cache, self.client, options=FAST)
        self.circ = Circulation(self.cache, Identity(device, SPACE, station=Station.DESK),
                                Policy(), clock)

    def sync(self):
        report = self.syncer.run_once()
        assert report.ok, report.error
        return report

    def one(self, sql: str, *args: object) -> object:
        row = self.cache.conn.execute(sql, args).fetchone()
        return None if row is None else row[0]

    def close(self) -> None:
        self.client.close()
        self.cache.close()


@pytest.fixture
def county(tmp_path: Path):
    with HubServer(tmp_path / "hub.db", sample="small", devices=VANS) as hub:
        vans = [Van(hub, tmp_path, d, ManualClock(NOON_ISH, boot_id=f"boot-{d}"))
                for d in VANS]
        for van in vans:
            van.sync()
        yield hub, vans
        for van in vans:
            van.close()


def _open_loan(conn: sqlite3.Connection, barcode: str) -> tuple | None:
    return conn.execute(
        "SELECT p.card_number, l.due_date FROM loans l JOIN items i ON i.id = l.item_id"
        " JOIN patrons p ON p.id = l.patron_id WHERE i.barcode = ? AND l.returned_at IS NULL",
        (barcode,)).fetchone()


def test_two_vans_lend_the_same_book_offline(county) -> None:
    hub, (a, b, _c) = county
    book = E["available_item"]
    assert a.circ.checkout(E["ok_patron"], book).allowed
    b.clock.advance(600)  # van 2 lends it ten minutes later (a copy mislabelled, say)
    assert b.circ.checkout(E["student_patron"], book).allowed
    first, second = a.sync(), b.sync()
    assert first.acknowledged == 1 and second.acknowledged == 1
    a.sync()
    with sqlite3.connect(hub.db_path) as h:
        at_hub = _open_loan(h, book)
        open_loans = h.execute("SELECT count(*) FROM loans l JOIN items i ON i.id = l.item_id"
                               " WHERE i.barcode = ? AND returned_at IS NULL",
                               (book,)).fetchone()[0]
    # The physical fact that came last wins at the hub, and both vans agree with it.
    assert open_loans == 1 and at_hub[0] == E["student_patron"]
    for van in (a, b):
        assert _open_loan(van.cache.conn, book) == at_hub
        assert van.one("SELECT status FROM items WHERE barcode = ?", book) == "on_loan"
        assert van.one("SELECT loan_count FROM patrons WHERE card_number = ?",
                       E["ok_patron"]) == 0
        assert maintenance.check(van.cache).ok
    flagged = [f for r in (first, second) for f in r.flagged]
    assert flagged, "a conflict the staff should see was not flagged"


def test_card_numbers_never_issued_twice_across_vans(county) -> None:
    hub, vans = county
    for van in vans:
        lease = van.client.lease_card_range(size=50)
        assert lease["last_number"] - lease["first_number"] == 49
        van.sync()
    issued: dict[str, set[str]] = {}
    for van in vans:
        rows = van.cache.conn.execute(
            "SELECT prefix, first_number, last_number FROM card_ranges").fetchall()
        assert len(rows) == 1, "each van holds its own range only"
        prefix, first, last = rows[0]
        # Every number of the range, as the van would issue them offline.
        issued[van.device] = {f"{prefix}{n:08d}" for n in range(first, last + 1)}
    everyone = [n for numbers in issued.values() for n in numbers]
    assert len(everyone) == len(set(everyone)) == 150
    with sqlite3.connect(hub.db_path) as h:
        patrons = {r[0] for r in h.execute("SELECT card_number FROM patrons")}
    assert not patrons & set(everyone), "a leased number belongs to a patron already"


def test_wrong_clock_is_corrected_by_the_anchors(county) -> None:
    hub, (_a, _b, van) = county
    # The van booted without network: its wall clock says 2020, and it knows it is unsure.
    van.clock.wall = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp() * 1e9)
    van.clock.sync = False
    van.clock.boot = "boot-after-power-cut"
    assert van.circ.checkout(E["elderly_patron"], E["available_item_2"]).allowed
    van.clock.advance(900)  # the link comes back a quarter of an hour later
    before = time.time_ns()
    report = van.sync()
    after = time.time_ns()
    assert report.acknowledged == 1
    with sqlite3.connect(hub.db_path) as h:
        corrected, basis, wall = h.execute(
            "SELECT corrected_time_ns, time_basis, wall_ns FROM hub_events"
            " WHERE device_id = 'van-03'").fetchone()
    assert basis == "anchor"
    assert before - 900e9 - 2e9 <= corrected <= after - 900e9 + 2e9
    assert abs(corrected - wall) > 365 * 86_400e9
    verdict = van.cache.conn.execute(
        "SELECT outcome, code, corrected_time_ns FROM sync_verdicts").fetchone()
    assert verdict[1] == "clock_corrected" and verdict[2] == corrected
