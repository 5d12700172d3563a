"""The change log: every row change the hub makes, in order, and the cursors into it.

Each change gets the next ``change_id`` from a counter (never reused, even after
compaction), and that id is also the row's new ``version``: a row's version therefore grows
with every change of it, and a device that compares versions applies only newer rows.
``card_range`` and ``verdict`` changes carry the ``device_id`` they belong to and are shown
to that device only.

Cursors are opaque to clients: urlsafe base64 of ``{"c": change_id, "e": epoch}``. The
epoch is drawn when the hub database is created, so a cursor from another (or a re-created)
database is expired, not silently wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from sync.hub import chunk, rows
from sync.hub.errors import BadRequest, CursorExpired


def _state(conn: sqlite3.Connection, key: str) -> Any:
    return conn.execute("SELECT value FROM hub_state WHERE key = ?", (key,)).fetchone()[0]


def next_change_id(conn: sqlite3.Connection) -> int:
    """Take the next change id; call inside the write transaction that records the change.
    Inside :func:`sync.hub.chunk.shared` the id comes from the chunk's counter."""
    shared = chunk.current(conn)
    if shared is not None:
        shared.last_change_id += 1
        return shared.last_change_id
    return conn.execute(
        "UPDATE hub_state SET value = value + 1 WHERE key = 'last_change_id' RETURNING value"
    ).fetchone()[0]


def _record(conn: sqlite3.Connection, change_id: int, feed: str, key: str, op: str,
            data: dict[str, Any] | None, device_id: str | None, now_ns: int) -> None:
    conn.execute(
        "INSERT INTO hub_changes (change_id, feed, key, op, version, data, device_id,"
        " made_at_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (change_id, feed, key, op, change_id,
         None if data is None else json.dumps(data, ensure_ascii=False, sort_keys=True),
         device_id, now_ns),
    )


def emit(conn: sqlite3.Connection, feed_name: str, *row_id: object, now_ns: int,
         device_id: str | None = None) -> int:
    """Record the current state of one row as an upsert and give it a new version.

    ``row_id`` are the parameters of the feed's ``by_id`` clause. Returns the version.
    """
    feed = rows.FEEDS[feed_name]
    found = rows.fetch(conn, feed, *row_id)
    if found is None:
        raise LookupError(f"{feed_name} {row_id!r}: no such row to record")
    key, _old, data = found
    change_id = next_change_id(conn)
    if feed.version_table:
        a = rows.alias(feed)
        conn.execute(f"UPDATE {feed.version_table} AS {a} SET version = ? WHERE {feed.by_id}",
                     (change_id, *row_id))
    else:
        _set_row_version(conn, feed_name, key, change_id)
    _record(conn, change_id, feed_name, key, "upsert", data, device_id, now_ns)
    return change_id


def emit_delete(conn: sqlite3.Connection, feed_name: str, key: str, *, now_ns: int,
                device_id: str | None = None) -> int:
    """Record that a row is gone (the caller has deleted it). Returns the version."""
    change_id = next_change_id(conn)
    _set_row_version(conn, feed_name, key, change_id)
    _record(conn, change_id, feed_name, key, "delete", None, device_id, now_ns)
    return change_id


def _set_row_version(conn: sqlite3.Connection, feed: str, key: str, version: int) -> None:
    conn.execute(
        "INSERT INTO hub_row_versions (feed, key, version) VALUES (?, ?, ?)"
        " ON CONFLICT (feed, key) DO UPDATE SET version = excluded.version",
        (feed, key, version),
    )


# -- cursors -----------------------------------------------------------------------------

def encode_cursor(change_id: int, epoch: str) -> str:
    raw = json.dumps({"c": change_id, "e": epoch}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """(change id, epoch) of a cursor; :class:`BadRequest` if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        obj = json.loads(raw)
        change_id, epoch = obj["c"], obj["e"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise BadRequest("cursor is not one this hub issued") from None
    if not isinstance(change_id, int) or isinstance(change_id, bool) or change_id < 0 \
            or not isinstance(epoch, str):
        raise BadRequest("cursor is not one this hub issued")
    return change_id, epoch


def position(conn: sqlite3.Connection) -> str:
    """A cursor at the end of the log as this transaction sees it."""
    return encode_cursor(_state(conn, "last_change_id"), _state(conn, "epoch"))


@dataclass(frozen=True)
class Page:
    changes: list[dict[str, Any]]
    cursor: str
    has_more: bool

    def as_dict(self) -> dict[str, Any]:
        return {"changes": self.changes, "cursor": self.cursor, "has_more": self.has_more}


def page(conn: sqlite3.Connection, device_id: str, cursor: str | None, limit: int) -> Page:
    """The changes ``device_id`` may see after ``cursor``; run inside one read transaction.

    Raises :class:`CursorExpired` when changes after the cursor were compacted away, or the
    cursor is from another database.
    """
    epoch = _state(conn, "epoch")
    compacted = _state(conn, "compacted_through")
    last = _state(conn, "last_change_id")
    if cursor is None:
        after = compacted
    else:
        after, their_epoch = decode_cursor(cursor)
        if their_epoch != epoch or after > last:
            raise CursorExpired("cursor is from another hub database; take a new snapshot")
        if after < compacted:
            raise CursorExpired("cursor is older than the hub's change log; take a new snapshot")
    found = conn.execute(
        "SELECT change_id, feed, key, op, version, data FROM hub_changes"
        " WHERE change_id > ? AND (device_id IS NULL OR device_id = ?)"
        " ORDER BY change_id LIMIT ?",
        (after, device_id, limit + 1),
    ).fetchall()
    has_more = len(found) > limit
    found = found[:limit]
    changes = []
    for _cid, feed, key, op, version, data in found:
        change: dict[str, Any] = {"feed": feed, "op": op, "key": key, "version": version}
        if data is not None:
            change["data"] = json.loads(data)
        changes.append(change)
    # With nothing more to show, the cursor moves to the end of the log: the changes skipped
    # belong to other devices and need not be scanned again.
    end = found[-1][0] if has_more else max(after, last)
    return Page(changes, encode_cursor(end, epoch), has_more)


def compact(conn: sqlite3.Connection, before_ns: int) -> int:
    """Forget changes made before ``before_ns``; cursors before them become expired.

    Run inside a write transaction. Returns the number of changes removed.
    """
    upto = conn.execute(
        "SELECT max(change_id) FROM hub_changes WHERE made_at_ns < ?", (before_ns,)
    ).fetchone()[0]
    if upto is None:
        return 0
    removed = conn.execute("DELETE FROM hub_changes WHERE change_id <= ?", (upto,)).rowcount
    conn.execute(
        "UPDATE hub_state SET value = max(value, ?) WHERE key = 'compacted_through'", (upto,)
    )
    return removed
