"""One handler per feed of the hub: where its rows live in the cache and how they land there.

Used by :mod:`sync.feeds` (read its docstring first). A handler's ``upsert``/``delete``
return :data:`DONE` or :data:`HOLD` (keep the change for later); an ``IntegrityError`` they
raise means the same as :data:`HOLD`. Rows name each other by natural keys: a patron by
``card``, an item by ``item`` (its barcode), a branch by ISIL.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sync.feeds import Applier

DONE = "done"
HOLD = "hold"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _one(conn: sqlite3.Connection, sql: str, *args: object) -> Any:
    row = conn.execute(sql, args).fetchone()
    return None if row is None else row[0]


def patron_id(conn: sqlite3.Connection, card: object) -> int | None:
    return _one(conn, "SELECT id FROM patrons WHERE card_number = ?", card)


def item_id(conn: sqlite3.Connection, barcode: object) -> int | None:
    return _one(conn, "SELECT id FROM items WHERE barcode = ?", barcode)


def recount_loans(conn: sqlite3.Connection, patron_ids: Iterable[int]) -> None:
    """Set ``loan_count`` to the number of open loans for each patron given."""
    ids = sorted(set(patron_ids))
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        conn.execute(
            "UPDATE patrons SET loan_count = (SELECT count(*) FROM loans l"
            " WHERE l.patron_id = patrons.id AND l.returned_at IS NULL)"
            f" WHERE id IN ({','.join('?' * len(chunk))})", chunk)


def verdict_summary(data: dict[str, Any]) -> dict[str, Any]:
    codes = data.get("codes") or []
    return {"txn_id": data.get("txn_id"), "seq": data.get("seq"),
            "outcome": data.get("outcome"), "code": data.get("code") or (
                codes[0] if codes else None), "message": data.get("message")}


class Handler:
    """A feed kept in a table with a natural key and its own ``version`` column."""

    feed = ""

    def version(self, conn: sqlite3.Connection, key: str) -> int | None:
        raise NotImplementedError

    def upsert(self, ap: Applier, key: str, version: int, data: dict[str, Any]) -> str:
        raise NotImplementedError

    def delete(self, ap: Applier, key: str, version: int) -> str:
        raise NotImplementedError

    def sweep(self, ap: Applier) -> None:
        """After a whole snapshot: remove rows of this feed the snapshot did not have."""


class Mapped(Handler):
    """A feed whose cache table has no natural key or version: ``sync_rows`` holds both
    and the local row id (a deleted row keeps its version there, as a tombstone)."""

    def version(self, conn: sqlite3.Connection, key: str) -> int | None:
        return _one(conn, "SELECT version FROM sync_rows WHERE feed = ? AND key = ?",
                    self.feed, key)

    def local_id(self, conn: sqlite3.Connection, key: str) -> int | None:
        return _one(conn, "SELECT local_id FROM sync_rows WHERE feed = ? AND key = ?",
                    self.feed, key)

    def remember(self, conn: sqlite3.Connection, key: str, version: int,
                 local: int | None) -> None:
        conn.execute("INSERT INTO sync_rows (feed, key, version, local_id) VALUES (?, ?, ?, ?)"
                     " ON CONFLICT (feed, key) DO UPDATE SET version = excluded.version,"
                     " local_id = excluded.local_id", (self.feed, key, version, local))

    def unseen(self, conn: sqlite3.Connection) -> list[tuple[str, int | None]]:
        return conn.execute(
            "SELECT key, local_id FROM sync_rows WHERE feed = ? AND local_id IS NOT NULL"
            " AND key NOT IN (SELECT key FROM temp.snapshot_seen WHERE feed = ?)",
            (self.feed, self.feed)).fetchall()


class Branches(Handler):
    feed = "branch"

    def version(self, conn: sqlite3.Connection, key: str) -> int | None:
        return _one(conn, "SELECT version FROM branches WHERE isil = ?", key)

    def upsert(self, ap: Applier, key: str, version: int, data: dict[str, Any]) -> str:
        ap.conn.execute(
            "INSERT INTO branches (isil, name, kind, parent_isil, closed_weekdays, version)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (isil) DO UPDATE SET name = excluded.name,"
            " kind = excluded.kind, parent_isil = excluded.parent_isil,"
            " closed_weekdays = excluded.closed_weekdays, version = excluded.version",
            (key, data.get("name") or key, data.get("kind") or "branch",
             data.get("parent_isil"), data.get("closed_weekdays") or "", version))
        return DONE

    def delete(self, ap: Applier, key: str, version: int) -> str:
        ap.conn.execute("DELETE FROM branches WHERE isil = ?", (key,))
        return DONE


class Calendar(Mapped):
    feed = "calendar"

    def upsert(self, ap: Applier, key: str, version: int, data: dict[str, Any]) -> str:
        isil, _, day = key.partition("/")
        ap.conn.execute("INSERT OR IGNORE INTO branch_closed_days (isil, day) VALUES (?, ?)",
                        (data.get("isil", isil), data.get("day", day)))
        self.remember(ap.conn, key, version, 1)
        return DONE

    def delete(self, ap: Applier, key: str, version: int) -> str:
        isil, _, day = key.partition("/")
        ap.conn.execute("DELETE FROM branch_closed_days WHERE isil = ? AND day = ?", (isil, day))
        self.remember(ap.conn, key, version, None)
        return DONE

    def sweep(self, ap: Applier) -> None:
        ap.conn.execute(
            "DELETE FROM branch_closed_days WHERE isil || '/' || day NOT IN"
            " (SELECT key FROM temp.snapshot_seen WHERE feed = 'calendar')")


class LoanRules(Handler):
    feed = "loan_rule"

    def version(self, conn: sqlite3.Connection, key: str) -> int | None:
        pt, _, lt = key.partition("/")
        return _one(conn, "SELECT version FROM loan_rules WHERE patron_type = ?"
                    " AND loan_type = ?", pt, lt)

    def upsert(self, ap: Applier, key: str, version: int, data: dict[str, Any]) -> str:
        pt, _, lt = key.partition("/")
        ap.conn.execute(
            "INSERT INTO loan_rules (patron_type, loan_type, loan_days, max_renewals, max_loans,"
            " version) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (patron_type, loan_type) DO UPDATE"
            " SET loan_days = excluded.loan_days, max_renewals = excluded.max_renewals,"
            " max_loans = excluded.max_loans, version = excluded.version",
            (data.get("patron_type", pt), data.get("loan_type", lt), data["loan_days"],
             data["max_renewals"], data["max_loans"], version))
        return DONE

    def delete(self, ap: Applier, key: str, version: int) -> str:
        pt, _, lt = key.partition("/")
        ap.conn.execute("DELETE FROM loan_rules WHERE patron_type = ? AND loan_type = ?",
                        (pt, lt))
        return DONE

    def sweep(self, ap: Applier) -> None:
        ap.conn.execute(
            "DELETE FROM loan_rules WHERE patron_type || '/' || loan_type NOT IN"
            " (SELECT key FROM temp.snapshot_seen WHERE feed = 'loan_rule')")


class Patrons(Handler):
    feed = "patron"

    def version(self, conn: sqlite3.Connection, key: str) -> int | None:
        return _one(conn, "SELECT version FROM patrons WHERE card_number = ?", key)

    def upsert(self, ap: Applier, key: str, version: int, data: dict[str, Any]) -> str:
        # loan_count is not taken from the hub: it must equal the open loans in this cache.
        ap.conn.execute(
            "INSERT INTO patrons (card_number, name, patron_type, home_branch, status,"
            " expires_on, fines_owed_cents, pin_hash, version, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (card_number) DO UPDATE SET"
            " name = excluded.name, patron_type = excluded.patron_type,"
            " home_branch = excluded.home_branch, status = excluded.status,"
            " expires_on = excluded.expires_on, fines_owed_cents = excluded.fines_owed_cents,"
            " pin_hash = excluded.pin_hash, version = excluded.version,"
            " updated_at = excluded.updated_at",
            (key, data.get("name") or "", data.get("patron_type") or "adult",
             data.get("home_branch"), data.get("status") or "active", data.get("expires_on"),
             int(data.get("fines_owed_cents") or 0), data.get("pin_hash"), version,
             data.get("updated_at")))
        return DONE

    def delete(self, ap: Applier, key: str, version: int) -> str:
        ap.conn.execute("DELETE FROM patrons WHERE card_number = ?", (key,))
        return DONE


class Items(Handler):
    feed = "item"

    def version(self, conn: sqlite3.Connection, key: str) -> int | None:
        return _one(conn, "SELECT version FROM items WHERE barcode = ?", key)

    def upsert(self, ap: Applier, key: str, version: int, data: dict[str, Any]) -> str:
        status = data.get("status") or "available"
        if status != "on_loan" and _one(
                ap.conn, "SELECT 1 FROM loans WHERE returned_at IS NULL AND item_id ="
                " (SELECT id FROM items WHERE barcode = ?)", key):
            return HOLD  # the loan's close is on its way; an open loan means on loan
        ap.conn.execute(
            "INSERT INTO items (barcode, title, author, call_number, owning_branch,"
            " current_branch, loan_type, status, transit_to, flags, version, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (barcode) DO UPDATE SET"
            " title = excluded.title, author = excluded.author,"
            " call_number = excluded.call_number, owning_branch = excluded.owning_branch,"
            " current_branch = excluded.current_branch, loan_type = excluded.loan_type,"
            " status = excluded.status, transit_to = excluded.transit_to,"
            " flags = excluded.flags, version = excluded.version,"
            " updated_at = excluded.updated_at",
            (key, data.get("title"), data.get("author"), data.get("call_number"),
             data.get("owning_branch"), data.get("current_branch"),
             data.get("loan_type") or "normal", status, data.get("transit_to"),
             data.get("flags") or "", version, data.get("updated_at")))
        return DONE

    def delete(self, ap: Applier, key: str, version: int) -> str:
        ap.conn.execute("DELETE FROM items WHERE barcode = ?", (key,))
        return DONE


class Blocks(Mapped):
    feed = "block"

    def upsert(self, ap: Applier, key: str, version: int, data: dict[str, Any]) -> str:
        pid = patron_id(ap.conn, data.get("card"))
        if pid is None:
            return HOLD
        local = self.local_id(ap.conn, key)
        if local is None:
            # A block this cache holds without knowing the hub's key (a sample loaded
            # here): adopt it rather than hold the same block twice.
            local = _one(ap.conn, "SELECT id FROM patron_blocks b WHERE patron_id = ? AND"
                         " reason = ? AND created_at = ? AND NOT EXISTS (SELECT 1 FROM sync_rows"
                         " WHERE feed = 'block' AND local_id = b.id)",
                         pid, data.get("reason"), data.get("created_at"))
        values = (pid, data.get("reason") or "", data.get("note"),
                  data.get("created_at") or _now())
        if local is not None and _one(ap.conn, "SELECT 1 FROM patron_blocks WHERE id = ?", local):
            ap.conn.execute("UPDATE patron_blocks SET patron_id = ?, reason = ?, note = ?,"
                            " created_at = ? WHERE id = ?", (*values, local))
        else:
            local = ap.conn.execute("INSERT INTO patron_blocks (patron_id, reason, note,"
                                    " created_at) VALUES (?, ?, ?, ?) RETURNING id",
                                    values).fetchone()[0]
        self.remember(ap.conn, key, version, local)
        return DONE

    def delete(self, ap: Applier, key: str, version: int) -> str:
        local = self.local_id(ap.conn, key)
        if local is not None:
            ap.conn.execute("DELETE FROM patron_blocks WHERE id = ?", (local,))
        self.remember(ap.conn, key, version, None)
        return DONE

    def sweep(self, ap: Applier) -> None:
        for key, local in self.unseen(ap.conn):
            ap.conn.execute("DELETE FROM patron_blocks WHERE id = ?", (local,))
            ap.conn.execute("DELETE FROM sync_rows WHERE feed = 'block' AND key = ?", (key,))


class Loans(Mapped):
    feed = "loan"

    def _own(self, conn: sqlite3.Connection, key: str) -> int | None:
        """The loan this device made with event ``key``, if the key is one of its events."""
        payload = _one(conn, "SELECT payload FROM outbox WHERE txn_id = ?", key)
        if payload is None:
            return None
        barcode = json.loads(payload).get("item")
        # loans.checkout_txn is not indexed (a checkout must stay cheap): look among the
        # item's open loans first, by index, and scan only for a loan returned since.
        return _one(conn, "SELECT id FROM loans WHERE returned_at IS NULL AND item_id ="
                    " (SELECT id FROM items WHERE barcode = ?) AND checkout_txn = ?",
                    barcode, key) or _one(conn, "SELECT id FROM loans WHERE checkout_txn = ?",
                                          key)

    def _find(self, conn: sqlite3.Connection, key: str, item: int, open_: bool) -> int | None:
        local = self.local_id(conn, key)
        if local is None:
            local = self._own(conn, key)
        if local is None and open_:
            # The open loan of this item that the cache holds without the hub's key (a
            # sample loaded here) is the same loan.
            local = _one(conn, "SELECT id FROM loans l WHERE item_id = ? AND returned_at IS"
                         " NULL AND checkout_txn IS NULL AND NOT EXISTS (SELECT 1 FROM"
                         " sync_rows WHERE feed = 'loan' AND local_id = l.id)", item)
        return local

    def upsert(self, ap: Applier, key: str, version: int, data: dict[str, Any]) -> str:
        conn = ap.conn
        item, pid = item_id(conn, data.get("item")), patron_id(conn, data.get("card"))
        if item is None or pid is None:
            return HOLD
        returned = data.get("returned_at")
        local = self._find(conn, key, item, returned is None)
        values = (item, pid, data.get("branch") or "", data.get("loaned_at") or _now(),
                  data.get("due_date") or "", int(data.get("renewals") or 0), returned,
                  data.get("return_branch"), data.get("flags") or "")
        old = conn.execute("SELECT patron_id FROM loans WHERE id = ?", (local,)).fetchone() \
            if local is not None else None
        if old is not None:
            ap.touched_patrons.add(old[0])
            conn.execute("UPDATE loans SET item_id = ?, patron_id = ?, branch = ?,"
                         " loaned_at = ?, due_date = ?, renewals = ?, returned_at = ?,"
                         " return_branch = ?, flags = ? WHERE id = ?", (*values, local))
        else:
            local = conn.execute("INSERT INTO loans (item_id, patron_id, branch, loaned_at,"
                                 " due_date, renewals, returned_at, return_branch, flags)"
                                 " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                                 values).fetchone()[0]
        ap.touched_patrons.add(pid)
        if returned is None:
            conn.execute("UPDATE items SET status = 'on_loan' WHERE id = ?"
                         " AND status != 'on_loan'", (item,))
        self.remember(conn, key, version, local)
        return DONE

    def delete(self, ap: Applier, key: str, version: int) -> str:
        local = self.local_id(ap.conn, key) or self._own(ap.conn, key)
        if local is not None:
            pid = _one(ap.conn, "DELETE FROM loans WHERE id = ? RETURNING patron_id", local)
            if pid is not None:
                ap.touched_patrons.add(pid)
        self.remember(ap.conn, key, version, None)
        return DONE

    def sweep(self, ap: Applier) -> None:
        # The snapshot lists the loans open at the hub; an open loan here that it lacks (and
        # that no pending event of ours explains) was closed at the hub meanwhile.
        rows = ap.conn.execute(
            "SELECT l.id, l.patron_id, coalesce(h.key, l.checkout_txn), i.barcode"
            " FROM loans l JOIN items i ON i.id = l.item_id"
            " LEFT JOIN sync_rows h ON h.feed = 'loan' AND h.local_id = l.id"
            " WHERE l.returned_at IS NULL").fetchall()
        seen = {r[0] for r in ap.conn.execute(
            "SELECT key FROM temp.snapshot_seen WHERE feed = 'loan'")}
        for local, pid, key, barcode in rows:
            if key in seen or key in ap.pending.loans or barcode in ap.pending.items:
                continue
            ap.conn.execute("UPDATE loans SET returned_at = ? WHERE id = ?", (_now(), local))
            ap.touched_patrons.add(pid)


class Holds(Handler):
    feed = "hold"

    def version(self, conn: sqlite3.Connection, key: str) -> int | None:
        return _one(conn, "SELECT version FROM holds WHERE id = ?", int(key))

    def upsert(self, ap: Applier, key: str, version: int, data: dict[str, Any]) -> str:
        item, pid = item_id(ap.conn, data.get("item")), patron_id(ap.conn, data.get("card"))
        if item is None or pid is None:
            return HOLD
        ap.conn.execute(
            "INSERT INTO holds (id, patron_id, item_id, pickup_branch, status, locker_slot,"
            " placed_at, ready_at, pickup_expires_on, fulfilled_txn, version)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " patron_id = excluded.patron_id, item_id = excluded.item_id,"
            " pickup_branch = excluded.pickup_branch, status = excluded.status,"
            " locker_slot = excluded.locker_slot, placed_at = excluded.placed_at,"
            " ready_at = excluded.ready_at, pickup_expires_on = excluded.pickup_expires_on,"
            " fulfilled_txn = excluded.fulfilled_txn, version = excluded.version",
            (int(key), pid, item, data.get("pickup_branch"), data.get("status") or "waiting",
             data.get("locker_slot"), data.get("placed_at") or _now(), data.get("ready_at"),
             data.get("pickup_expires_on"), data.get("fulfilled_txn"), version))
        return DONE

    def delete(self, ap: Applier, key: str, version: int) -> str:
        ap.conn.execute("DELETE FROM holds WHERE id = ?", (int(key),))
        return DONE

    def sweep(self, ap: Applier) -> None:
        # The snapshot lists the active holds; an active hold it lacks ended at the hub.
        ap.conn.execute(
            "DELETE FROM holds WHERE status IN ('waiting', 'in_transit', 'ready')"
            " AND CAST(id AS TEXT) NOT IN (SELECT key FROM temp.snapshot_seen"
            " WHERE feed = 'hold')"
            f" AND CAST(id AS TEXT) NOT IN ({','.join('?' * len(ap.pending.holds))})",
            tuple(ap.pending.holds))


class CardRanges(Mapped):
    feed = "card_range"

    def upsert(self, ap: Applier, key: str, version: int, data: dict[str, Any]) -> str:
        first, last = int(data["first_number"]), int(data["last_number"])
        leased_ns = data.get("leased_at_ns")
        leased = datetime.fromtimestamp(leased_ns / 1e9, UTC).isoformat(timespec="seconds") \
            if leased_ns else _now()
        local = self.local_id(ap.conn, key)
        if local is not None and _one(ap.conn, "SELECT 1 FROM card_ranges WHERE id = ?", local):
            # Numbers already issued from the range stay issued.
            ap.conn.execute(
                "UPDATE card_ranges SET prefix = ?, first_number = ?, last_number = ?,"
                " next_number = min(max(next_number, ?), ? + 1), leased_at = ?,"
                " expires_on = ? WHERE id = ?",
                (data["prefix"], first, last, first, last, leased, data.get("expires_on"),
                 local))
        else:
            local = ap.conn.execute(
                "INSERT INTO card_ranges (prefix, first_number, last_number, next_number,"
                " leased_at, expires_on) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (data["prefix"], first, last, first, leased, data.get("expires_on"))
            ).fetchone()[0]
        self.remember(ap.conn, key, version, local)
        return DONE

    def delete(self, ap: Applier, key: str, version: int) -> str:
        local = self.local_id(ap.conn, key)
        if local is not None:
            ap.conn.execute("DELETE FROM card_ranges WHERE id = ?", (local,))
        self.remember(ap.conn, key, version, None)
        return DONE

    def sweep(self, ap: Applier) -> None:
        for key, local in self.unseen(ap.conn):
            ap.conn.execute("DELETE FROM card_ranges WHERE id = ?", (local,))
            ap.conn.execute("DELETE FROM sync_rows WHERE feed = 'card_range' AND key = ?",
                            (key,))


class Verdicts(Handler):
    feed = "verdict"

    def version(self, conn: sqlite3.Connection, key: str) -> int | None:
        return _one(conn, "SELECT version FROM sync_verdicts WHERE txn_id = ?", key)

    def upsert(self, ap: Applier, key: str, version: int, data: dict[str, Any]) -> str:
        s = verdict_summary(data)
        ap.conn.execute(
            "INSERT OR REPLACE INTO sync_verdicts (txn_id, device_id, seq, outcome, code,"
            " message, corrected_time_ns, version, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, ap.device_id, int(s["seq"] or 0), s["outcome"] or "ok", s["code"],
             s["message"], data.get("corrected_time_ns"), version, _now()))
        return DONE

    def delete(self, ap: Applier, key: str, version: int) -> str:
        ap.conn.execute("DELETE FROM sync_verdicts WHERE txn_id = ?", (key,))
        return DONE


class Staff(Handler):
    """Staff accounts (sync.staff). A staff member the hub no longer lists loses access
    here at the next snapshot; the audit keeps their rows (it has no foreign key)."""

    feed = "staff"

    def version(self, conn: sqlite3.Connection, key: str) -> int | None:
        return _one(conn, "SELECT version FROM staff WHERE card_number = ?", key)

    def upsert(self, ap: Applier, key: str, version: int, data: dict[str, Any]) -> str:
        ap.conn.execute(
            "INSERT INTO staff (card_number, name, role, pin_hash, active, version, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (card_number) DO UPDATE SET"
            " name = excluded.name, role = excluded.role, pin_hash = excluded.pin_hash,"
            " active = excluded.active, version = excluded.version,"
            " updated_at = excluded.updated_at",
            # A role this release does not know gets the least: the desk's.
            (key, data.get("name") or "", data.get("role") if data.get("role") in (
                "desk", "van", "admin") else "desk",
             data.get("pin_hash") or "", 1 if data.get("active", 1) else 0, version,
             data.get("updated_at")))
        return DONE

    def delete(self, ap: Applier, key: str, version: int) -> str:
        ap.conn.execute("DELETE FROM staff WHERE card_number = ?", (key,))
        return DONE

    def sweep(self, ap: Applier) -> None:
        ap.conn.execute("DELETE FROM staff WHERE card_number NOT IN"
                        " (SELECT key FROM temp.snapshot_seen WHERE feed = 'staff')")


HANDLERS: dict[str, Handler] = {h.feed: h for h in (
    Branches(), Calendar(), LoanRules(), Patrons(), Items(), Blocks(), Loans(), Holds(),
    CardRanges(), Verdicts(), Staff())}
