"""The transaction outbox: every state change the kiosk makes, waiting for the hub.

An event is appended inside the same transaction as the change it describes, so the two
commit together or not at all. Per device, ``seq`` is gap-free (1, 2, 3, ...): it is taken
from a counter row updated in that same transaction, so a rolled-back change also gives
its number back; the table's key (device_id, seq) makes a duplicate impossible. An event
carries the van stop current when it was written (:mod:`sync.stops`; None at a fixed branch). Events
stay in the table until the hub acknowledges them; nothing is deleted before that.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from sync import stops
from sync.clock import Reading, hlc_next


@dataclass(frozen=True)
class Event:
    device_id: str
    seq: int
    txn_id: str
    kind: str
    boot_id: str
    mono_ns: int
    wall_ns: int
    clock_synced: bool
    hlc: int
    payload: dict[str, Any]
    acked_at: str | None = None
    stop: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def new_txn_id() -> str:
    return uuid.uuid4().hex


def append(
    conn: sqlite3.Connection,
    *,
    device_id: str,
    kind: str,
    payload: dict[str, Any],
    reading: Reading,
    txn_id: str | None = None,
) -> Event:
    """Append one event. Must be called inside the caller's write transaction."""
    if not conn.in_transaction:
        raise RuntimeError("outbox.append must run inside the transaction of its change")
    # The HLC is one clock for the whole database (the max over every device id it has
    # been), so renaming a device never moves its clock back.
    previous = conn.execute("SELECT max(last_hlc) FROM outbox_counters").fetchone()[0] or 0
    hlc = hlc_next(previous, reading.wall_ns)
    seq = conn.execute(
        "INSERT INTO outbox_counters (device_id, last_seq, last_hlc) VALUES (?, 1, ?) "
        "ON CONFLICT (device_id) DO UPDATE SET last_seq = last_seq + 1,"
        " last_hlc = excluded.last_hlc RETURNING last_seq",
        (device_id, hlc),
    ).fetchone()[0]
    event = Event(
        device_id=device_id,
        seq=seq,
        txn_id=txn_id or new_txn_id(),
        kind=kind,
        boot_id=reading.boot_id,
        mono_ns=reading.monotonic_ns,
        wall_ns=reading.wall_ns,
        clock_synced=reading.synchronised,
        hlc=hlc,
        payload=payload,
        stop=stops.current(conn),
    )
    conn.execute(
        "INSERT INTO outbox (device_id, seq, txn_id, kind, boot_id, mono_ns, wall_ns,"
        " clock_synced, hlc, payload, stop) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            event.device_id, event.seq, event.txn_id, event.kind, event.boot_id,
            event.mono_ns, event.wall_ns, int(event.clock_synced), event.hlc,
            json.dumps(payload, ensure_ascii=False, sort_keys=True), event.stop,
        ),
    )
    return event


_COLUMNS = (
    "device_id, seq, txn_id, kind, boot_id, mono_ns, wall_ns, clock_synced, hlc, payload,"
    " acked_at, stop"
)


def _event(row: sqlite3.Row | tuple) -> Event:
    values = list(row)
    values[7] = bool(values[7])
    values[9] = json.loads(values[9])
    return Event(*values)


def unacknowledged(conn: sqlite3.Connection, limit: int | None = None) -> list[Event]:
    """Events not yet acknowledged by the hub, oldest first."""
    sql = f"SELECT {_COLUMNS} FROM outbox WHERE acked_at IS NULL ORDER BY device_id, seq"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [_event(r) for r in conn.execute(sql)]


def depth(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT count(*) FROM outbox WHERE acked_at IS NULL").fetchone()[0]


def acknowledge(conn: sqlite3.Connection, device_id: str, through_seq: int, when: str) -> int:
    """Mark events of ``device_id`` up to ``through_seq`` as stored by the hub."""
    cur = conn.execute(
        "UPDATE outbox SET acked_at = ? WHERE device_id = ? AND seq <= ? AND acked_at IS NULL",
        (when, device_id, through_seq),
    )
    return cur.rowcount
