"""Checkout latency: the patron's wait from "decide" to "durably on disk".

Each round times three things, interleaved so that all three see the same disk weather:

- the baseline: one bare ``INSERT`` + ``COMMIT`` of a one-row table in its own WAL,
  ``synchronous=FULL`` database next to the cache (the floor any durable write pays);
- ``Circulation.checkout``: read patron, item, loan, holds, rule and calendar, decide,
  write loan + item + patron + outbox event + statistics, commit;
- ``Circulation.checkin`` of the same book, which also keeps the run going (the patron's
  loan count and the item return to where they were).

Real config defaults (``Settings().policy()`` and ``.identity()``: device ``sim-01`` at the
simulated branch, offline) and the real ``SystemClock``.

Rounds come in patron sessions of :data:`SESSION` books. As the kiosk does, the WAL is
checkpointed between sessions (untimed, but its duration is recorded), so no checkout pays
for it; with ``idle_checkpoint=False`` the cache keeps SQLite's default instead (checkpoint
inside the commit that crosses 1,000 pages), to show what that default would cost.
"""

from __future__ import annotations

import math
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from kiosk.config.settings import Settings
from sync.circulation import Circulation
from sync.clock import SystemClock
from sync.db import Cache

SESSION = 5
SQLITE_DEFAULT_AUTOCHECKPOINT = 1000


@dataclass(frozen=True)
class Latencies:
    checkout: list[float]
    checkin: list[float]
    baseline: list[float]
    checkpoints: list[float]


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def _candidates(cache: Cache, branch: str, max_fines: int, n: int) -> tuple[list, list]:
    """Patrons who may borrow today by the real clock, and books at ``branch`` that go
    straight back to its shelf on return."""
    with cache.snapshot() as conn:
        cards = [r[0] for r in conn.execute(
            "SELECT card_number FROM patrons p WHERE status = 'active'"
            " AND expires_on > date('now', '+2 days') AND fines_owed_cents <= ?"
            " AND loan_count <= 2"
            " AND NOT EXISTS (SELECT 1 FROM patron_blocks b WHERE b.patron_id = p.id)"
            " ORDER BY id LIMIT ?", (max_fines, n))]
        barcodes = [r[0] for r in conn.execute(
            "SELECT barcode FROM items i WHERE status = 'available' AND owning_branch = ?"
            " AND current_branch = ? AND loan_type IN ('normal', 'new_book', 'children')"
            " AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.item_id = i.id"
            "   AND h.status IN ('waiting', 'in_transit', 'ready'))"
            " ORDER BY id LIMIT ?", (branch, branch, n))]
    if not cards or not barcodes:
        raise RuntimeError("no patron or item fit for the checkout benchmark in the sample")
    return cards, barcodes


def _baseline_db(path: Path) -> sqlite3.Connection:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    return conn


def measure(db: Path, workdir: Path, rounds: int, warmup: int = 20,
            idle_checkpoint: bool = True) -> Latencies:
    """Time ``rounds`` checkouts, checkins and baseline commits (seconds each), after
    ``warmup`` untimed rounds. Raises RuntimeError if a checkout is refused: the figure
    would then time a refusal, not a loan."""
    settings = Settings()
    policy = settings.policy()
    if idle_checkpoint:
        cache = Cache.open(db)
    else:
        cache = Cache.open(db, wal_autocheckpoint_pages=SQLITE_DEFAULT_AUTOCHECKPOINT)
    base = _baseline_db(workdir / "baseline-commit.db")
    circ = Circulation(cache, settings.identity(), policy, SystemClock())
    cards, barcodes = _candidates(cache, settings.device.branch, policy.max_fines_cents,
                                  rounds + warmup)
    out = Latencies([], [], [], [])
    clock = time.perf_counter
    try:
        for i in range(rounds + warmup):
            if idle_checkpoint and i % SESSION == 0:
                t0 = clock()
                cache.checkpoint()
                base.execute("PRAGMA wal_checkpoint(PASSIVE)")
                if i >= warmup:
                    out.checkpoints.append(clock() - t0)
            card, barcode = cards[i % len(cards)], barcodes[i % len(barcodes)]
            t0 = clock()
            base.execute("BEGIN IMMEDIATE")
            base.execute("INSERT INTO t (v) VALUES (?)", (barcode,))
            base.execute("COMMIT")
            t1 = clock()
            lent = circ.checkout(card, barcode)
            t2 = clock()
            back = circ.checkin(barcode)
            t3 = clock()
            if not lent.allowed:
                raise RuntimeError(f"checkout {card} {barcode} refused: {lent.decision.reason}")
            if not back.decision.changes_state:
                raise RuntimeError(f"checkin {barcode} changed nothing: {back.decision.reason}")
            if i >= warmup:
                out.baseline.append(t1 - t0)
                out.checkout.append(t2 - t1)
                out.checkin.append(t3 - t2)
    finally:
        cache.close()
        base.close()
    return out
