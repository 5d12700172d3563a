"""Applying the hub's rows to the offline cache: change-feed pages and the snapshot.

A row arrives as ``(feed, op, key, version, data)`` (docs/hub-api.yaml, the change feed);
rows name each other by natural keys (``card``, ``item``), and this module maps them to the
cache's own row ids. What a caller may rely on, for every function here (each runs inside
the caller's write transaction):

- **Version-guarded.** A change is applied only when its version is newer than the one the
  cache holds (a snapshot row: newer or equal), so re-applying a page after a crash, or an
  old change arriving late, changes nothing.
- **Local pending wins.** A row touched by one of this device's events that the hub has not
  acknowledged (the patron's card, the item, its loan, the hold) is not overwritten: the
  change is held back in ``sync_deferred`` and applied, still version-guarded, once the hub
  has acknowledged the event. Held back too: an item the hub calls not on loan while the
  cache holds an open loan of it, and a row whose parent (patron, item, branch) has not
  arrived yet; they are retried after every page.
- **Invariants hold at every commit**: ``patrons.loan_count`` equals the patron's open
  loans, and an item with an open loan is ``on_loan``.
- ``loans.checkout_txn``/``checkin_txn`` stay this device's own evidence: rows from the hub
  never write them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sync import feed_rows as fr
from sync.client import HubProtocolError

CURSOR_FEED = "changes"


# -- the cursor ----------------------------------------------------------------------------


def cursor(conn: sqlite3.Connection) -> str | None:
    """The stored change-feed cursor; None for a device that needs the snapshot."""
    row = conn.execute("SELECT cursor FROM sync_state WHERE feed = ?", (CURSOR_FEED,)).fetchone()
    return row[0] if row else None


def store_cursor(conn: sqlite3.Connection, value: str) -> None:
    conn.execute(
        "INSERT INTO sync_state (feed, cursor, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (feed) DO UPDATE SET cursor = excluded.cursor,"
        " updated_at = excluded.updated_at",
        (CURSOR_FEED, value, datetime.now(UTC).isoformat(timespec="seconds")))


def forget_cursor(conn: sqlite3.Connection) -> None:
    """Drop the cursor (the hub said it expired): the next pull takes a new snapshot."""
    conn.execute("DELETE FROM sync_state WHERE feed = ?", (CURSOR_FEED,))


# -- what is pending here ------------------------------------------------------------------


@dataclass(frozen=True)
class Pending:
    """Natural keys touched by this device's unacknowledged events."""

    cards: frozenset[str]
    items: frozenset[str]
    holds: frozenset[str]
    loans: frozenset[str]

    def guards(self, feed: str, key: str, data: dict[str, Any] | None) -> bool:
        d = data or {}
        if feed == "patron":
            return key in self.cards
        if feed == "item":
            return key in self.items
        if feed == "hold":
            return key in self.holds or d.get("item") in self.items
        if feed == "loan":
            return key in self.loans or d.get("item") in self.items
        return False


def pending(conn: sqlite3.Connection, device_id: str) -> Pending:
    cards, items, holds, loans = set(), set(), set(), set()
    for txn, payload in conn.execute(
            "SELECT txn_id, payload FROM outbox WHERE device_id = ? AND acked_at IS NULL",
            (device_id,)):
        p = json.loads(payload)
        if p.get("card"):
            cards.add(str(p["card"]))
        if p.get("item"):
            items.add(str(p["item"]))
        if p.get("hold_id") is not None:
            holds.add(str(p["hold_id"]))
        loans.add(txn)
    return Pending(frozenset(cards), frozenset(items), frozenset(holds), frozenset(loans))


# -- applying ------------------------------------------------------------------------------


@dataclass
class PageResult:
    applied: int = 0
    skipped: int = 0
    held_back: int = 0
    flagged: list[dict[str, Any]] = field(default_factory=list)


class Applier:
    """Applies changes inside one transaction, collecting the patrons whose loan counts
    and the items whose held-back rows need another look before it commits."""

    def __init__(self, conn: sqlite3.Connection, device_id: str, *, snapshot: bool = False,
                 pending_keys: Pending | None = None) -> None:
        self.conn = conn
        self.device_id = device_id
        self.snapshot = snapshot
        self.pending = pending_keys or pending(conn, device_id)
        self.result = PageResult()
        self.touched_patrons: set[int] = set()
        # Most pages hold nothing back: skip the per-row cleanup of sync_deferred then.
        self.has_deferred = bool(conn.execute(
            "SELECT EXISTS (SELECT 1 FROM sync_deferred)").fetchone()[0])

    def change(self, feed: str, op: str, key: str, version: int,
               data: dict[str, Any] | None, *, deferred: bool = False) -> str:
        """Apply one change; returns ``applied``, ``skipped`` or ``held``."""
        handler = fr.HANDLERS.get(feed)
        if handler is None:
            self.result.skipped += 1  # a feed this release does not know: ignore, not fail
            return "skipped"
        if self.pending.guards(feed, key, data):
            return self._hold(feed, op, key, version, data, deferred)
        held = handler.version(self.conn, key)
        newer = held is None or version > held or (self.snapshot and version >= held)
        if not newer:
            if not deferred:
                self.result.skipped += 1
            self._drop_deferred(feed, key, version)
            return "skipped"
        try:
            if op == "delete":
                outcome = handler.delete(self, key, version)
            else:
                outcome = handler.upsert(self, key, version, data or {})
        except sqlite3.IntegrityError:
            # A parent that has not arrived yet, or a second open loan of an item whose
            # first one the hub has not closed for us yet: try again after the next page.
            outcome = fr.HOLD
        if outcome == fr.HOLD:
            return self._hold(feed, op, key, version, data, deferred)
        self._drop_deferred(feed, key, version)
        self.result.applied += 1
        if feed == "verdict" and data and data.get("outcome") in ("exception", "rejected"):
            self.result.flagged.append(fr.verdict_summary(data))
        return "applied"

    def _hold(self, feed: str, op: str, key: str, version: int,
              data: dict[str, Any] | None, deferred: bool) -> str:
        if not deferred:
            self.result.held_back += 1
            self.has_deferred = True
            self.conn.execute(
                "INSERT INTO sync_deferred (feed, key, op, version, data) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (feed, key) DO UPDATE SET op = excluded.op,"
                " version = excluded.version, data = excluded.data"
                " WHERE excluded.version >= sync_deferred.version",
                (feed, key, op, version,
                 None if data is None else json.dumps(data, ensure_ascii=False)))
        return "held"

    def _drop_deferred(self, feed: str, key: str, version: int) -> None:
        if not self.has_deferred:
            return
        self.conn.execute("DELETE FROM sync_deferred WHERE feed = ? AND key = ? AND version <= ?",
                          (feed, key, version))

    def retry_deferred(self) -> int:
        """Apply held-back changes whose reason is gone; returns how many were."""
        released = 0
        for _ in range(3):  # a released parent may release its children in the next round
            rows = self.conn.execute(
                "SELECT feed, op, key, version, data FROM sync_deferred"
                " ORDER BY CASE feed WHEN 'branch' THEN 0 WHEN 'patron' THEN 1 WHEN 'item'"
                " THEN 2 WHEN 'loan' THEN 3 ELSE 4 END, version").fetchall()
            done = 0
            for feed, op, key, version, data in rows:
                outcome = self.change(feed, op, key, version,
                                      None if data is None else json.loads(data),
                                      deferred=True)
                if outcome != "held":
                    done += 1
                    self.conn.execute("DELETE FROM sync_deferred WHERE feed = ? AND key = ?"
                                      " AND version = ?", (feed, key, version))
            released += done
            if not done:
                break
        return released

    def finish(self) -> None:
        """Restore the invariants for every patron touched; call before commit."""
        fr.recount_loans(self.conn, self.touched_patrons)
        self.touched_patrons.clear()


def apply_page(conn: sqlite3.Connection, device_id: str,
               changes: Iterable[dict[str, Any]]) -> PageResult:
    """Apply one page of the change feed (inside the transaction that stores its cursor)."""
    applier = Applier(conn, device_id)
    for c in changes:
        try:
            feed, op, key, version = c["feed"], c["op"], str(c["key"]), int(c["version"])
        except (KeyError, TypeError, ValueError) as exc:
            raise HubProtocolError(f"changes: malformed change {c!r:.200}",
                                   code="protocol") from exc
        applier.change(feed, op, key, version, c.get("data"))
    applier.retry_deferred()
    applier.finish()
    return applier.result


def release_deferred(conn: sqlite3.Connection, device_id: str) -> int:
    """After an acknowledgement: apply the held-back rows the hub now has our events for."""
    if conn.execute("SELECT NOT EXISTS (SELECT 1 FROM sync_deferred)").fetchone()[0]:
        return 0
    applier = Applier(conn, device_id)
    released = applier.retry_deferred()
    applier.finish()
    return released


# -- the snapshot ----------------------------------------------------------------------------

# Feeds whose rows the hub deletes outright; on a re-bootstrap the rows of these feeds that
# the snapshot no longer has are removed (patrons, items and branches are never deleted by
# the hub: they change status).
SWEPT = ("block", "hold", "loan", "calendar", "loan_rule", "card_range", "staff")


class SnapshotLoader:
    """Streams a snapshot into the cache: rows applied ``batch_rows`` at a time, each batch
    in its own transaction; the cursor from the header is stored, with the sweep of rows the
    hub no longer has, only in the transaction that follows the ``end`` line."""

    def __init__(self, cache: Any, device_id: str, batch_rows: int = 5000) -> None:
        self.cache = cache
        self.device_id = device_id
        self.batch_rows = batch_rows

    def load(self, lines: Iterator[dict[str, Any]],
             before_commit: Callable[[sqlite3.Connection], None] | None = None) -> int:
        """Apply the stream; returns the rows it held. Raises :class:`HubProtocolError`
        (retryable) when the stream is not a whole snapshot."""
        header = next(lines, None)
        if not header or header.get("type") != "header" or not isinstance(
                header.get("cursor"), str):
            raise HubProtocolError("snapshot: no header line", code="protocol")
        with self.cache.transaction() as conn:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS snapshot_seen (feed TEXT, key TEXT,"
                         " PRIMARY KEY (feed, key)) WITHOUT ROWID")
            conn.execute("DELETE FROM temp.snapshot_seen")
        batch: list[dict[str, Any]] = []
        rows = 0
        for line in lines:
            kind = line.get("type")
            if kind == "end":
                if int(line.get("rows", -1)) != rows:
                    raise HubProtocolError(f"snapshot: end says {line.get('rows')} rows, "
                                           f"{rows} came", code="protocol")
                self._commit(batch, before_commit, final=header["cursor"])
                return rows
            if kind == "header":
                raise HubProtocolError("snapshot: second header", code="protocol")
            batch.append(line)
            rows += 1  # noqa: SIM113 (lines are counted, header and end aside)
            if len(batch) >= self.batch_rows:
                self._commit(batch, before_commit)
                batch = []
        raise HubProtocolError("snapshot: stream ended without its end line; discarded",
                               code="protocol")

    def _commit(self, batch: list[dict[str, Any]],
                before_commit: Callable[[sqlite3.Connection], None] | None,
                final: str | None = None) -> None:
        with self.cache.transaction() as conn:
            applier = Applier(conn, self.device_id, snapshot=True)
            seen = []
            for line in batch:
                try:
                    feed, key, version = line["type"], str(line["key"]), int(line["version"])
                except (KeyError, TypeError, ValueError) as exc:
                    raise HubProtocolError(f"snapshot: malformed line {line!r:.200}",
                                           code="protocol") from exc
                applier.change(feed, "upsert", key, version, line.get("data"))
                if feed in SWEPT:
                    seen.append((feed, key))
            conn.executemany("INSERT OR IGNORE INTO temp.snapshot_seen VALUES (?, ?)", seen)
            if final is not None:
                for feed in SWEPT:
                    fr.HANDLERS[feed].sweep(applier)
                applier.retry_deferred()
                store_cursor(conn, final)
                conn.execute("DELETE FROM temp.snapshot_seen")
            applier.finish()
            if before_commit is not None:
                before_commit(conn)
