"""Reading the rows the circulation rules need, as the rules' plain views.

Every function here runs inside the caller's transaction and returns ``None`` (or an empty
tuple) for what the cache does not know.
"""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta

from sync.rules import Calendar, HoldView, ItemView, LoanRule, LoanView, PatronView


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def patron_by_card(conn: sqlite3.Connection, card: str) -> tuple[PatronView, str] | None:
    """The patron holding ``card`` and their name (names are for screens, not for rules)."""
    row = conn.execute(
        "SELECT id, card_number, patron_type, status, expires_on, fines_owed_cents,"
        " loan_count, name FROM patrons WHERE card_number = ?",
        (card,),
    ).fetchone()
    if row is None:
        return None
    blocks = tuple(
        r[0] for r in conn.execute(
            "SELECT reason FROM patron_blocks WHERE patron_id = ? ORDER BY id", (row[0],))
    )
    view = PatronView(
        id=row[0], card_number=row[1], patron_type=row[2], status=row[3],
        expires_on=_date(row[4]), blocks=blocks, fines_owed_cents=row[5], loan_count=row[6],
    )
    return view, row[7]


def patron_by_id(conn: sqlite3.Connection, patron_id: int) -> tuple[PatronView, str] | None:
    row = conn.execute("SELECT card_number FROM patrons WHERE id = ?", (patron_id,)).fetchone()
    return patron_by_card(conn, row[0]) if row else None


def item_by_barcode(conn: sqlite3.Connection, barcode: str) -> ItemView | None:
    row = conn.execute(
        "SELECT id, barcode, loan_type, status, owning_branch, current_branch, title"
        " FROM items WHERE barcode = ?",
        (barcode,),
    ).fetchone()
    return ItemView(*row) if row else None


def item_details(conn: sqlite3.Connection, item_id: int) -> dict[str, object]:
    row = conn.execute(
        "SELECT barcode, title, author, call_number, owning_branch FROM items WHERE id = ?",
        (item_id,),
    ).fetchone()
    keys = ("barcode", "title", "author", "call_number", "owning_branch")
    return dict(zip(keys, row, strict=True)) if row else {}


def open_loan(conn: sqlite3.Connection, item_id: int) -> LoanView | None:
    row = conn.execute(
        "SELECT id, patron_id, item_id, due_date, renewals FROM loans"
        " WHERE item_id = ? AND returned_at IS NULL",
        (item_id,),
    ).fetchone()
    if row is None:
        return None
    return LoanView(row[0], row[1], row[2], date.fromisoformat(row[3]), row[4])


def open_loans_of(conn: sqlite3.Connection, patron_id: int) -> list[dict[str, object]]:
    rows = conn.execute(
        "SELECT i.barcode, i.title, l.due_date, l.renewals FROM loans l"
        " JOIN items i ON i.id = l.item_id"
        " WHERE l.patron_id = ? AND l.returned_at IS NULL ORDER BY l.due_date, i.barcode",
        (patron_id,),
    )
    keys = ("barcode", "title", "due_date", "renewals")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def _hold(row: tuple) -> HoldView:
    return HoldView(row[0], row[1], row[2], row[3], row[4], row[5], _date(row[6]))


_HOLD_COLUMNS = "id, patron_id, item_id, pickup_branch, status, locker_slot, pickup_expires_on"


def active_holds(conn: sqlite3.Connection, item_id: int) -> tuple[HoldView, ...]:
    rows = conn.execute(
        f"SELECT {_HOLD_COLUMNS} FROM holds WHERE item_id = ?"
        " AND status IN ('waiting', 'in_transit', 'ready') ORDER BY id",
        (item_id,),
    )
    return tuple(_hold(r) for r in rows)


def hold_by_id(conn: sqlite3.Connection, hold_id: int) -> HoldView | None:
    row = conn.execute(f"SELECT {_HOLD_COLUMNS} FROM holds WHERE id = ?", (hold_id,)).fetchone()
    return _hold(row) if row else None


def ready_holds_of(conn: sqlite3.Connection, patron_id: int) -> tuple[HoldView, ...]:
    rows = conn.execute(
        f"SELECT {_HOLD_COLUMNS} FROM holds WHERE patron_id = ? AND status = 'ready'"
        " ORDER BY id",
        (patron_id,),
    )
    return tuple(_hold(r) for r in rows)


def loan_rule(conn: sqlite3.Connection, patron_type: str, loan_type: str) -> LoanRule | None:
    """The most specific rule: exact pair, then patron type with any loan type, then any
    patron type with the loan type, then the catch-all ``*``/``*``."""
    row = conn.execute(
        "SELECT loan_days, max_renewals, max_loans FROM loan_rules"
        " WHERE patron_type IN (?, '*') AND loan_type IN (?, '*')"
        " ORDER BY patron_type = '*', loan_type = '*' LIMIT 1",
        (patron_type, loan_type),
    ).fetchone()
    return LoanRule(*row) if row else None


def calendar(conn: sqlite3.Connection, isil: str, today: date) -> Calendar:
    row = conn.execute(
        "SELECT closed_weekdays FROM branches WHERE isil = ?", (isil,)
    ).fetchone()
    weekdays = frozenset(int(c) for c in (row[0] if row else "") if c.isdigit())
    days = frozenset(
        date.fromisoformat(r[0]) for r in conn.execute(
            "SELECT day FROM branch_closed_days WHERE isil = ? AND day BETWEEN ? AND ?",
            (isil, today.isoformat(), (today + timedelta(days=800)).isoformat()),
        )
    )
    return Calendar(weekdays, days)


def branch_name(conn: sqlite3.Connection, isil: str | None) -> str | None:
    if isil is None:
        return None
    row = conn.execute("SELECT name FROM branches WHERE isil = ?", (isil,)).fetchone()
    return row[0] if row else isil
