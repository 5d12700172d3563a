"""The circulation service on a real cache file: each change commits with its event."""

from __future__ import annotations

import json
import sqlite3

import pytest

from sync import outbox, stats
from sync.clock import hlc_parts
from sync.policy import Station
from sync.rules import Reason
from tests.conftest import CENTRAL, HERE


def test_checkout_commits_loan_event_and_stats_together(world):
    pid = world.patron("C1")
    iid = world.item("B1")
    out = world.circulation().checkout("C1", "B1")
    assert out.allowed and out.decision.due_date.isoformat() == "2026-12-25"
    loan = world.sql("SELECT patron_id, item_id, due_date, checkout_txn FROM loans")
    assert loan == [(pid, iid, "2026-12-25", out.events[0].txn_id)]
    assert world.one("SELECT loan_count FROM patrons WHERE id = ?", pid) == 1
    assert world.one("SELECT status FROM items WHERE id = ?", iid) == "on_loan"
    (event,) = outbox.unacknowledged(world.cache.conn)
    assert (event.seq, event.kind, event.device_id) == (1, "checkout", "test-01")
    assert event.payload["card"] == "C1" and event.payload["item"] == "B1"
    assert event.payload["branch"] == HERE and event.boot_id == "boot-a"
    assert event.clock_synced is True
    assert stats.totals(world.cache.conn) == {"loans": 1}


def test_event_carries_every_design_field(world):
    world.patron("C1")
    world.item("B1")
    world.circulation().checkout("C1", "B1")
    row = world.sql("SELECT txn_id, device_id, seq, boot_id, mono_ns, wall_ns, clock_synced,"
                    " hlc, payload FROM outbox")[0]
    assert all(v is not None for v in row)
    assert len(row[0]) == 32 and row[4] > 0 and row[5] == world.clock.wall
    assert hlc_parts(row[7])[0] == world.clock.wall // 1_000_000
    assert json.loads(row[8])["due_date"] == "2026-12-25"


def test_refused_checkout_counts_but_changes_nothing(world):
    world.patron("C1", expires_on="2026-01-01")
    world.item("B1")
    out = world.circulation().checkout("C1", "B1")
    assert out.decision.reason is Reason.PATRON_EXPIRED
    assert out.events == ()
    assert world.sql("SELECT count(*) FROM loans") == [(0,)]
    assert world.events() == []
    totals = stats.totals(world.cache.conn)
    assert totals == {"refused": 1, "refused.checkout.patron_expired": 1}


def test_return_anywhere_marks_transit_to_home_branch(world):
    world.patron("C1")
    world.item("B1", owning_branch=CENTRAL)
    circ = world.circulation()
    circ.checkout("C1", "B1")
    out = circ.checkin("B1")
    assert out.decision.route.to_branch == CENTRAL
    assert out.route_branch_name == "县图书馆"
    assert world.sql("SELECT status, transit_to, current_branch FROM items") == [
        ("in_transit", CENTRAL, HERE)]
    assert world.sql("SELECT returned_at IS NOT NULL, return_branch FROM loans") == [(1, HERE)]
    assert world.one("SELECT loan_count FROM patrons") == 0
    assert world.events() == [(1, "checkout"), (2, "checkin")]


def test_checkin_twice_records_one_return(world):
    world.patron("C1")
    world.item("B1")
    circ = world.circulation()
    circ.checkout("C1", "B1")
    circ.checkin("B1")
    again = circ.checkin("B1")
    assert again.decision.reason is Reason.ALREADY_RETURNED and again.events == ()
    assert world.events() == [(1, "checkout"), (2, "checkin")]
    assert stats.totals(world.cache.conn)["returns"] == 1


def test_return_traps_item_for_waiting_hold_here(world):
    world.patron("C1")
    holder = world.patron("C2")
    iid = world.item("B1")
    circ = world.circulation()
    circ.checkout("C1", "B1")
    world.sql("INSERT INTO holds (patron_id, item_id, pickup_branch, placed_at) VALUES"
              " (?, ?, ?, '2026-11-20')", holder, iid, HERE)
    out = circ.checkin("B1")
    assert out.decision.route.kind == "hold_here"
    assert world.sql("SELECT status, pickup_expires_on FROM holds") == [("ready", "2026-12-02")]
    assert world.one("SELECT status FROM items") == "on_hold_shelf"


def test_unknown_item_lent_offline_creates_flagged_stub(world):
    world.patron("C1")
    out = world.circulation().checkout("C1", "NEW-1")
    assert out.allowed and "unknown_item" in out.as_dict()["flags"]
    rows = world.sql("SELECT barcode, status, flags FROM items")
    assert rows == [("NEW-1", "on_loan", "unknown")]
    assert "unknown_item" in world.one("SELECT flags FROM loans")


def test_return_then_lend_at_desk_is_two_events_in_one_transaction(world):
    world.patron("C1")
    world.patron("C2")
    world.item("B1")
    circ = world.circulation()
    circ.checkout("C1", "B1")
    kiosk = circ.checkout("C2", "B1")
    assert kiosk.decision.reason is Reason.ON_LOAN_TO_OTHER
    desk = circ.checkout("C2", "B1", station=Station.DESK)
    assert desk.allowed and [e.kind for e in desk.events] == ["checkin", "checkout"]
    assert world.sql("SELECT card_number, loan_count FROM patrons ORDER BY id") == [
        ("C1", 0), ("C2", 1)]
    assert world.events() == [(1, "checkout"), (2, "checkin"), (3, "checkout")]


def test_renew_moves_due_date_and_counts(world):
    world.patron("C1")
    world.item("B1")
    circ = world.circulation()
    circ.checkout("C1", "B1")
    world.clock.advance(20 * 86400)
    out = circ.renew("C1", "B1")
    assert out.allowed and out.decision.due_date.isoformat() == "2027-01-14"
    assert world.sql("SELECT due_date, renewals FROM loans") == [("2027-01-14", 1)]
    circ.renew("C1", "B1")
    third = circ.renew("C1", "B1")
    assert third.decision.reason is Reason.RENEWAL_LIMIT
    assert [k for _, k in world.events()] == ["checkout", "renew", "renew"]


def test_pickup_fulfils_hold_and_lends(world):
    pid = world.patron("C1")
    iid = world.item("B1", status="on_hold_shelf")
    world.sql("INSERT INTO holds (patron_id, item_id, pickup_branch, placed_at, status,"
              " locker_slot, pickup_expires_on) VALUES (?, ?, ?, '2026-11-20', 'ready', 'A03',"
              " '2026-11-30')", pid, iid, HERE)
    circ = world.circulation()
    (ready,) = circ.ready_holds("C1")
    assert ready["locker_slot"] == "A03" and ready["barcode"] == "B1"
    out = circ.pickup("C1", ready["hold_id"])
    assert out.allowed and out.decision.locker_slot == "A03"
    assert world.sql("SELECT status, locker_slot FROM holds") == [("fulfilled", None)]
    assert world.one("SELECT count(*) FROM loans WHERE returned_at IS NULL") == 1
    assert world.events() == [(1, "pickup")]
    assert circ.pickup("C1", ready["hold_id"]).decision.reason is Reason.NO_HOLD_READY


def test_wall_clock_going_back_never_moves_hlc_back(world):
    world.patron("C1")
    for n in range(3):
        world.item(f"B{n}")
    circ = world.circulation()
    circ.checkout("C1", "B0")
    world.clock.advance(-3 * 86400)  # power cut, Pi boots with an old clock
    world.clock.sync = False
    out = circ.checkout("C1", "B1")
    assert "clock_untrusted" in out.as_dict()["flags"]
    circ.checkout("C1", "B2")
    hlcs = [r[0] for r in world.sql("SELECT hlc FROM outbox ORDER BY seq")]
    assert hlcs == sorted(hlcs) and len(set(hlcs)) == 3
    synced = [r[0] for r in world.sql("SELECT clock_synced FROM outbox ORDER BY seq")]
    assert synced == [1, 0, 0]


def test_hlc_survives_reopening_the_database(world, tmp_path):
    from sync import db
    world.patron("C1")
    world.item("B1")
    world.item("B2")
    world.circulation().checkout("C1", "B1")
    first = world.one("SELECT hlc FROM outbox")
    world.cache.close()
    world.clock.advance(-86400)
    world.cache = db.Cache.open(world.path)
    world.circulation().checkout("C1", "B2")
    assert world.one("SELECT max(hlc) FROM outbox") > first


def test_seq_is_gap_free_across_refusals_and_failures(world):
    world.patron("C1")
    world.patron("X", expires_on="2020-01-01")
    world.item("B1")
    world.item("B2")
    circ = world.circulation()
    circ.checkout("C1", "B1")
    circ.checkout("X", "B2")  # refused: no event, no seq consumed
    # A failure inside the transaction (a constraint) must give its seq back.
    world.cache.conn.execute(
        "CREATE TRIGGER boom BEFORE INSERT ON loans WHEN NEW.item_id = "
        "(SELECT id FROM items WHERE barcode = 'B2') BEGIN SELECT RAISE(ABORT, 'boom'); END")
    from sync.errors import CacheError
    with pytest.raises((CacheError, sqlite3.Error)):
        circ.checkout("C1", "B2")
    world.cache.conn.execute("DROP TRIGGER boom")
    circ.checkout("C1", "B2")
    assert [s for s, _ in world.events()] == [1, 2]
    assert world.one("SELECT loan_count FROM patrons WHERE card_number = 'C1'") == 2


def test_acknowledged_events_leave_the_queue_but_stay_until_pruned(world):
    world.patron("C1")
    world.item("B1")
    world.item("B2")
    circ = world.circulation()
    circ.checkout("C1", "B1")
    circ.checkout("C1", "B2")
    with world.cache.transaction() as conn:
        assert outbox.acknowledge(conn, "test-01", 1, "2026-11-25T10:00:00+08:00") == 1
    assert [e.seq for e in outbox.unacknowledged(world.cache.conn)] == [2]
    assert world.one("SELECT count(*) FROM outbox") == 2


def test_outbox_append_outside_transaction_is_refused(world):
    from sync.clock import read
    with pytest.raises(RuntimeError):
        outbox.append(world.cache.conn, device_id="d", kind="x", payload={},
                      reading=read(world.clock))
