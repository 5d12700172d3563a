"""What the events applied in one chunk (one write transaction) share: the change-id
counter and the set of known branches.

Applying one event takes about four change ids and asks two or three times whether a
branch exists. Within one write transaction nobody else can take a change id or add a
branch, so a chunk of events reads the counter once, hands out ids from memory and stores
the counter once at the end, and remembers each branch it has asked about.

Ids taken by an event that is then rolled back (its savepoint) are not handed out again:
change ids stay unique and increasing, and a gap in them means nothing to a cursor.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class Shared:
    conn: sqlite3.Connection
    last_change_id: int
    branches: dict[str, bool] = field(default_factory=dict)


_current: ContextVar[Shared | None] = ContextVar("sync_hub_chunk", default=None)


@contextmanager
def shared(conn: sqlite3.Connection) -> Iterator[Shared]:
    """Share the counter and the branch lookups among everything applied on ``conn`` in
    the block; run it inside the write transaction. The counter is stored when the block
    ends normally; after an exception nothing is (the caller rolls back)."""
    current = Shared(conn, conn.execute(
        "SELECT value FROM hub_state WHERE key = 'last_change_id'").fetchone()[0])
    token = _current.set(current)
    try:
        yield current
    finally:
        _current.reset(token)
    # max(): never move the counter back, whatever else took ids in this transaction.
    conn.execute("UPDATE hub_state SET value = max(value, ?) WHERE key = 'last_change_id'",
                 (current.last_change_id,))


def current(conn: sqlite3.Connection) -> Shared | None:
    """What the chunk open on ``conn`` in this thread shares, or None outside a chunk."""
    found = _current.get()
    return found if found is not None and found.conn is conn else None
