"""Benchmarks of sync with the real reference hub on loopback.

    python benchmarks/sync_bench.py --size tiny|quick|full [--out FILE]

``figures(size, workdir)`` returns figures of the shape of benchmarks/run.py:

- ``sync.push.events_per_s``: events pushed per second in batches (``SyncOptions``
  defaults: 500 per request, gzip), from a cache of 10,000 events to an acknowledged outbox;
  baseline: the same kind of events sent one POST each, in the same run. Target ratio >= 20.
  The hub acknowledges what it has stored and applies it in the background: the batched
  events are all applied (``apply_pending``, timed and printed, not a figure) before the
  baseline starts, so that applying them does not slow the baseline down.
- ``sync.push.bytes_per_event``: HTTP bytes on the wire per event (request and answer,
  headers included), batched; baseline: one POST per event.
- ``sync.bootstrap.rows_per_s``, ``sync.bootstrap.rows``, ``sync.bootstrap.seconds``: a new
  device taking the snapshot of the sample (county-size for ``full``) through the hub.
- ``sync.bootstrap.peak_rss``: peak RSS of that device's process (a child of its own, read
  with ``os.wait4``). Target < 150 MB.

(The file is not called ``sync.py``: that would hide the project's ``sync`` package from
every script in this folder.)
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sync import db, outbox  # noqa: E402
from sync.client import HubClient, encode_body  # noqa: E402
from sync.clock import Reading, SystemClock  # noqa: E402
from sync.syncer import Syncer, SyncOptions, SyncReport, unacked_events  # noqa: E402

DEVICE, TOKEN = "bench-01", "bench-01-token-0123456789"
SINGLE, SINGLE_TOKEN = "bench-02", "bench-02-token-0123456789"

SIZES = {
    "tiny": {"events": 2_000, "single": 200,
             "sample": {"patrons": 2_000, "items": 8_000, "loans": 800}},
    "quick": {"events": 10_000, "single": 1_000,
              "sample": {"patrons": 100_000, "items": 400_000, "loans": 40_000}},
    "full": {"events": 10_000, "single": 2_000, "sample": "county"},
}
TARGETS = {
    "sync.push.events_per_s": [("ratio", ">=", 20.0)],
    "sync.bootstrap.peak_rss": [("value", "<", 150.0)],
}


def figure(name: str, value: float, unit: str, baseline: float | None = None) -> dict:
    ratio = value / baseline if baseline else None
    return {"name": name, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio}


def _stock(hub_db: Path, n: int) -> tuple[list[str], list[str]]:
    """Patrons who may borrow and books on the simulated branch's shelf, from the hub's own
    sample: a van's three days touch many books, each once or twice, not five books
    hundreds of times."""
    con = sqlite3.connect(hub_db)
    try:
        cards = [r[0] for r in con.execute(
            "SELECT card_number FROM patrons p WHERE status = 'active' AND loan_count = 0"
            " AND NOT EXISTS (SELECT 1 FROM patron_blocks b WHERE b.patron_id = p.id)"
            " ORDER BY id LIMIT 500")]
        books = [r[0] for r in con.execute(
            "SELECT barcode FROM items WHERE status = 'available'"
            " AND loan_type IN ('normal', 'children', 'new_book') ORDER BY id LIMIT ?",
            (n,))]
    finally:
        con.close()
    return cards, books


def _events(cache: db.Cache, device: str, n: int, cards: list[str], books: list[str]) -> None:
    """``n`` events as a kiosk makes them: each book lent, then returned."""
    clock = SystemClock()
    with cache.transaction() as conn:
        for i in range(n):
            r = Reading(clock.wall_ns(), clock.monotonic_ns(), clock.boot_id(), True)
            book = books[(i // 2) % len(books)]
            if i % 2 == 0:
                payload = {"card": cards[(i // 2) % len(cards)], "item": book,
                           "due_date": "2026-12-25", "flags": [], "hold_id": None,
                           "station": "kiosk"}
                kind = "checkout"
            else:
                payload = {"card": None, "item": book, "route": "shelf", "to_branch": None,
                           "hold_id": None, "flags": [], "station": "kiosk"}
                kind = "checkin"
            payload["branch"] = "CN-431121-0002"
            outbox.append(conn, device_id=device, kind=kind, payload=payload, reading=r)


def push_figures(hub_url: str, hub_db: Path, work: Path, events: int,
                 single: int, apply_pending: Callable[[], object] | None = None) -> list[dict]:
    """The push figures. ``apply_pending`` (the hub store's) is called between the batched
    pushes and the baseline, outside the timings."""
    cards, books = _stock(hub_db, (events + single) // 2 + 1)
    batched_books, single_books = books[: events // 2 + 1], books[events // 2 + 1:]
    batched_db, single_db = work / "push-batched.db", work / "push-single.db"
    for path in (batched_db, single_db):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    with db.create(batched_db) as cache, HubClient(hub_url, DEVICE, TOKEN,
                                                   clock=SystemClock()) as client:
        _events(cache, DEVICE, events, cards, batched_books)
        syncer = Syncer(cache, client, options=SyncOptions())
        client.health()
        start = time.perf_counter()
        report = SyncReport()
        syncer.push(report)
        seconds = time.perf_counter() - start
        assert report.acknowledged == events, report
        rate = events / seconds
        wire = (client.bytes_sent + client.bytes_received) / events
    if apply_pending is not None:
        apply_pending()
        applied = time.perf_counter() - start
        print(f"sync: {events:,} events stored and acknowledged in {seconds:.2f} s, all"
              f" applied {applied:.2f} s after the first push", flush=True)
    with db.create(single_db) as cache, HubClient(hub_url, SINGLE, SINGLE_TOKEN,
                                                  clock=SystemClock()) as client:
        _events(cache, SINGLE, single, cards, single_books or batched_books)
        with cache.snapshot() as conn:
            todo = unacked_events(conn, SINGLE, single)
        client.health()
        sent0 = client.bytes_sent + client.bytes_received
        start = time.perf_counter()
        for e in todo:
            body = encode_body({"device_id": SINGLE, "events": [{
                k: v for k, v in e.as_dict().items() if k not in ("device_id", "acked_at")}]})
            result = client.push(body, f"{SINGLE}:{e.seq}-{e.seq}")
            with cache.transaction() as conn:
                outbox.acknowledge(conn, SINGLE, result.acked_through_seq, "now")
        single_seconds = time.perf_counter() - start
        single_wire = (client.bytes_sent + client.bytes_received - sent0) / single
    return [
        figure("sync.push.events_per_s", rate, "events/s", single / single_seconds),
        figure("sync.push.bytes_per_event", wire, "bytes", single_wire),
        figure("sync.push.events", float(events), "events"),
    ]


def bootstrap_child(db_path: str, url: str, token: str) -> None:
    """In the measured child: a new device takes the snapshot; prints rows and seconds."""
    with db.create(db_path) as cache, HubClient(url, DEVICE, token, clock=SystemClock(),
                                                timeout=(5, 120)) as client:
        start = time.perf_counter()
        report = SyncReport()
        Syncer(cache, client, options=SyncOptions()).bootstrap(report)
        seconds = time.perf_counter() - start
    print(json.dumps({"rows": report.snapshot_rows, "seconds": seconds}))


def bootstrap_figures(hub_url: str, work: Path) -> list[dict]:
    target = work / "bootstrap.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--bootstrap-child",
                             str(target), hub_url, TOKEN], stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"bootstrap child failed (exit {proc.returncode})")
    result = json.loads(out)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    return [
        figure("sync.bootstrap.rows_per_s", result["rows"] / result["seconds"], "rows/s"),
        figure("sync.bootstrap.seconds", result["seconds"], "s"),
        figure("sync.bootstrap.rows", float(result["rows"]), "rows"),
        figure("sync.bootstrap.peak_rss", usage.ru_maxrss / 1024, "MB"),
    ]


def _hub_db(path: Path, sample: str | dict) -> None:
    """A hub database holding the sample (built once; reused while it exists)."""
    from sync import sample as samples
    from sync.hub.store import SqliteHubStore

    if path.exists():
        return
    SqliteHubStore.open(path).close()
    with db.Cache.open(path) as cache:
        if isinstance(sample, dict):
            samples.load(cache, "custom", **sample)
        else:
            samples.load(cache, sample)


def figures(size: str = "quick", workdir: Path | None = None) -> list[dict]:
    """Every sync figure for ``size`` (``tiny``, ``quick``, ``full``)."""
    from sync.hub.testing import HubServer

    spec = SIZES[size]
    work = Path(workdir or tempfile.mkdtemp(prefix="sync-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    hub_db = work / f"hub-{size}.db"
    print(f"sync: building the hub's sample ({spec['sample']}) ...", flush=True)
    _hub_db(hub_db, spec["sample"])
    out: list[dict] = []
    with HubServer(hub_db, devices={DEVICE: TOKEN, SINGLE: SINGLE_TOKEN}) as hub:
        print(f"sync: bootstrapping a new device through the hub ({size}) ...", flush=True)
        out += bootstrap_figures(hub.url, work)
        print(f"sync: pushing {spec['events']:,} events, and {spec['single']:,} one by one ...",
              flush=True)
        assert hub.store is not None
        out += push_figures(hub.url, hub_db, work, spec["events"], spec["single"],
                            hub.store.apply_pending)
    for scratch in (hub_db, *work.glob("push-*.db"), *work.glob("bootstrap*.db")):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{scratch}{suffix}").unlink(missing_ok=True)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--bootstrap-child"]:
        bootstrap_child(*argv[1:4])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="quick")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    found = figures(args.size, args.workdir)
    for f in found:
        ratio = "" if f["ratio"] is None else f"  ratio {f['ratio']:.2f}"
        print(f"{f['name']:<28} {f['value']:>14,.1f} {f['unit']}{ratio}")
    if args.out:
        args.out.write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
