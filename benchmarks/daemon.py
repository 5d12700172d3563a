"""Benchmarks of the kiosk daemon on simulated hardware (the real drivers on the simulators).

    python benchmarks/daemon.py [--size tiny|quick|full] [--reps N]

``figures(size)`` returns figures of the shape of benchmarks/run.py:

- ``daemon.card_to_session.p50``/``.p95`` (ms): a card laid on the reader to the daemon's
  ``session_started`` event (target p95 < 150 ms). Includes waiting for the next poll of the
  card reader (every ``card_poll_ms``, 100 by default) and reading the number on the card.
- ``daemon.book_to_loan.p50``/``.p95`` (ms): a book laid on the pad to its loan committed
  (``loan_committed``; target p95 < 300 ms). Includes waiting for the next inventory (every
  ``tag_poll_ms``, 150), the simulated serial and RF time of the inventory and of reading the
  tag's data at 38400 baud, and the durable commit.
- ``daemon.book_to_lent.p50``/``.p95`` (ms): the same to ``lent``, i.e. once the security
  flag was written and read back (what the patron waits for).
- ``daemon.idle_rss`` (MB): resident memory of a ``kiosk run`` process, idle after start
  (target < 60 MB).
- ``daemon.start_to_ready`` (s): ``kiosk run`` started to its ``READY=1`` on
  ``$NOTIFY_SOCKET`` (the median of five starts; target < 2 s).

200 repetitions for ``full`` (``quick``: 50, to stay within its 3 minutes; ``tiny``: 10,
for the harness's own test). Each card and book arrives at a random moment (up to a quarter
of a second after the last one left), as patrons do, not in step with the readers' polls.
The daemon runs in this process for the latencies (each event carries the monotonic time it
was published), in a child process for memory and start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from drivers import iso14443a  # noqa: E402
from hardware.sim.books import book_tag, uid_for  # noqa: E402
from kiosk import config  # noqa: E402
from kiosk.daemon.app import Daemon  # noqa: E402
from kiosk.daemon.simctl import card_uid  # noqa: E402
from kiosk.daemon.state import Finish  # noqa: E402
from sync import db  # noqa: E402

REPS = {"tiny": 10, "quick": 50, "full": 200}
CARDS = [f"43110000020{n}" for n in range(1, 6)]
TARGETS = {
    "daemon.card_to_session.p95": [("value", "<", 150.0)],
    "daemon.book_to_loan.p95": [("value", "<", 300.0)],
    "daemon.idle_rss": [("value", "<", 60.0)],
    "daemon.start_to_ready": [("value", "<", 2.0)],
}


def figure(name: str, value: float, unit: str, baseline: float | None = None) -> dict:
    ratio = value / baseline if baseline else None
    return {"name": name, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio}


def percentile(samples: list[float], q: int) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _world(folder: Path, books: int) -> tuple[Path, list[str]]:
    """A cache with the benchmark's patrons and ``books`` available items; a config for it."""
    path = folder / "kiosk.db"
    barcodes = [f"5{n:07d}" for n in range(books)]
    with db.create(path) as cache, cache.transaction() as conn:
        conn.execute("INSERT INTO branches (isil, name, kind) VALUES"
                     " ('CN-431121-0002', '城东24小时城市书房', '24h-space')")
        conn.execute("INSERT INTO loan_rules (patron_type, loan_type, loan_days, max_renewals,"
                     " max_loans) VALUES ('*', '*', 30, 2, 10000)")
        conn.executemany("INSERT INTO patrons (card_number, name, patron_type) VALUES"
                         " (?, ?, 'adult')", ((c, f"读者{c[-2:]}") for c in CARDS))
        conn.executemany("INSERT INTO items (barcode, title) VALUES (?, ?)",
                         ((b, f"图书{b}") for b in barcodes))
    (folder / "kiosk.toml").write_text(
        '[device]\nid = "sim-01"\nbranch = "CN-431121-0002"\nprofile = "sim"\n'
        f'[database]\npath = "{path}"\n'
        f'[daemon]\ncontrol_socket = "{folder / "control.sock"}"\n'
        "[circulation.offline]\nmax_loans_per_patron = 100\n", encoding="utf-8")
    return path, barcodes


class _InProcess:
    """The daemon on a loop of its own thread; events collected with their publish times."""

    def __init__(self, config_path: Path) -> None:
        self.settings = config.load(config_path)
        self.events: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        self.ready = threading.Event()
        self.daemon: Daemon | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.thread.start()
        if not self.ready.wait(30):
            raise RuntimeError("the daemon did not start")

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.daemon = Daemon(self.settings, environ={})
        queue = self.daemon.bus.subscribe()

        async def collect() -> None:
            while (event := await queue.get()) is not None:
                with self.cond:
                    self.events.append(event)
                    self.cond.notify_all()

        collector = asyncio.ensure_future(collect())
        main = asyncio.ensure_future(self.daemon.main(signals=False))
        await self.daemon.wait_ready()
        self.ready.set()
        await main
        await collector

    def wait(self, kind: str, start: int, timeout: float = 10.0, **fields: Any) -> dict:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for event in self.events[start:]:
                    if event["event"] == kind and all(event.get(k) == v
                                                      for k, v in fields.items()):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"no {kind} {fields} within {timeout} s")
                self.cond.wait(left)

    def mark(self) -> int:
        with self.cond:
            return len(self.events)

    def put(self, event: object) -> None:
        assert self.loop is not None and self.daemon is not None
        self.loop.call_soon_threadsafe(self.daemon.put, event)

    def on_card_worker(self, fn: Any) -> None:
        assert self.daemon is not None
        self.daemon.workers["card_reader"].submit(fn).result(10)

    def stop(self) -> None:
        assert self.loop is not None and self.daemon is not None
        self.loop.call_soon_threadsafe(self.daemon.request_stop)
        self.thread.join(30)


def latencies(folder: Path, reps: int, seed: int = 20261125) -> dict[str, list[float]]:
    """``reps`` sessions: tap a card, lay one book on the pad, finish, clear up."""
    from hardware.sim.mfrc522 import VirtualCard

    rng = random.Random(seed)
    _, barcodes = _world(folder, reps + 10)
    kiosk = _InProcess(folder / "kiosk.toml")
    assert kiosk.daemon is not None and kiosk.daemon.devices is not None
    sims = kiosk.daemon.devices.sims
    block = kiosk.settings.hardware.card_reader.card_block
    out: dict[str, list[float]] = {"card": [], "loan": [], "lent": []}
    try:
        kiosk.wait("tags", 0, initial=True)
        for rep in range(reps):
            number = CARDS[rep % len(CARDS)]
            card = VirtualCard(card_uid(number),
                               blocks={block: iso14443a.encode_card_number(number)})
            time.sleep(rng.uniform(0, 0.25))
            mark = kiosk.mark()
            placed = time.monotonic()
            kiosk.on_card_worker(lambda card=card: sims.card_chip.place(card))
            started = kiosk.wait("session_started", mark)
            out["card"].append(started["mono"] - placed)
            barcode = barcodes[rep]
            time.sleep(rng.uniform(0, 0.25))
            placed = time.monotonic()
            sims.tag_pad.place(book_tag(barcode))
            committed = kiosk.wait("loan_committed", mark, barcode=barcode)
            out["loan"].append(committed["mono"] - placed)
            out["lent"].append(kiosk.wait("lent", mark, barcode=barcode)["mono"] - placed)
            kiosk.put(Finish())
            kiosk.wait("session_ended", mark)
            kiosk.on_card_worker(lambda card=card: sims.card_chip.remove(card.uid))
            sims.tag_pad.remove(uid_for(barcode))
            kiosk.wait("tags", mark, books=0)
    finally:
        kiosk.stop()
    return out


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def start_and_memory(folder: Path, starts: int = 5, idle_s: float = 3.0) -> tuple[float, float]:
    """(median seconds from ``kiosk run`` to READY, RSS in MB after ``idle_s`` idle)."""
    _world(folder, 10)
    notify = folder / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": str(notify)}
    times, rss = [], 0.0
    try:
        for n in range(starts):
            began = time.monotonic()
            child = subprocess.Popen(
                [sys.executable, "-m", "kiosk", "--config", str(folder / "kiosk.toml"), "run",
                 "--log-level", "WARNING"], env=env, cwd=str(ROOT),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                sock.settimeout(30)
                while b"READY=1" not in sock.recv(4096):
                    pass
                times.append(time.monotonic() - began)
                if n == starts - 1:
                    time.sleep(idle_s)
                    rss = _rss_mb(child.pid)
            finally:
                child.terminate()
                child.wait(30)
    finally:
        sock.close()
    return statistics.median(times), rss


def figures(size: str = "quick", reps: int | None = None) -> list[dict]:
    """The daemon's figures for benchmarks/run.py (targets: :data:`TARGETS`)."""
    reps = reps or REPS[size]
    with tempfile.TemporaryDirectory(prefix="kd-bench-") as tmp:
        in_process, child = Path(tmp) / "lat", Path(tmp) / "run"
        in_process.mkdir()
        child.mkdir()
        lat = latencies(in_process, reps)
        ready, rss = start_and_memory(child)
    ms = 1000.0
    out = []
    for key, name in (("card", "card_to_session"), ("loan", "book_to_loan"),
                      ("lent", "book_to_lent")):
        for q in (50, 95):
            out.append(figure(f"daemon.{name}.p{q}", percentile(lat[key], q) * ms, "ms"))
    out.append(figure("daemon.idle_rss", rss, "MB"))
    out.append(figure("daemon.start_to_ready", ready, "s"))
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(REPS), default="quick")
    parser.add_argument("--reps", type=int, help="repetitions (default by size)")
    args = parser.parse_args()
    print(json.dumps(figures(args.size, args.reps), indent=2))
