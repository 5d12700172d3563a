"""Benchmarks of the offline cache: checkout latency, bulk load speed and memory.

    python benchmarks/run.py --size quick|full|tiny [--out build/bench.json]

Writes a JSON list of figures ``{"name", "value", "unit", "baseline", "ratio"}``
(``baseline`` and ``ratio`` are null where there is none; ``ratio = value / baseline``) and
prints them as a table with their targets. Exit status 0 unless ``--check`` is given and a
target is missed. See docs/benchmarks.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    # Run as a script from anywhere: the repository's packages come first.
    sys.path.insert(0, str(HERE.parent))

import bulk  # noqa: E402
import daemon as daemon_bench  # noqa: E402  (benchmarks/daemon.py)
import desk as desk_bench  # noqa: E402  (benchmarks/desk.py)
import latency  # noqa: E402
import rfid  # noqa: E402
import sync_bench  # noqa: E402  (not "sync": that is the project's package)

from sync import db as sync_db  # noqa: E402

# Sample and rounds per size. quick stays well under 3 minutes on a 2-core machine;
# tiny is for the harness's own test.
SIZES = {
    "tiny": {"sample": {"size": "custom", "patrons": 2_000, "items": 8_000, "loans": 800},
             "rounds": 40},
    "quick": {"sample": {"size": "custom", "patrons": 100_000, "items": 400_000,
                         "loans": 40_000}, "rounds": 500},
    "full": {"sample": {"size": "county"}, "rounds": 2_000},
}

# name -> (what is compared, "<" or ">=", threshold)
TARGETS = {
    "checkout.p99": [("value", "<", 5.0), ("ratio", "<", 3.0)],
    "bulk_load.rows_per_s": [("ratio", ">=", 0.5)],
    "bulk_load.peak_rss": [("value", "<", 150.0)],
    "rfid.pad10.wall": [("ratio", "<", 1.3)],
    "sync.push.events_per_s": [("ratio", ">=", 20.0)],
    "sync.bootstrap.peak_rss": [("value", "<", 150.0)],
    "daemon.card_to_session.p95": [("value", "<", 150.0)],
    "daemon.book_to_loan.p95": [("value", "<", 300.0)],
    "daemon.idle_rss": [("value", "<", 60.0)],
    "daemon.start_to_ready": [("value", "<", 2.0)],
}


def figure(name: str, value: float, unit: str, baseline: float | None = None) -> dict:
    ratio = value / baseline if baseline else None
    return {"name": name, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio}


def latency_figures(lat: latency.Latencies, default: latency.Latencies) -> list[dict]:
    """``lat`` as the kiosk runs (checkpoints while idle); ``default`` with SQLite's own
    checkpoint inside commits, reported for comparison only."""
    ms = 1000.0

    def p(samples: list[float], q: int) -> float:
        return latency.percentile(samples, q) * ms

    out = []
    for op, samples in (("checkout", lat.checkout), ("checkin", lat.checkin)):
        for q in (50, 99):
            out.append(figure(f"{op}.p{q}", p(samples, q), "ms", p(lat.baseline, q)))
    out.append(figure("idle_checkpoint.p99", p(lat.checkpoints, 99), "ms"))
    out.append(figure("checkout.p99.sqlite_default_checkpoint", p(default.checkout, 99), "ms",
                      p(default.baseline, 99)))
    return out


def bulk_figures(work: Path, sample_args: dict, sqlite3_bin: str) -> tuple[list[dict], Path]:
    db = work / "sample.db"
    ours = bulk.load_in_child(db, dict(sample_args))
    rate = ours.rows / ours.seconds
    base_rate = base_seconds = None
    try:
        shell = bulk.find_shell(sqlite3_bin)
    except bulk.SqliteShellMissing as exc:
        print(f"NOTE: {exc}; its baseline is recorded as null.", file=sys.stderr)
    else:
        csvs = bulk.export_csv(db, work / "csv")
        target = work / "baseline-import.db"
        bulk.remove_db(target)
        sync_db.create(target).close()
        base_seconds = bulk.shell_import(shell, target, csvs)
        imported = bulk.count_rows(target)
        if imported != ours.rows:
            raise RuntimeError(f"sqlite3 imported {imported} rows, the sample has {ours.rows}")
        base_rate = imported / base_seconds
        bulk.remove_db(target)
        shutil.rmtree(work / "csv")
    figures = [
        figure("bulk_load.rows_per_s", rate, "rows/s", base_rate),
        figure("bulk_load.seconds", ours.seconds, "s", base_seconds),
        figure("bulk_load.rows", float(ours.rows), "rows"),
        figure("bulk_load.peak_rss", ours.peak_rss_bytes / 2**20, "MB"),
    ]
    return figures, db


def verdict(fig: dict) -> str:
    notes = []
    for what, op, limit in TARGETS.get(fig["name"], []):
        got = fig[what]
        if got is None:
            notes.append(f"{what} {op} {limit:g}: n/a")
            continue
        ok = got < limit if op == "<" else got >= limit
        notes.append(f"{what} {op} {limit:g}: {'ok' if ok else 'MISSED'}")
    return "; ".join(notes)


def missed(figures: list[dict]) -> list[str]:
    return [f["name"] for f in figures if "MISSED" in verdict(f)]


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:#.3g}"


def print_table(figures: list[dict], size: str) -> None:
    print(f"\nbenchmarks --size {size}")
    head = ("figure", "value", "unit", "baseline", "ratio", "target")
    rows = [(f["name"], _num(f["value"]), f["unit"], _num(f["baseline"]), _num(f["ratio"]),
             verdict(f)) for f in figures]
    widths = [max(len(str(r[i])) for r in (head, *rows)) for i in range(len(head))]
    for r in (head, *rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="quick")
    parser.add_argument("--out", type=Path, default=HERE.parent / "build" / "bench.json")
    parser.add_argument("--workdir", type=Path, default=HERE.parent / "build" / "bench-work",
                        help="scratch folder for the databases (put it on the disk to measure)")
    parser.add_argument("--sqlite3", default="sqlite3", metavar="PROGRAM",
                        help="the sqlite3 shell used as the bulk-load baseline")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    args = parser.parse_args(argv)
    spec = SIZES[args.size]
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"loading sample ({spec['sample']}) ...", flush=True)
    figures, db = bulk_figures(args.workdir, spec["sample"], args.sqlite3)
    print(f"timing {spec['rounds']} checkouts ...", flush=True)
    kiosk_way = latency.measure(db, args.workdir, spec["rounds"])
    print("timing the same with SQLite's default checkpointing, for comparison ...", flush=True)
    sqlite_way = latency.measure(db, args.workdir, spec["rounds"], idle_checkpoint=False)
    figures = latency_figures(kiosk_way, sqlite_way) + figures
    print("timing 10 tags on the simulated pad (38400 baud 8E1) ...", flush=True)
    figures += rfid.figures()
    print("timing sync with the reference hub on loopback ...", flush=True)
    figures += sync_bench.figures(args.size, args.workdir)
    print("timing the kiosk daemon on simulated hardware ...", flush=True)
    figures += daemon_bench.figures(args.size)
    print("timing the van desk: staff sign-in, a card written and issued ...", flush=True)
    figures += desk_bench.figures(args.size)
    if not args.keep:
        bulk.remove_db(db)
        bulk.remove_db(args.workdir / "baseline-commit.db")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print_table(figures, args.size)
    print(f"\nwritten to {args.out}")
    return 1 if args.check and missed(figures) else 0


if __name__ == "__main__":
    sys.exit(main())
