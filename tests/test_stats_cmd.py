"""``kiosk stats``: the county's daily figures, with and without the daemon running."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from kiosk.daemon.state import Finish
from tests.daemon_helpers import (
    BOOKS,
    CARDS,
    kiosk,
    running,
    settings_for,
)

BRANCH = "CN-431121-0002"


def today() -> str:
    return datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()


def put(folder, *rows: tuple[str, str, int]) -> None:
    with sqlite3.connect(folder / "kiosk.db") as conn:
        conn.executemany("INSERT INTO daily_stats (day, branch, metric, value)"
                         " VALUES (?, ?, ?, ?)", [(d, BRANCH, m, v) for d, m, v in rows])


def test_figures_per_day_totals_and_satisfaction_without_the_daemon(folder, capsys):
    old = (datetime.fromisoformat(today()) - timedelta(days=40)).date().isoformat()
    put(folder, (today(), "loans", 3), (today(), "visits", 2), (today(), "rating.5", 1),
        (today(), "rating.3", 1), (today(), "refused.checkout.patron_blocked", 1),
        (today(), "refused", 1), (old, "loans", 99))
    code, out, _ = kiosk(capsys, folder, "stats", "--json")
    data = json.loads(out)
    assert code == 0
    assert [d["day"] for d in data["days"]] == [today()]  # 40 days ago is out of range
    totals = data["totals"]
    assert (totals["loans"], totals["visits"], totals["refused"]) == (3, 2, 1)
    assert (totals["ratings"], totals["satisfaction"]) == (2, 4.0)
    code, out, _ = kiosk(capsys, folder, "stats", "--days", "60")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:4] == ["day", "visits", "sessions", "loans"]
    assert lines[-1].startswith("total") and "102" in lines[-1] and "4.00 (2)" in lines[-1]


def test_no_figures_yet_says_so(folder, capsys):
    code, out, _ = kiosk(capsys, folder, "stats")
    assert code == 0 and "No figures since" in out


def test_days_must_be_positive(folder, capsys):
    code, _, err = kiosk(capsys, folder, "stats", "--days", "0")
    assert code == 2 and "at least 1" in err


def test_through_the_daemon_loans_it_made_are_counted(folder, capsys):
    with running(settings_for(folder / "kiosk.toml")):
        code, _, _ = kiosk(capsys, folder, "circ", "checkout", "--card", CARDS[0],
                           "--item", BOOKS[0], "--item", BOOKS[1])
        assert code == 0
        code, out, _ = kiosk(capsys, folder, "stats", "--json")
    assert code == 0 and json.loads(out)["totals"]["loans"] == 2


def test_each_kiosk_session_counts_once(folder, capsys):
    with running(settings_for(folder / "kiosk.toml")) as k:
        for card in CARDS[:2]:
            mark = k.mark()
            k.tap(card)
            k.wait_for("session_started", start=mark)
            k.put(Finish())
            k.wait_for("session_ended", start=mark)
            k.lift_card()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            code, out, _ = kiosk(capsys, folder, "stats", "--json")
            if json.loads(out)["totals"]["sessions"] == 2:
                break
            time.sleep(0.1)
    assert code == 0 and json.loads(out)["totals"]["sessions"] == 2
