"""Placing a device's events on the hub's clock.

A Raspberry Pi has no battery clock, so an event's wall time is evidence, not truth. Each
exchange with the hub gives the device a *clock anchor*: at its boot-time monotonic clock
``mono_ns`` (boot ``boot_id``) the hub's clock read ``hub_time_ns``. The monotonic clock
runs steadily within one boot, so an event of that boot happened at::

    anchor.hub_time_ns + (event.mono_ns - anchor.mono_ns)

using the anchor of the same boot nearest to the event (the least drift). An event of a
boot the hub has no anchor for keeps its wall time. What callers may rely on:

- ``corrected_ns`` is that estimate; ``time_ns`` is the time the hub uses for the event's
  loans and for ordering: the estimate, but never later than the hub's clock when the event
  arrived (a book cannot have been lent in the future).
- ``flags`` holds ``time_in_future`` (the estimate is past receipt by more than the
  tolerance plus the anchor's round trip), ``clock_unverified`` (no anchor, and the device
  said its clock was not NTP-synchronised) and ``clock_corrected`` (the anchor puts the
  event on another calendar day than the device's wall clock did, so dates the device
  computed, like a due date, may be off).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Placement:
    corrected_ns: int
    time_ns: int
    basis: str  # "anchor" or "wall"
    flags: tuple[str, ...]


def store_anchors(conn: sqlite3.Connection, device_id: str,
                  anchors: Iterable[Mapping[str, Any]], received_at_ns: int) -> int:
    """Keep the anchors a device sent (each once); run inside the write transaction."""
    stored = 0
    for a in anchors:
        stored += conn.execute(
            "INSERT OR IGNORE INTO hub_anchors (device_id, boot_id, mono_ns, hub_time_ns,"
            " rtt_ns, received_at_ns) VALUES (?, ?, ?, ?, ?, ?)",
            (device_id, a["boot_id"], a["mono_ns"], a["hub_time_ns"], a.get("rtt_ns"),
             received_at_ns),
        ).rowcount
    return stored


def nearest_anchor(conn: sqlite3.Connection, device_id: str, boot_id: str, mono_ns: int
                   ) -> tuple[int, int, int] | None:
    """(mono_ns, hub_time_ns, rtt_ns) of the anchor of this boot nearest to ``mono_ns``."""
    below = conn.execute(
        "SELECT mono_ns, hub_time_ns, coalesce(rtt_ns, 0) FROM hub_anchors"
        " WHERE device_id = ? AND boot_id = ? AND mono_ns <= ? ORDER BY mono_ns DESC LIMIT 1",
        (device_id, boot_id, mono_ns),
    ).fetchone()
    above = conn.execute(
        "SELECT mono_ns, hub_time_ns, coalesce(rtt_ns, 0) FROM hub_anchors"
        " WHERE device_id = ? AND boot_id = ? AND mono_ns > ? ORDER BY mono_ns LIMIT 1",
        (device_id, boot_id, mono_ns),
    ).fetchone()
    candidates = [a for a in (below, above) if a is not None]
    if not candidates:
        return None
    return min(candidates, key=lambda a: abs(mono_ns - a[0]))


def place(conn: sqlite3.Connection, device_id: str, event: Mapping[str, Any],
          received_at_ns: int, tolerance_ns: int, tz: ZoneInfo) -> Placement:
    """Where on the hub's clock ``event`` happened (see the module docstring)."""
    flags: list[str] = []
    anchor = nearest_anchor(conn, device_id, event["boot_id"], event["mono_ns"])
    wall = event["wall_ns"]
    if anchor is None:
        corrected, basis, slack = wall, "wall", 0
        if not event["clock_synced"]:
            flags.append("clock_unverified")
    else:
        mono, hub_time, rtt = anchor
        corrected, basis, slack = hub_time + (event["mono_ns"] - mono), "anchor", rtt
        if _day(corrected, tz) != _day(wall, tz):
            flags.append("clock_corrected")
    if corrected > received_at_ns + tolerance_ns + slack:
        flags.append("time_in_future")
    return Placement(corrected, min(corrected, received_at_ns), basis, tuple(flags))


def _day(ns: int, tz: ZoneInfo) -> str:
    try:
        return datetime.fromtimestamp(ns / 1e9, tz).date().isoformat()
    except (OverflowError, OSError, ValueError):
        return "?"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def iso(ns: int, tz: ZoneInfo) -> str:
    """An event time as the circulation tables store it (ISO 8601 with offset, microseconds).

    Integer arithmetic throughout: a float of nanoseconds since 1970 cannot hold every
    microsecond, and two loans of one book must never seem to swap order.
    """
    moment = _EPOCH + timedelta(microseconds=ns // 1000)
    return moment.astimezone(tz).isoformat(timespec="microseconds")


def from_iso(text: str, tz: ZoneInfo) -> int:
    """Nanoseconds since the epoch of a time in the circulation tables' ISO form (a time
    without an offset is taken in the county's zone ``tz``)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return (moment - _EPOCH) // _MICROSECOND * 1000
