"""What the library system says of a reader, kept in the cache for offline use (SIP2).

A kiosk whose only link is SIP2 has no feed of readers: its cache learns them one at a
time. When a card starts a session while the library system is reachable, the kiosk asks
its patron status (23) and keeps the answer here, so that the next time the link is down
the cache decides as the library system would have:

- a card the cache does not know, which the library system knows: a reader row (its name,
  patron type :data:`sync.online.LEARNED_PATRON_TYPE`);
- a reader the library system does not let borrow (charge privileges denied): a block of
  reason :data:`BLOCK_REASON`, its note the system's own message;
- a reader it lets borrow again: that block lifted. Blocks of any other reason (the hub's,
  staff's) are never touched here.

A card the library system does not know is left as the cache has it.
"""

from __future__ import annotations

import sqlite3

from sync.online import LEARNED_PATRON_TYPE

BLOCK_REASON = "library_system"


def learn_patron(conn: sqlite3.Connection, card: str, *, known: bool, name: str,
                 may_borrow: bool, message: str, when: str) -> list[str]:
    """Keep what the library system said of ``card`` (inside the caller's transaction);
    what changed: ``added``, ``named``, ``blocked``, ``unblocked``."""
    if not known:
        return []
    changed: list[str] = []
    row = conn.execute("SELECT id, name FROM patrons WHERE card_number = ?", (card,)).fetchone()
    if row is None:
        patron_id = conn.execute(
            "INSERT INTO patrons (card_number, name, patron_type, updated_at)"
            " VALUES (?, ?, ?, ?) RETURNING id",
            (card, name, LEARNED_PATRON_TYPE, when)).fetchone()[0]
        changed.append("added")
    else:
        patron_id = row[0]
        if name and not row[1]:
            conn.execute("UPDATE patrons SET name = ? WHERE id = ?", (name, patron_id))
            changed.append("named")
    ours = conn.execute("SELECT id FROM patron_blocks WHERE patron_id = ? AND reason = ?",
                        (patron_id, BLOCK_REASON)).fetchone()
    if not may_borrow and ours is None:
        conn.execute("INSERT INTO patron_blocks (patron_id, reason, note, created_at)"
                     " VALUES (?, ?, ?, ?)", (patron_id, BLOCK_REASON, message or None, when))
        changed.append("blocked")
    elif may_borrow and ours is not None:
        conn.execute("DELETE FROM patron_blocks WHERE id = ?", (ours[0],))
        changed.append("unblocked")
    return changed
