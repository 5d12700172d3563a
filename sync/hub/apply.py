"""Applying stored events to the county's circulation, and the verdict on each.

The hub re-runs the circulation rules (:mod:`sync.rules`) on every event, physical fact
first: the book left, so it is on loan; a return is a return. What the rules would have
refused becomes an exception code on the event's verdict instead of a refusal:

========================  ===============================================================
``closed_loan_elsewhere``  the book was on loan to another patron; that loan ended then
``patron_unknown``         no such card at the hub: a placeholder patron holds the loan
``patron_blocked``         the patron was blocked, expired, had fines or a lost card
``hold_retargeted``        the book was held for someone else; the hold moved
``unknown_item``           no such barcode at the hub: the item was created, flagged
``item_not_on_loan``       a return of a book that was not on loan
``item_not_for_loan``      a loan of a withdrawn or reference book
``too_many_loans``         the patron now has more loans than the rules allow
``duplicate_person``       a registration whose ID document (its hash) already has a card
========================  ===============================================================

plus the time flags of :mod:`sync.hub.timefix`. Only what cannot be applied at all is
``rejected``: a payload without its card or item (``bad_payload``), a renewal of a loan the
patron did not have at that time (``not_on_loan_to_patron``), a registration of a card that
belongs to someone else (``card_in_use``). Every code of an event becomes a row in
``hub_exceptions``; every event's verdict goes onto its device's change feed.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sync import cache_views as views
from sync import rules
from sync.hub import changes
from sync.hub.config import HubConfig
from sync.hub.physical import LoanRow, StoredEvent, Work, containing, lend, loans_of, take_back
from sync.policy import Station
from sync.rules import Reason

_BLOCKING = {Reason.PATRON_BLOCKED: "blocked", Reason.PATRON_EXPIRED: "expired",
             Reason.CARD_REPORTED_LOST: "card reported lost",
             Reason.FINES_OVER_LIMIT: "fines over the limit"}


class Rejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Verdict:
    outcome: str  # ok, exception, rejected
    codes: tuple[str, ...]
    message: str

    @property
    def code(self) -> str | None:
        return self.codes[0] if self.codes else None


def _context(cfg: HubConfig, ev: StoredEvent) -> rules.Context:
    station = ev.payload.get("station")
    return rules.Context(
        branch=ev.branch,
        today=datetime.fromtimestamp(ev.time_ns / 1e9, cfg.timezone).date(),
        station=Station.DESK if station == "desk" else Station.KIOSK,
        online=True,
    )


def _required(ev: StoredEvent, *keys: str) -> list[str]:
    values = []
    for key in keys:
        value = ev.payload.get(key)
        if not isinstance(value, str) or not value:
            raise Rejected("bad_payload", f"{ev.kind} event without {key!r}")
        values.append(value)
    return values


def apply_event(conn: sqlite3.Connection, cfg: HubConfig, ev: StoredEvent, now_ns: int
                ) -> Verdict:
    """Apply one stored event, record its verdict and exceptions and put every row it
    changed on the change feed. Runs inside the caller's write transaction."""
    w = Work(conn, cfg, ev, _context(cfg, ev))
    try:
        if ev.kind in ("checkout", "pickup"):
            _lend(w)
        elif ev.kind == "checkin":
            _checkin(w)
        elif ev.kind == "renew":
            _renew(w)
        elif ev.kind == "patron_registered":
            _register(w)
        elif ev.kind == "staff_action":
            _staff_action(w)
        else:
            raise Rejected("bad_payload", f"unknown kind {ev.kind!r}")
    except Rejected as exc:
        codes = {exc.code: str(exc)}
        outcome, state = "rejected", "rejected"
    else:
        codes = dict(w.codes)
        outcome, state = ("exception" if codes or ev.time_flags else "ok"), "applied"
    for flag in ev.time_flags:
        codes.setdefault(flag, _TIME_MESSAGES.get(flag, flag))
    verdict = Verdict(outcome, tuple(codes), "; ".join(codes.values()))
    conn.execute(
        "UPDATE hub_events SET state = ?, outcome = ?, codes = ?, message = ?,"
        " applied_at_ns = ? WHERE device_id = ? AND seq = ?",
        (state, verdict.outcome, ",".join(verdict.codes), verdict.message or None, now_ns,
         ev.device_id, ev.seq),
    )
    for code, message in codes.items():
        conn.execute(
            "INSERT OR IGNORE INTO hub_exceptions (device_id, txn_id, seq, kind, code, message,"
            " event_time_ns, created_at_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (ev.device_id, ev.txn_id, ev.seq, ev.kind, code, message, ev.time_ns, now_ns),
        )
    _emit(w, now_ns)
    changes.emit(conn, "verdict", ev.device_id, ev.txn_id, now_ns=now_ns,
                 device_id=ev.device_id)
    for device_id, txn_id, code in w.answered:
        _withdraw(conn, device_id, txn_id, code, now_ns)
    for device_id, txn_id, code, message in w.raised:
        _add(conn, device_id, txn_id, code, message, now_ns)
    return verdict


_TIME_MESSAGES = {
    "time_in_future": "the event's time is later than the hub's clock when it arrived",
    "clock_unverified": "no clock anchor for this boot and the clock was not synchronised",
    "clock_corrected": "the device's clock put this event on another day",
}


def _emit(w: Work, now_ns: int) -> None:
    for feed, ids in (("patron", w.patrons), ("item", w.items), ("loan", w.loans),
                      ("hold", w.holds)):
        for row_id in sorted(ids):
            changes.emit(w.conn, feed, row_id, now_ns=now_ns)


def _withdraw(conn: sqlite3.Connection, device_id: str, txn_id: str, code: str,
              now_ns: int) -> None:
    """A later-arriving event answered an earlier event's exception: resolve it and send
    that event's device its corrected verdict."""
    row = conn.execute(
        "SELECT codes FROM hub_events WHERE device_id = ? AND txn_id = ?",
        (device_id, txn_id),
    ).fetchone()
    if row is None or code not in row[0].split(","):
        return
    left = [c for c in row[0].split(",") if c and c != code]
    conn.execute(
        "UPDATE hub_exceptions SET status = 'resolved', resolved_at_ns = ?"
        " WHERE device_id = ? AND txn_id = ? AND code = ? AND status = 'open'",
        (now_ns, device_id, txn_id, code),
    )
    message = "; ".join(r[0] for r in conn.execute(
        "SELECT message FROM hub_exceptions WHERE device_id = ? AND txn_id = ?"
        " AND status = 'open' AND message IS NOT NULL ORDER BY id", (device_id, txn_id)))
    conn.execute(
        "UPDATE hub_events SET codes = ?, outcome = ?, message = ?"
        " WHERE device_id = ? AND txn_id = ?",
        (",".join(left), "exception" if left else "ok", message or None, device_id, txn_id),
    )
    changes.emit(conn, "verdict", device_id, txn_id, now_ns=now_ns, device_id=device_id)


def _add(conn: sqlite3.Connection, device_id: str, txn_id: str, code: str, message: str,
         now_ns: int) -> None:
    """A later-arriving event showed an earlier event deserves an exception: record it and
    send that event's device its corrected verdict."""
    row = conn.execute(
        "SELECT codes, message, seq, kind, event_time_ns FROM hub_events"
        " WHERE device_id = ? AND txn_id = ?", (device_id, txn_id)).fetchone()
    if row is None or code in row[0].split(","):
        return
    codes = [c for c in row[0].split(",") if c] + [code]
    text = "; ".join(m for m in (row[1], message) if m)
    conn.execute(
        "UPDATE hub_events SET codes = ?, outcome = 'exception', message = ?"
        " WHERE device_id = ? AND txn_id = ?", (",".join(codes), text, device_id, txn_id))
    conn.execute(
        "INSERT INTO hub_exceptions (device_id, txn_id, seq, kind, code, message,"
        " event_time_ns, created_at_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (device_id, txn_id, code) DO UPDATE SET status = 'open',"
        " resolved_at_ns = NULL",
        (device_id, txn_id, row[2], row[3], code, message, row[4], now_ns))
    changes.emit(conn, "verdict", device_id, txn_id, now_ns=now_ns, device_id=device_id)


# -- per kind ----------------------------------------------------------------------------

def _patron_for_loan(w: Work, card: str) -> tuple[rules.PatronView, bool]:
    """The patron of ``card``; a placeholder (name '') when the hub has never heard of it."""
    found = views.patron_by_card(w.conn, card)
    if found is None:
        w.conn.execute(
            "INSERT INTO patrons (card_number, name, patron_type, status, updated_at)"
            " VALUES (?, '', 'adult', 'active', ?)", (card, w.when))
        w.flag("patron_unknown", "no patron with this card at the hub; a placeholder holds"
               " the loan until the registration arrives")
        found = views.patron_by_card(w.conn, card)
        assert found is not None
        w.patrons.add(found[0].id)
        return found[0], True
    view, name = found
    _check_patron(w, view)
    return view, name == ""


def _check_patron(w: Work, view: rules.PatronView) -> None:
    problem = rules.patron_problem(view, w.cfg.policy, w.ctx)
    if problem is Reason.PATRON_UNKNOWN:
        w.flag("patron_unknown", "the patron's card is withdrawn")
    elif problem is not None:
        w.flag("patron_blocked", f"the patron may not borrow: {_BLOCKING[problem]}")


def _item(w: Work, barcode: str, status: str) -> rules.ItemView:
    item = views.item_by_barcode(w.conn, barcode)
    if item is None:
        w.conn.execute(
            "INSERT INTO items (barcode, status, current_branch, flags, updated_at)"
            " VALUES (?, ?, ?, 'unknown', ?)",
            (barcode, status, w.known_branch(w.ev.branch), w.when))
        w.flag("unknown_item", "no item with this barcode at the hub; it was created")
        item = views.item_by_barcode(w.conn, barcode)
        assert item is not None
        w.items.add(item.id)
    return item


def _lend(w: Work) -> None:
    card, barcode = _required(w.ev, "card", "item")
    patron, placeholder = _patron_for_loan(w, card)
    item = _item(w, barcode, "on_loan")
    lend(w, patron, placeholder, item)
    if w.ev.payload.get("override") is True:
        # Lent at the desk despite a refusal, by a staff member, with a reason: staff at
        # the county library look at each one.
        who = w.ev.payload.get("override_staff")
        why = w.ev.payload.get("override_reason")
        w.flag("staff_override", f"lent with a staff override by {who}: {why}")


def _staff_action(w: Work) -> None:
    """A row of a device's staff audit: stored with the event, nothing to apply. A staff
    card the hub does not know is flagged (except on a refused sign-in: a wrong card)."""
    card, action = _required(w.ev, "staff_card", "action")
    known = w.conn.execute("SELECT 1 FROM staff WHERE card_number = ?", (card,)).fetchone()
    if action != "sign_in_refused" and not known:
        w.flag("staff_unknown", "no staff member with this card at the hub")


def _checkin(w: Work) -> None:
    (barcode,) = _required(w.ev, "item")
    take_back(w, _item(w, barcode, "available"))


def _renew(w: Work) -> None:
    card, barcode = _required(w.ev, "card", "item")
    found = views.patron_by_card(w.conn, card)
    item = views.item_by_barcode(w.conn, barcode)
    loan: LoanRow | None = None
    if found is not None and item is not None:
        loan = containing(loans_of(w, item.id), w.ev.time_ns)
    if found is None or loan is None or loan.patron_id != found[0].id:
        raise Rejected("not_on_loan_to_patron",
                       "the patron did not have this book on loan at the renewal's time")
    _check_patron(w, found[0])
    given = w.ev.payload.get("due_date")
    due = loan.due_date
    if isinstance(given, str):
        # Renewals are applied in any order; the latest due date promised wins.
        with contextlib.suppress(ValueError):
            due = max(due, date.fromisoformat(given).isoformat())
    w.conn.execute("UPDATE loans SET due_date = ?, renewals = renewals + 1 WHERE id = ?",
                   (due, loan.id))
    w.loans.add(loan.id)



def _register(w: Work) -> None:
    card, name = _required(w.ev, "card", "name")
    p: dict[str, Any] = w.ev.payload
    expires = p.get("expires_on")
    if expires is not None:
        try:
            expires = date.fromisoformat(str(expires)).isoformat()
        except ValueError:
            raise Rejected("bad_payload", "expires_on is not a date") from None
    values = (name, str(p.get("patron_type") or "adult"),
              w.known_branch(p.get("home_branch") or w.ev.branch), expires, w.when)
    found = views.patron_by_card(w.conn, card)
    if found is None:
        w.conn.execute(
            "INSERT INTO patrons (name, patron_type, home_branch, expires_on, updated_at,"
            " card_number) VALUES (?, ?, ?, ?, ?, ?)", (*values, card))
    elif found[1] == "":
        w.conn.execute(
            "UPDATE patrons SET name = ?, patron_type = ?, home_branch = ?, expires_on = ?,"
            " updated_at = ? WHERE card_number = ?", (*values, card))
    elif found[1] != name:
        raise Rejected("card_in_use", "this card number already belongs to another patron")
    else:
        return
    row = w.conn.execute("SELECT id FROM patrons WHERE card_number = ?", (card,)).fetchone()
    w.patrons.add(row[0])
    _identity(w, card, p)


def _identity(w: Work, card: str, p: dict[str, Any]) -> None:
    """Record the registration's document (type, duplicate-person hash, masked and sealed
    number: never a plain number) and flag ``duplicate_person`` when another card already
    belongs to the same document. The registration stands: staff decide which card stays."""
    id_hash = p.get("id_hash")
    if not isinstance(id_hash, str) or not id_hash:
        return
    w.conn.execute(
        "UPDATE patrons SET id_type = ?, id_hash = ?, id_masked = ?, id_number_enc = ?,"
        " village = ?, guardian_name = ?, guardian_relation = ?, consent_at = ?,"
        " registered_txn = ? WHERE card_number = ?",
        (p.get("id_type"), id_hash, p.get("id_masked"), p.get("id_sealed"), p.get("village"),
         p.get("guardian_name"), p.get("guardian_relation"), p.get("consent_at"), w.ev.txn_id,
         card))
    others = [r[0] for r in w.conn.execute(
        "SELECT card_number FROM patrons WHERE id_hash = ? AND card_number != ?"
        " ORDER BY card_number", (id_hash, card))]
    if others:
        w.flag("duplicate_person", "the same identity document already holds card"
               f" {', '.join(others)}; registered anyway, staff should keep one card")


def load_event(row: tuple) -> StoredEvent:
    """A :class:`StoredEvent` from ``SELECT device_id, seq, txn_id, kind, payload,
    event_time_ns, corrected_time_ns, time_flags FROM hub_events``."""
    device_id, seq, txn_id, kind, payload, time_ns, corrected, flags = row
    return StoredEvent(device_id, seq, txn_id, kind, json.loads(payload), time_ns, corrected,
                       tuple(f for f in flags.split(",") if f))


EVENT_COLUMNS = ("device_id, seq, txn_id, kind, payload, event_time_ns, corrected_time_ns,"
                 " time_flags")
