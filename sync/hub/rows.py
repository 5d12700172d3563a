"""The rows of each feed, as the change feed and the snapshot send them.

A feed row is ``(key, version, data)``: ``key`` is the row's natural key (card number,
barcode, ISIL, hold id, txn id...), ``version`` the change id of the row's last change at
the hub (0 for a row as loaded and never changed since), and ``data`` the whole row as a
JSON object. Rows refer to each other by natural keys (``card``, ``item``), never by the
hub's integer ids, because a device's own row ids are its own. ``docs/hub-api.yaml``
(components/schemas, ``*Row``) documents every feed's ``data``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


def _plain(columns: tuple[str, ...]) -> Callable[[tuple], dict[str, Any]]:
    def shape(values: tuple) -> dict[str, Any]:
        return dict(zip(columns, values, strict=True))
    return shape


def _verdict(values: tuple) -> dict[str, Any]:
    txn_id, seq, outcome, codes, message, corrected = values
    listed = [c for c in codes.split(",") if c]
    data: dict[str, Any] = {"txn_id": txn_id, "seq": seq, "outcome": outcome,
                            "codes": listed, "corrected_time_ns": corrected}
    if listed:
        data["code"] = listed[0]
    if message:
        data["message"] = message
    return data


@dataclass(frozen=True)
class Feed:
    """How to read one feed. ``select`` yields (key, version, *data columns); ``by_id`` is the
    WHERE clause for one row by the hub's id; ``version_table`` names the table whose
    ``version`` column holds the row's version (else ``hub_row_versions`` does)."""

    name: str
    columns: tuple[str, ...]
    select: str
    by_id: str
    snapshot_where: str = ""
    version_table: str | None = None
    scoped: bool = False
    shape: Callable[[tuple], dict[str, Any]] | None = None

    def data(self, values: tuple) -> dict[str, Any]:
        return (self.shape or _plain(self.columns))(values)


def _joined_version(feed: str, key: str) -> str:
    return (f"LEFT JOIN hub_row_versions v ON v.feed = '{feed}' AND v.key = {key}")


_LOAN_KEY = "COALESCE(l.checkout_txn, 'loan-' || l.id)"

FEEDS: dict[str, Feed] = {f.name: f for f in (
    Feed("branch", ("isil", "name", "kind", "parent_isil", "closed_weekdays"),
         "SELECT b.isil, b.version, b.isil, b.name, b.kind, b.parent_isil, b.closed_weekdays"
         " FROM branches b", "b.isil = ?", version_table="branches"),
    Feed("calendar", ("isil", "day"),
         "SELECT d.isil || '/' || d.day, COALESCE(v.version, 0), d.isil, d.day"
         " FROM branch_closed_days d " + _joined_version("calendar", "d.isil || '/' || d.day"),
         "d.isil || '/' || d.day = ?"),
    Feed("loan_rule", ("patron_type", "loan_type", "loan_days", "max_renewals", "max_loans"),
         "SELECT r.patron_type || '/' || r.loan_type, r.version, r.patron_type, r.loan_type,"
         " r.loan_days, r.max_renewals, r.max_loans FROM loan_rules r",
         "r.patron_type || '/' || r.loan_type = ?", version_table="loan_rules"),
    Feed("patron", ("card_number", "name", "patron_type", "home_branch", "status",
                    "expires_on", "fines_owed_cents", "loan_count", "pin_hash", "updated_at"),
         "SELECT p.card_number, p.version, p.card_number, p.name, p.patron_type, p.home_branch,"
         " p.status, p.expires_on, p.fines_owed_cents, p.loan_count, p.pin_hash, p.updated_at"
         " FROM patrons p", "p.id = ?", version_table="patrons"),
    Feed("staff", ("card_number", "name", "role", "pin_hash", "active", "updated_at"),
         "SELECT s.card_number, s.version, s.card_number, s.name, s.role, s.pin_hash,"
         " s.active, s.updated_at FROM staff s", "s.id = ?", version_table="staff"),
    Feed("block", ("id", "card", "reason", "note", "created_at"),
         "SELECT CAST(b.id AS TEXT), COALESCE(v.version, 0), b.id, p.card_number, b.reason,"
         " b.note, b.created_at FROM patron_blocks b JOIN patrons p ON p.id = b.patron_id "
         + _joined_version("block", "CAST(b.id AS TEXT)"), "b.id = ?"),
    Feed("item", ("barcode", "title", "author", "call_number", "owning_branch",
                  "current_branch", "loan_type", "status", "transit_to", "flags", "updated_at"),
         "SELECT i.barcode, i.version, i.barcode, i.title, i.author, i.call_number,"
         " i.owning_branch, i.current_branch, i.loan_type, i.status, i.transit_to, i.flags,"
         " i.updated_at FROM items i", "i.id = ?", version_table="items"),
    Feed("loan", ("item", "card", "branch", "loaned_at", "due_date", "renewals", "returned_at",
                  "return_branch", "checkout_txn", "checkin_txn", "flags"),
         f"SELECT {_LOAN_KEY}, COALESCE(v.version, 0), i.barcode, p.card_number, l.branch,"
         " l.loaned_at, l.due_date, l.renewals, l.returned_at, l.return_branch,"
         " l.checkout_txn, l.checkin_txn, l.flags FROM loans l"
         " JOIN items i ON i.id = l.item_id JOIN patrons p ON p.id = l.patron_id "
         + _joined_version("loan", _LOAN_KEY), "l.id = ?",
         snapshot_where="l.returned_at IS NULL"),
    Feed("hold", ("id", "card", "item", "pickup_branch", "status", "locker_slot", "placed_at",
                  "ready_at", "pickup_expires_on", "fulfilled_txn"),
         "SELECT CAST(h.id AS TEXT), h.version, h.id, p.card_number, i.barcode,"
         " h.pickup_branch, h.status, h.locker_slot, h.placed_at, h.ready_at,"
         " h.pickup_expires_on, h.fulfilled_txn FROM holds h"
         " JOIN patrons p ON p.id = h.patron_id JOIN items i ON i.id = h.item_id",
         "h.id = ?", snapshot_where="h.status IN ('waiting', 'in_transit', 'ready')",
         version_table="holds"),
    Feed("card_range", ("range_id", "prefix", "first_number", "last_number", "leased_at_ns",
                        "expires_on"),
         "SELECT CAST(r.range_id AS TEXT), COALESCE(v.version, 0), r.range_id, r.prefix,"
         " r.first_number, r.last_number, r.leased_at_ns, r.expires_on"
         " FROM hub_card_ranges r " + _joined_version("card_range", "CAST(r.range_id AS TEXT)"),
         "r.range_id = ?", snapshot_where="r.device_id = ?", scoped=True),
    Feed("verdict", ("txn_id", "seq", "outcome", "codes", "message", "corrected_time_ns"),
         "SELECT e.txn_id, COALESCE(v.version, 0), e.txn_id, e.seq, e.outcome, e.codes,"
         " e.message, e.corrected_time_ns FROM hub_events e "
         + _joined_version("verdict", "e.txn_id"), "e.device_id = ? AND e.txn_id = ?",
         # A new device needs the verdicts that still ask something of it, not every "ok".
         snapshot_where="e.device_id = ? AND e.outcome IN ('exception', 'rejected')",
         scoped=True, shape=_verdict),
)}

# Order of the snapshot: what other rows refer to comes first.
SNAPSHOT_ORDER = ("branch", "calendar", "loan_rule", "patron", "block", "item", "loan", "hold",
                  "card_range", "verdict", "staff")

def alias(feed: Feed) -> str:
    """The table alias ``by_id`` uses (``p`` for ``patrons p``)."""
    return feed.by_id.split(".", 1)[0]


def fetch(conn: sqlite3.Connection, feed: Feed, *row_id: object
          ) -> tuple[str, int, dict[str, Any]] | None:
    """One row of ``feed`` by the hub's id (``by_id``'s parameters), or None."""
    row = conn.execute(f"{feed.select} WHERE {feed.by_id}", row_id).fetchone()
    if row is None:
        return None
    return row[0], row[1], feed.data(tuple(row[2:]))


def count(conn: sqlite3.Connection, feed: Feed, device_id: str) -> int:
    where = f" WHERE {feed.snapshot_where}" if feed.snapshot_where else ""
    args = (device_id,) if feed.scoped else ()
    sql = f"SELECT count(*) FROM ({feed.select}{where})"
    return conn.execute(sql, args).fetchone()[0]


def scan(conn: sqlite3.Connection, feed: Feed, device_id: str, batch: int
         ) -> Iterator[list[tuple[str, int, dict[str, Any]]]]:
    """Every snapshot row of ``feed`` for ``device_id``, in lists of at most ``batch``."""
    where = f" WHERE {feed.snapshot_where}" if feed.snapshot_where else ""
    args = (device_id,) if feed.scoped else ()
    cur = conn.execute(f"{feed.select}{where}", args)
    while True:
        rows = cur.fetchmany(batch)
        if not rows:
            return
        yield [(r[0], r[1], feed.data(tuple(r[2:]))) for r in rows]
