"""Power cut while syncing: a child process running the syncer (lending, returning and
syncing in a loop against the real hub) is killed with SIGKILL at random moments, again and
again, on the same cache; meanwhile another device keeps changing the hub.

After every kill: the cache passes SQLite's integrity check and its invariants; every event
the hub stored for the device is one of the device's, at its own seq, once; every event
the device marked acknowledged is at the hub; and the stored cursor is never ahead of the
data (every change the hub made up to the cursor is in the cache at that version or newer,
or held back on purpose). At the end one clean sync leaves every event at the hub exactly
once. 50 kills in the normal run (CI), 1,000 with ``KIOSK_SOAK``.

Children are forked from a ``forkserver`` (started before any thread of the test), so a
kill costs milliseconds, not an interpreter start.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import sqlite3
import time
from pathlib import Path

import pytest

from sync import db, feed_rows, feeds, maintenance, outbox
from sync.hub.testing import HubServer
from sync.syncer import Syncer, SyncOptions
from tests.conftest import NOON_ISH, ManualClock
from tests.test_sync_client import add_events, client_for, hub_txns

KILLS = int(os.environ.get("KIOSK_SYNC_KILLS", "1000" if os.environ.get("KIOSK_SOAK") else "50"))
DEVICE, TOKEN = "van-01", "van-01-token-0123456789"
OTHER, OTHER_TOKEN = "van-02", "van-02-token-0123456789"
OPTIONS = SyncOptions(retry_initial_s=0.01, retry_max_s=0.05, attempts=4, batch_size=40,
                      page_size=50, snapshot_batch_rows=150, heartbeat=False)


def child(db_path: str, url: str, seed: int) -> None:
    """Lend, return and sync for ever (until killed)."""
    from sync.circulation import Circulation, Identity
    from sync.policy import Policy

    rng = random.Random(seed)
    clock = ManualClock(NOON_ISH, boot_id=f"boot-{seed}")
    cache = db.Cache.open(db_path)
    client = client_for(url, clock, device=DEVICE, token=TOKEN)
    syncer = Syncer(cache, client, options=OPTIONS, rng=rng)
    circ = Circulation(cache, Identity(DEVICE, "CN-431121-0002"), Policy(), clock)
    while True:
        with cache.snapshot() as conn:
            cards = [r[0] for r in conn.execute(
                "SELECT card_number FROM patrons ORDER BY random() LIMIT 5")]
            items = [r[0] for r in conn.execute(
                "SELECT barcode FROM items ORDER BY random() LIMIT 10")]
        for _ in range(rng.randrange(0, 12)):
            clock.advance(rng.random() * 60)
            if items and cards and rng.random() < 0.5:
                circ.checkout(rng.choice(cards), rng.choice(items))
            elif items:
                circ.checkin(rng.choice(items))
        if rng.random() < 0.5:
            add_events(cache, rng.randrange(1, 60), clock=clock, prefix=f"C{seed}-")
        syncer.run_once()


def check_cursor_not_ahead(conn: sqlite3.Connection, hub_db: Path) -> int:
    """Every change the hub made for this device up to the stored cursor is in the cache
    (at that version or newer) or held back; returns how many changes were checked."""
    from sync.hub.changes import decode_cursor

    cursor = feeds.cursor(conn)
    if cursor is None:
        return 0
    upto, _epoch = decode_cursor(cursor)
    with sqlite3.connect(hub_db) as hub:
        latest = hub.execute(
            "SELECT feed, key, op, max(change_id) FROM hub_changes WHERE change_id <= ?"
            " AND (device_id IS NULL OR device_id = ?) GROUP BY feed, key",
            (upto, DEVICE)).fetchall()
    pending = feeds.pending(conn, DEVICE)
    for feed, key, op, version in latest:
        held = feed_rows.HANDLERS[feed].version(conn, key)
        deferred = conn.execute("SELECT 1 FROM sync_deferred WHERE feed = ? AND key = ?"
                                " AND version >= ?", (feed, key, version)).fetchone()
        if op == "delete" or pending.guards(feed, key, None):
            continue
        assert (held is not None and held >= version) or deferred, (
            f"cursor at {upto} but {feed} {key} v{version} is at {held} in the cache")
    return len(latest)


def check_events(conn: sqlite3.Connection, hub_db: Path) -> None:
    mine = {txn: seq for seq, txn in conn.execute(
        "SELECT seq, txn_id FROM outbox WHERE device_id = ?", (DEVICE,))}
    acked = {r[0] for r in conn.execute(
        "SELECT txn_id FROM outbox WHERE device_id = ? AND acked_at IS NOT NULL", (DEVICE,))}
    with sqlite3.connect(hub_db) as hub:
        stored = hub.execute("SELECT seq, txn_id FROM hub_events WHERE device_id = ?",
                             (DEVICE,)).fetchall()
    assert len({t for _, t in stored}) == len(stored), "an event stored twice"
    for seq, txn in stored:
        assert mine.get(txn) == seq, f"the hub holds {txn} at seq {seq}, not ours"
    assert acked <= {t for _, t in stored}, "acknowledged but not at the hub"


@pytest.mark.soak
def test_sigkill_while_syncing_loses_and_doubles_nothing(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.test_sync_crash", "sync.syncer", "sync.circulation"])
    # Start the fork server before the hub's threads exist in this process.
    warm = ctx.Process(target=time.sleep, args=(0,))
    warm.start()
    warm.join()
    path = tmp_path / "kiosk.db"
    db.create(path).close()
    seed = int(os.environ.get("KIOSK_CRASH_SEED", "20261126"))
    rng = random.Random(seed)
    with HubServer(tmp_path / "hub.db", sample="small",
                   devices={DEVICE: TOKEN, OTHER: OTHER_TOKEN}) as hub:
        other_cache = db.create(tmp_path / "other.db")
        other = Syncer(other_cache, client_for(hub.url, device=OTHER, token=OTHER_TOKEN),
                       options=OPTIONS)
        checked = 0
        for kill in range(KILLS):
            if kill % 5 == 0:  # the county changes meanwhile: new items, verdicts
                add_events(other_cache, rng.randrange(1, 30), device=OTHER,
                           prefix=f"O{kill}-")
                other.run_once()
            proc = ctx.Process(target=child, args=(str(path), hub.url, seed + kill))
            proc.start()
            time.sleep(rng.random() * 0.5)
            proc.kill()
            proc.join(timeout=30)
            assert proc.exitcode == -9, f"kill {kill}: child ended by itself ({proc.exitcode})"
            with db.Cache.open(path) as cache:
                conn = cache.conn
                assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                report = maintenance.check(cache)
                assert report.ok, f"kill {kill} (seed {seed}): {report.as_dict()}"
                check_events(conn, hub.db_path)
                checked += check_cursor_not_ahead(conn, hub.db_path)
        # One clean sync: everything arrives, exactly once.
        with db.Cache.open(path) as cache, client_for(hub.url, device=DEVICE,
                                                      token=TOKEN) as client:
            syncer = Syncer(cache, client, options=OPTIONS)
            for _ in range(5):
                if (r := syncer.run_once()).ok and r.queue_depth == 0:
                    break
            with cache.snapshot() as conn:
                txns = [r[0] for r in conn.execute(
                    "SELECT txn_id FROM outbox WHERE device_id = ? ORDER BY seq", (DEVICE,))]
                assert outbox.depth(conn) == 0
            assert maintenance.check(cache).ok
        assert hub_txns(hub.db_path, DEVICE) == txns
        other_cache.close()
    assert len(txns) > KILLS and checked > 0
    print(f"{KILLS} kills, {len(txns)} events at the hub once each, {checked} changes checked"
          " against the cursor")
