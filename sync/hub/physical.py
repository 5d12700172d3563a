"""What a book did: loans and returns applied to an item's history, physical fact first.

An item's loans at the hub are intervals that never overlap: a loan starts at its checkout
(or pickup) and ends at the next physical event on the item (a return, or a checkout by
someone else) in time order. Events from different devices may arrive in any order, so
each one is applied where it belongs in time:

- When nothing later has happened to the book (the usual case), the event is applied
  *forward*: a checkout closes whatever loan is open at the event's time and lends the book;
  a return closes the open loan, and the book's status follows :func:`sync.rules.checkin`.
- When the hub already knows a later physical event on the book, the event is *spliced in*:
  a checkout becomes a loan that ended at that later event, a return ends the loan that was
  open at its time. The book's status and holds stay as the latest event left them.

So the loans, items and loan counts the hub ends up with do not depend on the order in which
devices deliver their events (tests/test_hub_apply.py checks this as a property).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from sync import cache_views as views
from sync import rules
from sync.hub import chunk
from sync.hub.config import HubConfig
from sync.hub.timefix import from_iso, iso
from sync.rules import Reason, RouteKind

PHYSICAL = ("checkout", "pickup", "checkin")


@dataclass(frozen=True)
class StoredEvent:
    """An event as stored, with the time the hub uses for it (``time_ns``)."""

    device_id: str
    seq: int
    txn_id: str
    kind: str
    payload: dict[str, Any]
    time_ns: int
    corrected_ns: int
    time_flags: tuple[str, ...] = ()

    @property
    def branch(self) -> str:
        return str(self.payload.get("branch") or "")


@dataclass
class Work:
    """One event being applied: what it changed, and what staff must hear about it."""

    conn: sqlite3.Connection
    cfg: HubConfig
    ev: StoredEvent
    ctx: rules.Context
    codes: dict[str, str] = field(default_factory=dict)
    patrons: set[int] = field(default_factory=set)
    items: set[int] = field(default_factory=set)
    loans: set[int] = field(default_factory=set)
    holds: set[int] = field(default_factory=set)
    # (device_id, txn_id, code) of earlier events whose exception this event answered, and
    # of earlier events that turn out to deserve one (with its message).
    answered: list[tuple[str, str, str]] = field(default_factory=list)
    raised: list[tuple[str, str, str, str]] = field(default_factory=list)

    def flag(self, code: str, message: str) -> None:
        self.codes.setdefault(code, message)

    @property
    def when(self) -> str:
        return iso(self.ev.time_ns, self.cfg.timezone)

    def known_branch(self, isil: str | None) -> str | None:
        # Branch columns reference branches(isil); a van the hub has not configured yet must
        # still have its returns recorded, just without a branch.
        if not isil:
            return None
        shared = chunk.current(self.conn)
        if shared is not None and isil in shared.branches:
            return isil if shared.branches[isil] else None
        known = self.conn.execute("SELECT 1 FROM branches WHERE isil = ?",
                                  (isil,)).fetchone() is not None
        if shared is not None:
            shared.branches[isil] = known
        return isil if known else None


@dataclass(frozen=True)
class LoanRow:
    id: int
    patron_id: int
    start_ns: int
    end_ns: int | None
    checkout_txn: str | None
    checkin_txn: str | None
    due_date: str


def loans_of(w: Work, item_id: int) -> list[LoanRow]:
    """The book's loans that may matter at the event's time: open ones, and those that
    ended on or after the day before it (every rule here looks only at loans open at, or
    starting after, the event). A popular book's years of history stay in the database.

    Stored times mix formats (with and without microseconds) and the filter compares date
    prefixes, so it keeps a day either side; the exact test is done on the parsed times.
    """
    tz = w.cfg.timezone
    since = (datetime.fromtimestamp(w.ev.time_ns / 1e9, tz).date() - timedelta(days=2))
    return [
        LoanRow(r[0], r[1], from_iso(r[2], tz), None if r[3] is None else from_iso(r[3], tz),
                r[4], r[5], r[6])
        for r in w.conn.execute(
            "SELECT id, patron_id, loaned_at, returned_at, checkout_txn, checkin_txn, due_date"
            " FROM loans WHERE item_id = ? AND (returned_at IS NULL OR returned_at >= ?)",
            (item_id, since.isoformat()))
    ]


def containing(loans: list[LoanRow], t: int) -> LoanRow | None:
    """The loan of the item that was open at time ``t``."""
    return next((ln for ln in loans
                 if ln.start_ns <= t and (ln.end_ns is None or ln.end_ns > t)), None)


@dataclass(frozen=True)
class Boundary:
    """The next physical fact about the book after an event."""

    time_ns: int
    txn_id: str | None
    branch: str | None
    device_id: str | None = None
    kind: str | None = None


def next_boundary(w: Work, barcode: str, loans: list[LoanRow]) -> Boundary | None:
    """The earliest applied physical event on the book after ``w.ev`` (or the start of a
    loan the hub was loaded with, which has no event), or None."""
    ev = w.ev
    row = w.conn.execute(
        "SELECT event_time_ns, txn_id, json_extract(payload, '$.branch'), device_id, kind"
        " FROM hub_events"
        " WHERE item = ? AND state = 'applied' AND kind IN ('checkout', 'pickup', 'checkin')"
        " AND (event_time_ns > ? OR (event_time_ns = ? AND txn_id > ?))"
        " ORDER BY event_time_ns, txn_id LIMIT 1",
        (barcode, ev.time_ns, ev.time_ns, ev.txn_id),
    ).fetchone()
    found = Boundary(*row) if row else None
    for ln in loans:
        if ln.start_ns > ev.time_ns and (found is None or ln.start_ns < found.time_ns):
            found = Boundary(ln.start_ns, ln.checkout_txn, None)
    return found


def close_loan(w: Work, loan: LoanRow, at_ns: int, txn_id: str | None,
               branch: str | None) -> None:
    """End ``loan`` at ``at_ns`` (or move its end there), by the event ``txn_id``."""
    w.conn.execute(
        "UPDATE loans SET returned_at = ?, return_branch = ?, checkin_txn = ? WHERE id = ?",
        (iso(at_ns, w.cfg.timezone), branch, txn_id, loan.id),
    )
    w.loans.add(loan.id)
    if loan.end_ns is None:
        w.conn.execute("UPDATE patrons SET loan_count = loan_count - 1 WHERE id = ?",
                       (loan.patron_id,))
        w.patrons.add(loan.patron_id)


# -- lending -----------------------------------------------------------------------------

def lend(w: Work, patron: rules.PatronView, placeholder: bool, item: rules.ItemView) -> None:
    """A checkout or pickup of ``item`` by ``patron`` at the event's time."""
    loans = loans_of(w, item.id)
    boundary = next_boundary(w, item.barcode, loans)
    if boundary is None:
        _lend_forward(w, patron, placeholder, item, loans)
    else:
        _lend_in_the_past(w, patron, item, loans, boundary)


def _due(w: Work, decision_due: date | None) -> str:
    given = w.ev.payload.get("due_date")
    if isinstance(given, str):
        try:
            return date.fromisoformat(given).isoformat()
        except ValueError:
            pass
    return (decision_due or w.ctx.today + timedelta(days=w.cfg.policy.unknown_item_loan_days)
            ).isoformat()


def _insert_loan(w: Work, patron_id: int, item_id: int, due: str, end: Boundary | None) -> int:
    flags = w.ev.payload.get("flags")
    text = ",".join(sorted(str(f) for f in flags)) if isinstance(flags, list) else ""
    returned = None if end is None else iso(end.time_ns, w.cfg.timezone)
    loan_id = w.conn.execute(
        "INSERT INTO loans (item_id, patron_id, branch, loaned_at, due_date, checkout_txn,"
        " flags, returned_at, return_branch, checkin_txn) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING id",
        (item_id, patron_id, w.ev.branch, w.when, due, w.ev.txn_id, text, returned,
         None if end is None else w.known_branch(end.branch),
         None if end is None else end.txn_id),
    ).fetchone()[0]
    w.loans.add(loan_id)
    return loan_id


def _lend_forward(w: Work, patron: rules.PatronView, placeholder: bool, item: rules.ItemView,
                  loans: list[LoanRow]) -> None:
    conn, ev = w.conn, w.ev
    for ln in loans:
        if ln.end_ns is None:
            if ln.patron_id != patron.id:
                w.flag("closed_loan_elsewhere", "the book was on loan to another patron; that"
                       " loan was closed at this event's time")
            close_loan(w, ln, ev.time_ns, ev.txn_id, w.known_branch(ev.branch))
    holds = views.active_holds(conn, item.id)
    own = [h for h in holds if h.patron_id == patron.id]
    for hold in holds:
        if hold.patron_id != patron.id:
            _retarget(w, hold, item)
    decision_due = None
    if not placeholder:
        found = views.patron_by_id(conn, patron.id)
        assert found is not None
        clean = replace(found[0], status="active", expires_on=None, blocks=(),
                        fines_owed_cents=0)
        rule = views.loan_rule(conn, patron.patron_type, item.loan_type)
        decision = rules.checkout(clean, item, None, own, rule,
                                  views.calendar(conn, w.ctx.branch, w.ctx.today),
                                  w.cfg.policy, w.ctx)
        if decision.reason is Reason.ITEM_NOT_FOR_LOAN:
            w.flag("item_not_for_loan", "the book is not for loan (withdrawn or reference)")
        elif decision.reason is Reason.TOO_MANY_LOANS:
            w.flag("too_many_loans", "the patron now has more loans than the rules allow")
        decision_due = decision.due_date
    _insert_loan(w, patron.id, item.id, _due(w, decision_due), None)
    conn.execute("UPDATE patrons SET loan_count = loan_count + 1 WHERE id = ?", (patron.id,))
    w.patrons.add(patron.id)
    conn.execute(
        "UPDATE items SET status = 'on_loan', transit_to = NULL,"
        " current_branch = coalesce(?, current_branch), updated_at = ? WHERE id = ?",
        (w.known_branch(ev.branch), w.when, item.id),
    )
    w.items.add(item.id)
    wanted = ev.payload.get("hold_id")
    hold = next((h for h in own if h.id == wanted), own[0] if own else None)
    if hold is not None:
        conn.execute(
            "UPDATE holds SET status = 'fulfilled', fulfilled_txn = ?, locker_slot = NULL"
            " WHERE id = ?", (ev.txn_id, hold.id))
        w.holds.add(hold.id)


def _lend_in_the_past(w: Work, patron: rules.PatronView, item: rules.ItemView,
                      loans: list[LoanRow], boundary: Boundary) -> None:
    ev = w.ev
    before = containing(loans, ev.time_ns)
    if before is not None:
        # The loan open at our time ended when our patron took the book.
        close_loan(w, before, ev.time_ns, ev.txn_id, w.known_branch(ev.branch))
        if before.patron_id != patron.id:
            w.flag("closed_loan_elsewhere", "the book was on loan to another patron; that"
                   " loan was closed at this event's time")
    _insert_loan(w, patron.id, item.id, _due(w, None), boundary)
    if boundary.kind == "checkin" and boundary.device_id and boundary.txn_id:
        # That return did close a loan after all: this one.
        w.answered.append((boundary.device_id, boundary.txn_id, "item_not_on_loan"))
    else:
        w.flag("closed_loan_elsewhere", "the book was lent again later without a return;"
               " this loan was closed then")


def _retarget(w: Work, hold: rules.HoldView, item: rules.ItemView) -> None:
    """Another patron's hold on a book that just left with someone else: move it to a free
    copy of the same title, or (for a trapped hold) put it back to waiting on this one."""
    conn = w.conn
    other = conn.execute(
        "SELECT o.id FROM items o JOIN items i ON i.id = ? WHERE o.id != i.id"
        " AND o.title = i.title AND o.author IS i.author AND o.status = 'available'"
        " AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.item_id = o.id"
        " AND h.status IN ('waiting', 'in_transit', 'ready')) ORDER BY o.id LIMIT 1",
        (item.id,),
    ).fetchone()
    if other is None and hold.status == "waiting":
        return  # it waits for this copy to come back, as before
    conn.execute(
        "UPDATE holds SET item_id = ?, status = 'waiting', locker_slot = NULL, ready_at = NULL,"
        " pickup_expires_on = NULL WHERE id = ?",
        (other[0] if other else item.id, hold.id),
    )
    w.holds.add(hold.id)
    w.flag("hold_retargeted", "the book was held for another patron; the hold moved to "
           + ("another copy" if other else "waiting for this copy's return"))


# -- returns -----------------------------------------------------------------------------

def take_back(w: Work, item: rules.ItemView) -> None:
    """A return of ``item`` at the event's branch and time."""
    ev, conn = w.ev, w.conn
    loans = loans_of(w, item.id)
    boundary = next_boundary(w, item.barcode, loans)
    if boundary is not None:
        before = containing(loans, ev.time_ns)
        if before is None:
            w.flag("item_not_on_loan", "the book was not on loan at the time of this return")
            return
        if before.checkin_txn is not None:
            # The return that used to end this loan now finds the book already back.
            row = conn.execute(
                "SELECT device_id FROM hub_events WHERE item = ? AND txn_id = ?"
                " AND kind = 'checkin' AND state = 'applied'",
                (item.barcode, before.checkin_txn)).fetchone()
            if row is not None:
                w.raised.append((row[0], before.checkin_txn, "item_not_on_loan",
                                 "the book was not on loan at the time of this return"))
        close_loan(w, before, ev.time_ns, ev.txn_id, w.known_branch(ev.branch))
        return
    open_loan = next((ln for ln in loans if ln.end_ns is None), None)
    if open_loan is None:
        w.flag("item_not_on_loan", "the book was not on loan at the time of this return")
    else:
        close_loan(w, open_loan, ev.time_ns, ev.txn_id, w.known_branch(ev.branch))
    holds = views.active_holds(conn, item.id)
    decision = rules.checkin(item, None, holds, w.ctx)
    route = decision.route or rules.Route(RouteKind.SET_ASIDE)
    conn.execute(
        "UPDATE items SET status = ?, current_branch = coalesce(?, current_branch),"
        " transit_to = ?, updated_at = ? WHERE id = ?",
        (rules.item_status_after(route), w.known_branch(ev.branch),
         w.known_branch(route.to_branch), w.when, item.id),
    )
    w.items.add(item.id)
    if decision.hold_id is not None:
        if route.kind is RouteKind.HOLD_HERE:
            expires = w.ctx.today + timedelta(days=w.cfg.policy.hold_pickup_days)
            conn.execute(
                "UPDATE holds SET status = 'ready', ready_at = ?, pickup_expires_on = ?"
                " WHERE id = ?", (w.when, expires.isoformat(), decision.hold_id))
        else:
            conn.execute("UPDATE holds SET status = 'in_transit' WHERE id = ?",
                         (decision.hold_id,))
        w.holds.add(decision.hold_id)
