"""Power cut in the middle of circulation: a real ``kiosk circ batch`` child process is
killed with SIGKILL at random moments, again and again, on the same database.

After every kill: SQLite's integrity check passes, every loan or return the child reported
as done exists with its outbox event, and no event exists without its change (see
tests/invariants.py). 100 kills in the normal run (CI); ``make soak`` runs 2,000.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from sync import db
from tests.conftest import NOON_ISH, ManualClock, build_world
from tests.invariants import violations

KILLS = int(os.environ.get("KIOSK_CRASH_KILLS", "2000" if os.environ.get("KIOSK_SOAK") else "100"))
CARDS = [f"P{n:03d}" for n in range(30)]
BARCODES = [f"I{n:05d}" for n in range(600)]


def workload(rng: random.Random, lines: int) -> str:
    out = []
    for _ in range(lines):
        r = rng.random()
        if r < 0.5:
            out.append(f"checkout {rng.choice(CARDS)} {rng.choice(BARCODES)}")
        elif r < 0.85:
            out.append(f"checkin {rng.choice(BARCODES)}")
        elif r < 0.97:
            out.append(f"renew {rng.choice(CARDS)} {rng.choice(BARCODES)}")
        else:
            out.append(f"checkout {rng.choice(CARDS)} NEW{rng.randrange(10**6):06d}")
    return "\n".join(out) + "\n"


def run_and_kill(path, rng: random.Random) -> list[dict]:
    """Start the child, let it report a random number of results, kill it at a random
    moment, and return every result line it managed to print."""
    child = subprocess.Popen(
        [sys.executable, "-m", "kiosk", "--db", str(path), "--lang", "en", "circ", "batch"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    reported: list[dict] = []
    enough = threading.Event()
    wanted = rng.randrange(0, 40)

    def read() -> None:
        for raw in child.stdout:
            reported.append(json.loads(raw))
            if len(reported) >= wanted:
                enough.set()
        enough.set()

    def feed() -> None:
        try:
            child.stdin.write(workload(rng, 400).encode())
            child.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    threads = [threading.Thread(target=read), threading.Thread(target=feed)]
    for t in threads:
        t.start()
    enough.wait(timeout=30)
    time.sleep(rng.random() * 0.004)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    for t in threads:
        t.join(timeout=30)
    return reported


def assert_reported_results_survived(conn, reported: list[dict]) -> None:
    for result in reported:
        assert "error" not in result, result
        for event in result["events"]:
            row = conn.execute("SELECT kind FROM outbox WHERE txn_id = ?",
                               (event["txn_id"],)).fetchone()
            assert row == (event["kind"],), f"reported {event} lost"
            if event["kind"] == "checkout":
                n = conn.execute("SELECT count(*) FROM loans WHERE checkout_txn = ?",
                                 (event["txn_id"],)).fetchone()[0]
                assert n == 1, f"reported checkout {event} has no loan"
            if event["kind"] == "checkin" and result["patron"] is not None:
                n = conn.execute("SELECT count(*) FROM loans WHERE checkin_txn = ?",
                                 (event["txn_id"],)).fetchone()[0]
                assert n == 1, f"reported return {event} did not close a loan"


@pytest.mark.soak
def test_sigkill_at_random_moments_loses_nothing_reported(tmp_path):
    world = build_world(tmp_path / "kiosk.db", ManualClock(NOON_ISH))
    with world.cache.transaction() as conn:
        conn.executemany("INSERT INTO patrons (card_number, name, patron_type) VALUES (?, ?, ?)",
                         ((c, f"读者{c}", "adult") for c in CARDS))
        conn.executemany("INSERT INTO items (barcode, title) VALUES (?, ?)",
                         ((b, f"图书{b}") for b in BARCODES))
        conn.execute("UPDATE loan_rules SET max_loans = 1000")
    world.cache.close()
    seed = int(os.environ.get("KIOSK_CRASH_SEED", "20261125"))
    rng = random.Random(seed)
    total_reported = reported_events = 0
    for kill in range(KILLS):
        reported = run_and_kill(world.path, rng)
        total_reported += len(reported)
        reported_events += sum(len(r["events"]) for r in reported)
        with db.Cache.open(world.path) as cache:
            conn = cache.conn
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok", kill
            assert_reported_results_survived(conn, reported)
            problems = violations(conn)
            assert problems == [], f"kill {kill} (seed {seed}): {problems}"
    with db.Cache.open(world.path) as cache:
        events = cache.conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    # The kills must have landed mid-workload, not only before the first request.
    assert total_reported > KILLS and reported_events > KILLS // 2
    assert events >= reported_events
    print(f"{KILLS} kills, {total_reported} results reported ({reported_events} events),"
          f" {events} events in the outbox")
