"""Daily service statistics: the figures a county reports upward (visits, loans, returns,
renewals, new cards) and refused attempts by reason, counted per day, branch and van stop.

**Active readers** (``readers``: distinct patrons who borrowed, returned, renewed or picked
up that day) are not kept in ``daily_stats``: a counter cannot tell a patron seen twice from
two patrons, and storing who was seen would keep patron identities in a table meant for
figures. They are counted when asked (:func:`readers`), from the outbox, which already holds
every circulation event with its card, its branch and its van stop, and keeps them (events
are never deleted). Nothing new about a patron is stored, and counting again gives the same
answer, so the figure can be sent to the hub as an absolute value any number of times.
Sessions that did nothing (a card shown, no loan or return) leave no event and are not
counted as active readers; entries at the door are counted as ``visits``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

COUNTY_TZ = ZoneInfo("Asia/Shanghai")
# Outbox events that name the patron (``payload.card``; a return names the borrower when
# known) and so make them an active reader of that day.
READER_KINDS = ("checkout", "checkin", "renew", "pickup")


def bump(conn: sqlite3.Connection, day: str, branch: str, metric: str, by: int = 1) -> None:
    """Count ``by`` more of ``metric`` for ``day`` at ``branch`` and the current van stop
    (:mod:`sync.stops`; '' when none), in the caller's transaction."""
    conn.execute(
        "INSERT INTO daily_stats (day, branch, stop, metric, value)"
        " VALUES (?, ?, coalesce((SELECT stop FROM van_stop WHERE id = 1), ''), ?, ?)"
        " ON CONFLICT (day, branch, stop, metric) DO UPDATE SET value = value + excluded.value",
        (day, branch, metric, by),
    )


def totals(conn: sqlite3.Connection, since: str | None = None) -> dict[str, int]:
    sql = "SELECT metric, sum(value) FROM daily_stats"
    args: tuple = ()
    if since:
        sql += " WHERE day >= ?"
        args = (since,)
    sql += " GROUP BY metric ORDER BY metric"
    return {metric: value for metric, value in conn.execute(sql, args)}


# The figures of ``kiosk stats`` and of the county's reports, in this order.
COLUMNS = ("visits", "sessions", "loans", "returns", "renewals", "pickups", "new_cards", "refused")
RATINGS = tuple(f"rating.{n}" for n in range(1, 6))


def report(conn: sqlite3.Connection, since: str, *, by: str = "day",
           tz: ZoneInfo = COUNTY_TZ) -> dict[str, Any]:
    """The figures from ``since`` on, and the totals.

    ``by="day"``: one row per (day, branch, stop) ordered by day (``stop`` None at a fixed
    branch); ``by="stop"``: one row per (branch, stop) over the whole period, with
    ``days`` (how many days it served). ``readers`` in a row counts each patron once per row;
    in the totals once over the whole period. ``tz`` is the kiosk's time zone (its days)."""
    if by not in ("day", "stop"):
        raise ValueError(f"by must be day or stop, not {by!r}")
    groups: dict[tuple[str, str, str], dict[str, int]] = {}
    served: dict[tuple[str, str, str], set[str]] = {}
    for day, branch, stop, metric, value in conn.execute(
            "SELECT day, branch, stop, metric, value FROM daily_stats WHERE day >= ?"
            " ORDER BY day, branch, stop", (since,)):
        key = (day, branch, stop) if by == "day" else ("", branch, stop)
        figures = groups.setdefault(key, {})
        figures[metric] = figures.get(metric, 0) + value
        served.setdefault(key, set()).add(day)
    start = date.fromisoformat(since)
    seen = _reader_cards(conn, start, None, tz)
    counted: dict[tuple[str, str, str], set[str]] = {}
    for (day, branch, stop), cards in seen.items():
        key = (day, branch, stop) if by == "day" else ("", branch, stop)
        counted.setdefault(key, set()).update(cards)
        groups.setdefault(key, {})
        served.setdefault(key, set()).add(day)
    rows = []
    for key in sorted(groups):
        day, branch, stop = key
        row: dict[str, Any] = {"day": day} if by == "day" else {"days": len(served[key])}
        row.update({"branch": branch, "stop": stop or None,
                    **_figures(groups[key], len(counted.get(key, ())))})
        rows.append(row)
    totals: dict[str, int] = {}
    for figures in groups.values():
        for metric, value in figures.items():
            totals[metric] = totals.get(metric, 0) + value
    everyone = set().union(*seen.values()) if seen else set()
    return {"since": since, "by": by, ("days" if by == "day" else "stops"): rows,
            "totals": _figures(totals, len(everyone))}


def day_bounds(day: date, tz: ZoneInfo) -> tuple[int, int]:
    """``[start, end)`` of ``day`` in ``tz``, in nanoseconds since the epoch."""
    start = datetime.combine(day, time(), tz)
    end = datetime.combine(day + timedelta(days=1), time(), tz)
    return int(start.timestamp()) * 10**9, int(end.timestamp()) * 10**9


def _reader_cards(conn: sqlite3.Connection, first: date, last: date | None,
                  tz: ZoneInfo) -> dict[tuple[str, str, str], set[str]]:
    """The cards of the events in :data:`READER_KINDS` from ``first`` to ``last``
    (inclusive; None: no end), by (day, branch, stop). Held in memory only."""
    lo = day_bounds(first, tz)[0]
    hi = day_bounds(last, tz)[1] if last is not None else 2**63 - 1
    marks = ",".join("?" * len(READER_KINDS))
    out: dict[tuple[str, str, str], set[str]] = {}
    for wall_ns, branch, stop, card in conn.execute(
            "SELECT wall_ns, json_extract(payload, '$.branch'), coalesce(stop, ''),"
            " json_extract(payload, '$.card') FROM outbox"
            f" WHERE kind IN ({marks}) AND wall_ns >= ? AND wall_ns < ?",
            (*READER_KINDS, lo, hi)):
        if not card or not branch:
            continue
        day = datetime.fromtimestamp(wall_ns / 1e9, tz).date().isoformat()
        out.setdefault((day, str(branch), stop), set()).add(str(card))
    return out


def readers(conn: sqlite3.Connection, day: str, tz: ZoneInfo = COUNTY_TZ
            ) -> dict[tuple[str, str], int]:
    """Active readers of ``day`` by (branch, stop) (see the module's docstring)."""
    d = date.fromisoformat(day)
    return {(branch, stop): len(cards) for (_, branch, stop), cards in
            _reader_cards(conn, d, d, tz).items()}


def day_digests(conn: sqlite3.Connection) -> dict[str, str]:
    """A digest of each day's rows in ``daily_stats``: a day whose digest differs from the
    one the hub acknowledged has changed since. Every event that can make a patron an active
    reader also counts a figure of its day, so the digest covers ``readers`` too."""
    digests: dict[str, Any] = {}
    for day, branch, stop, metric, value in conn.execute(
            "SELECT day, branch, stop, metric, value FROM daily_stats"
            " ORDER BY day, branch, stop, metric"):
        digests.setdefault(day, hashlib.sha256()).update(
            json.dumps([branch, stop, metric, value], ensure_ascii=False).encode())
    return {day: h.hexdigest()[:32] for day, h in digests.items()}


def day_figures(conn: sqlite3.Connection, day: str, tz: ZoneInfo = COUNTY_TZ
                ) -> list[dict[str, Any]]:
    """Every figure of ``day`` as absolute values (``branch``, ``stop`` ('' none),
    ``metric``, ``value``), ``readers`` included: what the hub keeps for the day."""
    rows = [{"branch": b, "stop": s, "metric": m, "value": v} for b, s, m, v in conn.execute(
        "SELECT branch, stop, metric, value FROM daily_stats WHERE day = ?"
        " ORDER BY branch, stop, metric", (day,))]
    rows += [{"branch": b, "stop": s, "metric": "readers", "value": n}
             for (b, s), n in sorted(readers(conn, day, tz).items())]
    return rows


def changed_days(current: dict[str, str], acknowledged: dict[str, str]) -> list[str]:
    """Days whose figures differ from what the hub acknowledged, oldest first."""
    return sorted(day for day, digest in current.items() if acknowledged.get(day) != digest)


def _figures(metrics: dict[str, int], readers: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {name: metrics.get(name, 0) for name in COLUMNS}
    out["readers"] = readers
    ratings = [metrics.get(key, 0) for key in RATINGS]
    count = sum(ratings)
    out["ratings"] = count
    out["satisfaction"] = (round(sum(n * c for n, c in enumerate(ratings, 1)) / count, 2)
                           if count else None)
    return out
