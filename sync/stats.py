"""Daily service statistics: the figures a county reports upward (visits, loans, returns,
renewals, new cards) and refused attempts by reason, counted per day and branch."""

from __future__ import annotations

import sqlite3


def bump(conn: sqlite3.Connection, day: str, branch: str, metric: str, by: int = 1) -> None:
    conn.execute(
        "INSERT INTO daily_stats (day, branch, metric, value) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (day, branch, metric) DO UPDATE SET value = value + excluded.value",
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
