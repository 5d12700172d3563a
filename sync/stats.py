"""Daily service statistics: the figures a county reports upward (visits, loans, returns,
renewals, new cards) and refused attempts by reason, counted per day and branch."""

from __future__ import annotations

import sqlite3
from typing import Any


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


def report(conn: sqlite3.Connection, since: str) -> dict[str, Any]:
    """Every day (and branch) from ``since`` on with its figures, and the totals."""
    days: dict[tuple[str, str], dict[str, int]] = {}
    for day, branch, metric, value in conn.execute(
            "SELECT day, branch, metric, value FROM daily_stats WHERE day >= ?"
            " ORDER BY day, branch", (since,)):
        figures = days.setdefault((day, branch), {})
        figures[metric] = figures.get(metric, 0) + value
    rows = [{"day": day, "branch": branch, **_figures(figures)}
            for (day, branch), figures in days.items()]
    totals: dict[str, int] = {}
    for figures in days.values():
        for metric, value in figures.items():
            totals[metric] = totals.get(metric, 0) + value
    return {"since": since, "days": rows, "totals": _figures(totals)}


def _figures(metrics: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {name: metrics.get(name, 0) for name in COLUMNS}
    ratings = [metrics.get(key, 0) for key in RATINGS]
    count = sum(ratings)
    out["ratings"] = count
    out["satisfaction"] = (round(sum(n * c for n, c in enumerate(ratings, 1)) / count, 2)
                           if count else None)
    return out
