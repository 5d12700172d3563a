"""Storing a pushed batch: each ``(device_id, txn_id)`` once, and how far a device's events
are stored without a gap.

Everything here runs inside the push's write transaction and only stores facts: the events
as the device recorded them, with the time the hub will use for each
(:mod:`sync.hub.timefix`). Applying them to the county's circulation is the applier's work
(:mod:`sync.hub.applier`), later.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from sync.hub import timefix
from sync.hub.config import HubConfig
from sync.hub.errors import ValidationFailed

MAX_MISSING = 100


def store_events(conn: sqlite3.Connection, cfg: HubConfig, device_id: str,
                 events: list[dict[str, Any]], received: int) -> tuple[int, int]:
    """Store the batch's new events; (stored, duplicates).

    An event already held under the same seq and txn id is a duplicate and changes nothing.
    One that reuses a seq or txn id the hub holds with another partner raises
    :class:`ValidationFailed` (``details.seq_conflicts``), after which the caller must roll
    the whole batch back.
    """
    stored = duplicates = 0
    conflicts = []
    for ev in sorted(events, key=lambda e: e["seq"]):
        # Two indexed lookups, not "txn_id = ? OR seq = ?": SQLite cannot use either index
        # for that OR and would scan every event of the device, once per event pushed.
        same = conn.execute(
            "SELECT seq, txn_id FROM hub_events WHERE device_id = ?1 AND txn_id = ?2"
            " UNION ALL SELECT seq, txn_id FROM hub_events WHERE device_id = ?1 AND seq = ?3",
            (device_id, ev["txn_id"], ev["seq"])).fetchall()
        if (ev["seq"], ev["txn_id"]) in [tuple(r) for r in same]:
            duplicates += 1
            continue
        if same:
            # The same seq with another txn (or the reverse): the device's outbox was
            # restored or copied. Nothing is guessed; the device must be looked at.
            conflicts.append({"seq": ev["seq"], "txn_id": ev["txn_id"]})
            continue
        place = timefix.place(conn, device_id, ev, received, cfg.future_tolerance_ns,
                              cfg.timezone)
        item = ev["payload"].get("item")
        conn.execute(
            "INSERT INTO hub_events (device_id, seq, txn_id, kind, boot_id, mono_ns,"
            " wall_ns, clock_synced, hlc, payload, item, received_at_ns,"
            " corrected_time_ns, event_time_ns, time_basis, time_flags, stop)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (device_id, ev["seq"], ev["txn_id"], ev["kind"], ev["boot_id"], ev["mono_ns"],
             ev["wall_ns"], int(ev["clock_synced"]), ev["hlc"],
             json.dumps(ev["payload"], ensure_ascii=False, sort_keys=True),
             item if isinstance(item, str) and item else None, received,
             place.corrected_ns, place.time_ns // 1000 * 1000, place.basis,
             ",".join(place.flags), ev.get("stop") or None))
        stored += 1
    if conflicts:
        raise ValidationFailed(
            "events reuse a seq or txn_id the hub already holds with another partner",
            details={"seq_conflicts": conflicts[:100]})
    return stored, duplicates


def advance(conn: sqlite3.Connection, device_id: str) -> int:
    """Move the device's ``stored_through_seq`` over every event now stored without a gap
    and return it (the push's ``acked_through_seq``)."""
    through = conn.execute("SELECT stored_through_seq FROM hub_devices WHERE device_id = ?",
                           (device_id,)).fetchone()[0]
    for (seq,) in conn.execute("SELECT seq FROM hub_events WHERE device_id = ? AND seq > ?"
                               " ORDER BY seq", (device_id, through)):
        if seq != through + 1:
            break
        through = seq
    conn.execute("UPDATE hub_devices SET stored_through_seq = ? WHERE device_id = ?",
                 (through, device_id))
    return through


def missing(conn: sqlite3.Connection, device_id: str, acked: int) -> list[int]:
    """The first :data:`MAX_MISSING` seqs after ``acked`` and below the device's highest
    stored seq that the hub has not received."""
    gaps: list[int] = []
    expected = acked + 1
    for (seq,) in conn.execute("SELECT seq FROM hub_events WHERE device_id = ? AND seq > ?"
                               " ORDER BY seq", (device_id, acked)):
        while expected < seq and len(gaps) < MAX_MISSING:
            gaps.append(expected)
            expected += 1
        if len(gaps) >= MAX_MISSING:
            break
        expected = seq + 1
    return gaps
