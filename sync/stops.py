"""Van stops: the village the van is standing in, chosen by staff from a configured list.

The stop is one row (``van_stop``) of the cache. While it is set, every outbox event
(:func:`sync.outbox.append`) and every daily figure (:func:`sync.stats.bump`) written
carries it, read inside the same transaction, so an event never names a stop other than
the one current when its change committed. A fixed service point never sets a stop, and
its events carry none (its figures are counted under the stop ``''``).

Choosing a stop is a staff action: it is audited (and forwarded to the hub as a
``staff_action`` event) in the transaction that changes it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from sync import audit
from sync.db import writing


class UnknownStop(ValueError):
    """A stop that is not in the configured list (a typo, or an old list)."""

    def __init__(self, stop: str, known: Sequence[str]) -> None:
        super().__init__(f"{stop!r} is not a configured stop (known: {', '.join(known)})")
        self.stop = stop
        self.known = tuple(known)


def current(conn: sqlite3.Connection) -> str | None:
    """The stop chosen last, or None when none was chosen (or it was cleared)."""
    row = conn.execute("SELECT stop FROM van_stop WHERE id = 1").fetchone()
    return row[0] if row else None


def choose(conn: sqlite3.Connection, stop: str | None, *, known: Sequence[str],
           at: datetime, staff_id: int | None, staff_card: str | None,
           forward: audit.Forward | None = None) -> None:
    """Make ``stop`` the current stop (None: no stop, e.g. back at the depot).

    Raises :class:`UnknownStop` when ``stop`` is not in ``known``; commits the change
    together with its audit row otherwise (in the caller's transaction when one is open).
    """
    if stop is not None and stop not in known:
        raise UnknownStop(stop, known)
    with writing(conn):
        previous = current(conn)
        if stop is None:
            conn.execute("DELETE FROM van_stop")
        else:
            conn.execute(
                "INSERT INTO van_stop (id, stop, chosen_at, staff_id) VALUES (1, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET stop = excluded.stop,"
                " chosen_at = excluded.chosen_at, staff_id = excluded.staff_id",
                (stop, at.isoformat(timespec="seconds"), staff_id))
        audit.record(conn, action="stop_chosen", at=at, staff_id=staff_id,
                     staff_card=staff_card, forward=forward,
                     details={"stop": stop, "previous": previous})
