"""What the touchscreen shows of a card holder's account, read from the cache (on the
daemon's writer thread, through ``Writer.read``), and the rating a patron gives.

A name on a public screen is masked (``张*``, ``王*明``, ``A**** L**``): enough for the
patron to see it is their card, not enough for the next person in the queue.
"""

from __future__ import annotations

import sqlite3
from datetime import date
from typing import Any

from sync import cache_views as views
from sync import stats


def mask_name(name: str) -> str:
    """``name`` with all but its first letter (each word's first, for spaced names) hidden;
    a two-character Chinese name keeps its first, a longer one its first and last."""
    name = name.strip()
    if not name:
        return ""
    if " " in name:
        return " ".join(w[:1] + "*" * (len(w) - 1) for w in name.split())
    if len(name) <= 2:
        return name[:1] + "*" * (len(name) - 1)
    return name[:1] + "*" * (len(name) - 2) + name[-1]


def account(conn: sqlite3.Connection, card: str, today: str) -> dict[str, Any] | None:
    """The account of ``card``'s holder (None for an unknown card): masked name, loans with
    due dates and whether they are overdue, ready holds with their lockers, and the reasons
    the rules would refuse a loan now (blocks, an expired card, fines)."""
    found = views.patron_by_card(conn, card)
    if found is None:
        return None
    patron, name = found
    on = date.fromisoformat(today)
    loans = []
    for loan in views.open_loans_of(conn, patron.id):
        due = str(loan["due_date"])
        loans.append({**loan, "overdue": date.fromisoformat(due) < on})
    holds = []
    for hold in views.ready_holds_of(conn, patron.id):
        info = views.item_details(conn, hold.item_id)
        holds.append({"hold_id": hold.id, "slot": hold.locker_slot,
                      "title": info.get("title", ""), "barcode": info.get("barcode", ""),
                      "expires_on": hold.pickup_expires_on.isoformat()
                      if hold.pickup_expires_on else None})
    return {"name": mask_name(name), "patron_type": patron.patron_type,
            "loans": loans, "holds": holds, "blocked": bool(patron.blocks),
            "expired": patron.expires_on is not None and patron.expires_on < on,
            "fines_cents": patron.fines_owed_cents}


def record_rating(conn: sqlite3.Connection, day: str, branch: str, score: int) -> None:
    """One patron's 1-5 satisfaction rating, counted in the day's statistics."""
    if not 1 <= score <= 5:
        raise ValueError(f"a rating is 1 to 5, not {score}")
    stats.bump(conn, day, branch, f"rating.{score}")
