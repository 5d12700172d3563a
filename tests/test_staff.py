"""Staff access: sign-in with card and PIN, a lockout that outlives a restart, automatic
sign-out, the append-only audit, and overrides at the desk recorded as such."""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from kiosk.messages import texts as catalogue_texts
from sync import audit, db, outbox, staff
from sync.policy import Station
from sync.rules import Reason
from sync.staff import (
    Limits,
    OverrideNotAllowed,
    OverrideProblem,
    SignInReason,
    SignInRefused,
    SignOutReason,
    StaffSession,
)

CARD = "9900000101"
PIN = "73519"  # digits that appear nowhere else in these tests' data


@pytest.fixture
def desk(world):
    staff.add_staff(world.cache.conn, CARD, "馆员李娜", "van", PIN)
    return world


def now_of(world) -> datetime:
    return datetime.fromtimestamp(world.clock.wall / 1e9, UTC)


def sign_in(world, pin: str = PIN, card: str = CARD, **kw):
    return staff.sign_in(world.cache.conn, card, pin, now_of(world),
                         now_ns=world.clock.monotonic_ns(), **kw)


def actions(world) -> list[str]:
    return [r[0] for r in world.sql("SELECT action FROM staff_audit ORDER BY id")]


# -- signing in ----------------------------------------------------------------------------

def test_sign_in_with_card_and_pin(desk):
    session = sign_in(desk)
    assert isinstance(session, StaffSession) and session.ok
    assert (session.card_number, session.name, session.role) == (CARD, "馆员李娜", "van")
    assert session.signed_in_at == now_of(desk)
    assert session.message_key == "staff.sign_in.ok" and session.params == {"name": "馆员李娜"}
    assert actions(desk) == ["sign_in"]
    row = desk.sql("SELECT staff_id, staff_card, details FROM staff_audit")[0]
    assert row[0] == session.staff_id and row[1] == CARD
    assert json.loads(row[2]) == {"role": "van"}


def test_wrong_pin_counts_down_and_a_right_one_clears_the_count(desk):
    lefts = []
    for _ in range(3):
        refused = sign_in(desk, "0000")
        assert isinstance(refused, SignInRefused) and refused.reason is SignInReason.WRONG_PIN
        assert refused.message_key == "staff.sign_in.wrong_pin"
        lefts.append(refused.params["left"])
    assert lefts == [4, 3, 2]
    assert desk.one("SELECT failures FROM staff_sign_in") == 3
    assert sign_in(desk).ok
    assert desk.one("SELECT failures FROM staff_sign_in") == 0
    assert sign_in(desk, "0000").params == {"left": 4}


def test_lockout_after_the_limit_survives_reopening_the_database(desk):
    for _ in range(4):
        sign_in(desk, "1111")
    fifth = sign_in(desk, "1111")
    assert fifth.reason is SignInReason.LOCKED_OUT and fifth.params == {"minutes": 15}
    assert fifth.message_key == "staff.sign_in.locked_out"
    # Even the right PIN is refused now, and its check costs no scrypt.
    assert sign_in(desk).reason is SignInReason.LOCKED_OUT
    desk.cache.close()
    desk.cache = db.Cache.open(desk.path)
    desk.clock.advance(60 * 5)
    again = sign_in(desk)
    assert again.reason is SignInReason.LOCKED_OUT and again.params == {"minutes": 10}
    assert "sign_in_locked_out" in actions(desk)


def test_lockout_expires(desk):
    for _ in range(5):
        sign_in(desk, "1111")
    desk.clock.advance(15 * 60 + 1)
    session = sign_in(desk)
    assert session.ok
    # A fresh set of tries after a lockout.
    desk.clock.advance(1)
    assert sign_in(desk, "1111").params == {"left": 4}


def test_attempts_and_lockout_are_configurable(desk):
    limits = Limits(attempts=2, lockout=timedelta(minutes=3))
    assert sign_in(desk, "1111", limits=limits).params == {"left": 1}
    assert sign_in(desk, "1111", limits=limits).params == {"minutes": 3}
    desk.clock.advance(3 * 60)
    assert sign_in(desk, limits=limits).ok
    with pytest.raises(ValueError):
        Limits(attempts=0)


def test_a_clock_gone_back_never_lengthens_the_lockout(desk):
    for _ in range(5):
        sign_in(desk, "1111")
    desk.clock.advance(-3 * 24 * 3600)  # a Pi booted without its time
    assert sign_in(desk).params == {"minutes": 15}


def test_unknown_and_inactive_cards_are_refused_and_audited(desk):
    unknown = sign_in(desk, card="9900000999")
    assert unknown.reason is SignInReason.UNKNOWN_CARD
    staff.set_active(desk.cache.conn, CARD, False)
    inactive = sign_in(desk)
    assert inactive.reason is SignInReason.INACTIVE
    assert inactive.message_key == "staff.sign_in.inactive"
    details = [json.loads(r[0])["reason"] for r in desk.sql(
        "SELECT details FROM staff_audit ORDER BY id")]
    assert details == ["unknown_card", "inactive"]
    # An inactive card's tries are not counted (its PIN is never checked).
    assert desk.sql("SELECT * FROM staff_sign_in") == []


def test_unreadable_pin_hash_is_refused_without_counting(desk):
    desk.sql("UPDATE staff SET pin_hash = 'md5$abc'")
    assert sign_in(desk).reason is SignInReason.UNREADABLE
    assert desk.sql("SELECT * FROM staff_sign_in") == []


def test_sign_in_is_forwarded_to_the_hub_as_staff_action(desk):
    forward = audit.Forward("test-01", "CN-431121-0002", desk.clock)
    sign_in(desk, "1111", forward=forward)
    sign_in(desk, forward=forward)
    events = outbox.unacknowledged(desk.cache.conn)
    assert [e.kind for e in events] == ["staff_action", "staff_action"]
    assert [e.payload["action"] for e in events] == ["sign_in_refused", "sign_in"]
    assert events[0].payload["details"] == {"reason": "wrong_pin", "left": 4}
    assert events[1].payload["staff_card"] == CARD
    assert events[1].payload["branch"] == "CN-431121-0002"


# -- signing out ---------------------------------------------------------------------------

MIN = 60 * 10**9


def test_sign_out_reason_idle_and_absolute():
    idle, absolute = timedelta(minutes=5), timedelta(hours=8)

    def reason(started: int, last: int, now: int) -> SignOutReason | None:
        return staff.sign_out_reason(started, last, now, idle=idle, absolute=absolute)

    assert reason(0, 0, 4 * MIN) is None
    assert reason(0, 0, 5 * MIN) is SignOutReason.IDLE
    assert reason(0, 4 * MIN, 8 * MIN) is None
    # Busy all day still ends after eight hours.
    assert reason(0, 480 * MIN - 1, 480 * MIN) is SignOutReason.EXPIRED
    # A monotonic time before the start (another boot) is never valid.
    assert reason(10 * MIN, 10 * MIN, 9 * MIN) is SignOutReason.EXPIRED


def test_session_touch_keeps_it_alive_until_idle(desk):
    session = sign_in(desk, limits=Limits(idle=timedelta(minutes=5)))
    start = session.started_ns
    assert session.valid_at(start + 4 * MIN)
    touched = session.touched(start + 4 * MIN)
    assert touched.valid_at(start + 8 * MIN) and not session.valid_at(start + 8 * MIN)
    assert touched.ended(start + 9 * MIN) is SignOutReason.IDLE
    staff.sign_out(desk.cache.conn, touched, now_of(desk), SignOutReason.IDLE)
    assert actions(desk) == ["sign_in", "sign_out"]
    assert json.loads(desk.one("SELECT details FROM staff_audit WHERE action = 'sign_out'")) \
        == {"reason": "idle"}


# -- the audit -----------------------------------------------------------------------------

def test_audit_rows_cannot_be_changed_or_deleted(desk):
    sign_in(desk)
    conn = desk.cache.conn
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE staff_audit SET action = 'nothing'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM staff_audit")
    assert actions(desk) == ["sign_in"]


def test_audit_refuses_secrets_in_details(desk):
    conn = desk.cache.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        for details in ({"pin": "1234"}, {"patron": {"id_number": "x"}},
                        {"list": [{"PIN-hash": "x"}]}):
            with pytest.raises(ValueError, match="never goes into the audit"):
                audit.record(conn, action="x", at=now_of(desk), staff_id=None,
                             staff_card=None, details=details)
    finally:
        conn.execute("ROLLBACK")
    with pytest.raises(RuntimeError):
        audit.record(conn, action="x", at=now_of(desk), staff_id=None, staff_card=None)


def test_a_pin_never_reaches_the_audit_outbox_logs_or_file(desk, caplog):
    caplog.set_level(logging.DEBUG)
    forward = audit.Forward("test-01", "CN-431121-0002", desk.clock)
    sign_in(desk, "48261", forward=forward)
    session = sign_in(desk, forward=forward)
    staff.sign_out(desk.cache.conn, session, now_of(desk), forward=forward)
    assert caplog.records  # sign-ins are logged, without their PIN
    for pin in (PIN, "48261"):
        assert pin not in caplog.text
        assert all(pin not in str(r) for r in desk.sql("SELECT * FROM staff_audit"))
        assert all(pin not in str(r) for r in desk.sql("SELECT payload FROM outbox"))
        assert all(pin not in str(r) for r in desk.sql("SELECT * FROM staff_sign_in"))
    desk.cache.checkpoint(truncate=True)
    raw = desk.path.read_bytes()
    assert PIN.encode() not in raw and b"48261" not in raw


# -- overrides at the desk -----------------------------------------------------------------

@pytest.fixture
def blocked(desk):
    pid = desk.patron("C1")
    desk.sql("INSERT INTO patron_blocks (patron_id, reason, created_at)"
             " VALUES (?, 'damaged book', '2026-11-01')", pid)
    desk.item("B1")
    return desk


def override(world, reason: str = "老人急需，已电话联系总馆", **kw) -> staff.Override:
    session = sign_in(world)
    assert session.ok
    return staff.Override(session, reason, **kw)


def test_override_lends_despite_a_block_and_is_recorded(blocked):
    circ = blocked.circulation(station=Station.DESK)
    assert circ.checkout("C1", "B1").decision.reason is Reason.PATRON_BLOCKED
    ov = override(blocked)
    out = circ.checkout("C1", "B1", override=ov)
    assert out.allowed and out.decision.waived == {Reason.PATRON_BLOCKED}
    loan_event, audit_event = out.events[0], outbox.unacknowledged(blocked.cache.conn)[-1]
    assert loan_event.kind == "checkout"
    assert loan_event.payload["override"] is True
    assert loan_event.payload["override_reason"] == "老人急需，已电话联系总馆"
    assert loan_event.payload["override_staff"] == CARD
    assert loan_event.payload["override_waived"] == ["patron_blocked"]
    assert blocked.one("SELECT flags FROM loans") == "offline,override"
    row = blocked.sql("SELECT staff_id, staff_card, action, details, txn_id FROM staff_audit"
                      " WHERE action = 'checkout_override'")
    assert len(row) == 1
    staff_id, card, _, details, txn = row[0]
    assert (staff_id, card, txn) == (ov.session.staff_id, CARD, loan_event.txn_id)
    assert json.loads(details) == {"card": "C1", "item": "B1",
                                   "reason": "老人急需，已电话联系总馆",
                                   "waived": ["patron_blocked"]}
    assert audit_event.kind == "staff_action"
    assert audit_event.payload["action"] == "checkout_override"
    assert audit_event.payload["related_txn"] == loan_event.txn_id


def test_override_lets_fines_and_too_many_loans_through(desk):
    desk.patron("C2", fines_owed_cents=5000, loan_count=10)
    desk.item("B2")
    circ = desk.circulation(station=Station.DESK)
    out = circ.checkout("C2", "B2", override=override(desk))
    assert out.allowed
    assert out.decision.waived == {Reason.FINES_OVER_LIMIT, Reason.TOO_MANY_LOANS}
    assert out.events[0].payload["override_waived"] == ["fines_over_limit", "too_many_loans"]


def test_override_waives_only_what_it_names(blocked):
    blocked.sql("UPDATE patrons SET fines_owed_cents = 5000")
    circ = blocked.circulation(station=Station.DESK)
    ov = override(blocked, waive=frozenset({Reason.FINES_OVER_LIMIT}))
    out = circ.checkout("C1", "B1", override=ov)
    assert not out.allowed and out.decision.reason is Reason.PATRON_BLOCKED
    assert blocked.sql("SELECT count(*) FROM loans") == [(0,)]


def test_an_override_not_needed_is_an_ordinary_loan(desk):
    desk.patron("C3")
    desk.item("B3")
    out = desk.circulation(station=Station.DESK).checkout("C3", "B3", override=override(desk))
    assert out.allowed and out.decision.waived == frozenset()
    assert "override" not in out.events[0].payload
    assert actions(desk) == ["sign_in"]


def test_override_never_lends_an_item_not_for_loan_or_lent_to_another(blocked):
    blocked.item("REF1", loan_type="reference")
    circ = blocked.circulation(station=Station.DESK)
    out = circ.checkout("C1", "REF1", override=override(blocked))
    assert not out.allowed and out.decision.reason is Reason.ITEM_NOT_FOR_LOAN
    assert blocked.sql("SELECT count(*) FROM loans") == [(0,)]
    assert [e.kind for e in outbox.unacknowledged(blocked.cache.conn)] == ["staff_action"]
    refused = json.loads(blocked.one(
        "SELECT details FROM staff_audit WHERE action = 'checkout_override_refused'"))
    assert refused["refused"] == "item_not_for_loan"
    with pytest.raises(OverrideNotAllowed) as err:
        circ.checkout("C1", "B1", override=override(
            blocked, waive=frozenset({Reason.ITEM_NOT_FOR_LOAN, Reason.PATRON_BLOCKED})))
    assert err.value.problem is OverrideProblem.NOT_OVERRIDABLE
    assert err.value.message_key == "staff.override.not_overridable"
    with pytest.raises(OverrideNotAllowed):
        circ.checkout("C1", "B1", override=override(
            blocked, waive=frozenset({Reason.ON_LOAN_TO_OTHER})))
    assert blocked.sql("SELECT count(*) FROM loans") == [(0,)]


def test_override_needs_a_live_session_at_the_desk_and_a_reason(blocked):
    desk_circ = blocked.circulation(station=Station.DESK)
    cases = [
        (desk_circ, staff.Override(None, "reason"), OverrideProblem.NOT_SIGNED_IN),
        (blocked.circulation(), override(blocked), OverrideProblem.NOT_AT_DESK),
        (desk_circ, override(blocked, "   "), OverrideProblem.NO_REASON),
        (desk_circ, override(blocked, "x" * 201), OverrideProblem.NO_REASON),
    ]
    for circ, ov, problem in cases:
        with pytest.raises(OverrideNotAllowed) as err:
            circ.checkout("C1", "B1", override=ov)
        assert err.value.problem is problem
    ov = override(blocked)
    blocked.clock.advance(6 * 60)  # idle past the limit
    with pytest.raises(OverrideNotAllowed) as err:
        desk_circ.checkout("C1", "B1", override=ov)
    assert err.value.problem is OverrideProblem.SIGNED_OUT
    ov = override(blocked)
    staff.set_active(blocked.cache.conn, CARD, False)
    with pytest.raises(OverrideNotAllowed) as err:
        desk_circ.checkout("C1", "B1", override=ov)
    assert err.value.problem is OverrideProblem.STAFF_INACTIVE
    # Nothing was done or counted for any of them.
    assert blocked.sql("SELECT count(*) FROM loans") == [(0,)]
    assert outbox.unacknowledged(blocked.cache.conn) == []
    assert "checkout_override" not in actions(blocked)


# -- the catalogue -------------------------------------------------------------------------

@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_every_staff_message_key_exists(language):
    known = catalogue_texts(language)
    keys = {f"staff.sign_in.{r}" for r in SignInReason} | {"staff.sign_in.ok"}
    keys |= {f"staff.sign_out.{r}" for r in SignOutReason}
    keys |= {f"staff.override.{p}" for p in OverrideProblem}
    assert sorted(keys - set(known)) == []


# -- the sample county and the hub -----------------------------------------------------------

def test_sample_staff_sign_in_with_the_documented_pins(tmp_path, clock):
    from sync import sample

    with db.create(tmp_path / "sample.db") as cache:
        info = sample.load(cache, "small")
        assert info.counts["staff"] == 2
        now = datetime.fromtimestamp(clock.wall / 1e9, UTC)
        van = staff.sign_in(cache.conn, "9900000001", "2468", now, now_ns=clock.mono)
        admin = staff.sign_in(cache.conn, "9900000002", "1357", now, now_ns=clock.mono)
        assert (van.ok, van.role, admin.ok, admin.role) == (True, "van", True, "admin")


def test_staff_come_down_from_the_hub_and_overrides_go_up(tmp_path):
    from sync.hub.testing import HubServer
    from sync.sample import EDGE_CASES
    from tests.conftest import NOON_ISH, ManualClock
    from tests.test_sync_scenarios import VANS, Van

    with HubServer(tmp_path / "hub.db", sample="small", devices=VANS) as hub:
        van = Van(hub, tmp_path, "van-01", ManualClock(NOON_ISH, boot_id="boot-van"))
        try:
            van.sync()
            conn = van.cache.conn
            assert van.one("SELECT count(*) FROM staff") == 2
            forward = audit.Forward("van-01", van.circ.identity.branch, van.clock)
            now = datetime.fromtimestamp(van.clock.wall / 1e9, UTC)
            session = staff.sign_in(conn, "9900000001", "2468", now,
                                    now_ns=van.clock.monotonic_ns(), forward=forward)
            assert session.ok
            card, book = EDGE_CASES["blocked_patron"], EDGE_CASES["available_item"]
            out = van.circ.checkout(card, book, override=staff.Override(session, "村里老人"))
            assert out.allowed and out.events[0].payload["override"] is True
            report = van.sync()
            assert report.acknowledged == 3  # sign-in, loan, override audit
            with sqlite3.connect(hub.db_path) as h:
                stored = dict(h.execute(
                    "SELECT json_extract(payload, '$.action'), state || ':' || codes"
                    " FROM hub_events WHERE device_id = 'van-01' AND kind = 'staff_action'"))
                loan_codes = h.execute("SELECT codes FROM hub_events WHERE kind = 'checkout'"
                                       " AND device_id = 'van-01'").fetchone()[0]
            # Applied, with no code but the test clock's (it is set in 2026).
            assert set(stored) == {"sign_in", "checkout_override"}
            for state_codes in stored.values():
                assert state_codes.startswith("applied:") and "staff" not in state_codes
                assert "bad_payload" not in state_codes
            assert "staff_override" in loan_codes.split(",")
        finally:
            van.close()


def test_staff_feed_rows_land_in_the_cache(world):
    from sync.feeds import Applier
    from sync.pins import hash_pin

    row = {"card_number": "9900000201", "name": "馆员", "role": "manager",
           "pin_hash": hash_pin("2580"), "active": 1, "updated_at": None}
    with world.cache.transaction() as conn:
        ap = Applier(conn, "test-01")
        assert ap.change("staff", "upsert", "9900000201", 3, row) == "applied"
        assert ap.change("staff", "upsert", "9900000201", 2, {**row, "active": 0}) == "skipped"
    # A role this release does not know gets the least: the desk's.
    assert world.sql("SELECT role, active, version FROM staff") == [("desk", 1, 3)]
    session = sign_in(world, "2580", card="9900000201")
    assert session.ok and session.role == "desk"
    with world.cache.transaction() as conn:
        Applier(conn, "test-01").change("staff", "upsert", "9900000201", 4,
                                        {**row, "active": 0})
    assert sign_in(world, "2580", card="9900000201").reason is SignInReason.INACTIVE
    with world.cache.transaction() as conn:
        Applier(conn, "test-01").change("staff", "delete", "9900000201", 5, None)
    assert sign_in(world, "2580", card="9900000201").reason is SignInReason.UNKNOWN_CARD
    # The audit outlives the account.
    assert actions(world) == ["sign_in", "sign_in_refused", "sign_in_refused"]
