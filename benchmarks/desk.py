"""Benchmarks of the van desk on simulated hardware (the real MFRC522 driver on its simulator).

    python benchmarks/desk.py [--size tiny|quick|full] [--reps N]

``figures(size)`` returns figures of the shape of benchmarks/run.py:

- ``desk.sign_in`` (ms): the staff PIN checked and the desk open (scrypt N=2^14, r=8, the
  lockout row and the audit row committed), the median of the repetitions.
- ``desk.card_issued.p50``/``.p95`` (ms): a blank card laid on the reader, with the form
  already accepted, to ``card_issued``: waiting for the reader's next poll, reading the
  card, writing the number, reading it back, and the registration's durable commit (the
  patron, the encrypted ID, its event, the audit row). The baseline is
  a card with a number laid on the same reader to its patron session, measured in the same
  run; both arrive at random moments of the reader's polls (every ``card_poll_ms``).

The issue's target is human: register, write, lend three books and print a slip "all in two
minutes"; these are the machine's part of it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (str(ROOT), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

import daemon as daemon_bench  # noqa: E402  (benchmarks/daemon.py)

from drivers import iso14443a  # noqa: E402
from kiosk.daemon.simctl import card_uid  # noqa: E402
from kiosk.daemon.state import Finish  # noqa: E402
from sync import db, personal, staff  # noqa: E402
from sync.idnumbers import check_character  # noqa: E402

REPS = {"tiny": 5, "quick": 30, "full": 100}
STAFF_CARD, STAFF_PIN = "9900000009", "4826"
GIVEN = "甲乙丙丁戊己庚辛壬癸"  # names are letters, not digits


def _world(folder: Path, reps: int) -> Path:
    path, _ = daemon_bench._world(folder, 0)
    keys = personal.create_key_file(folder / "personal-data.key")
    with db.Cache.open(path) as cache, cache.transaction() as conn:
        staff.add_staff(conn, STAFF_CARD, "基准测试馆员", "van", STAFF_PIN)
        conn.execute("INSERT INTO card_ranges (id, prefix, first_number, last_number,"
                     " next_number, leased_at) VALUES (1, '4311', 100, ?, 100, '2026-11-25')",
                     (100 + reps * 20,))
    config = folder / "kiosk.toml"
    config.write_text(config.read_text(encoding="utf-8") + (
        f'[desk]\nregistration = true\nkey_file = "{keys}"\n'), encoding="utf-8")
    return config


def _id_number(n: int) -> str:
    body = f"11010519{80 + n // 300:02d}{1 + n // 28 % 12:02d}{1 + n % 28:02d}{n % 1000:03d}"
    return body + check_character(body)


def measure(folder: Path, reps: int, seed: int = 20261126) -> dict[str, list[float]]:
    from hardware.sim.mfrc522 import VirtualCard

    rng = random.Random(seed)
    kiosk = daemon_bench._InProcess(_world(folder, reps))
    assert kiosk.daemon is not None and kiosk.loop is not None
    desk = kiosk.daemon.desk
    assert desk is not None and kiosk.daemon.devices is not None
    chip = kiosk.daemon.devices.sims.card_chip
    block = kiosk.settings.hardware.card_reader.card_block
    out: dict[str, list[float]] = {"sign_in": [], "issued": [], "tap": []}

    def call(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, kiosk.loop).result(30)

    def place(card: VirtualCard) -> None:
        kiosk.on_card_worker(lambda: chip.place(card))

    def lift(card: VirtualCard) -> None:
        kiosk.on_card_worker(lambda: chip.remove(card.uid))

    try:
        kiosk.wait("tags", 0, initial=True)
        for rep in range(reps):
            # A patron's card read on the same reader: the baseline.
            number = daemon_bench.CARDS[rep % len(daemon_bench.CARDS)]
            patron = VirtualCard(card_uid(number),
                                 blocks={block: iso14443a.encode_card_number(number)})
            time.sleep(rng.uniform(0, 0.25))  # at a random moment of the reader's polls
            mark = kiosk.mark()
            placed = time.monotonic()
            place(patron)
            out["tap"].append(kiosk.wait("session_started", mark)["mono"] - placed)
            kiosk.put(Finish())
            kiosk.wait("session_ended", mark)
            lift(patron)
            # The staff card, its PIN, a form, a blank card.
            staff_card = VirtualCard(card_uid(STAFF_CARD), blocks={
                block: iso14443a.encode_card_number(STAFF_CARD)})
            mark = kiosk.mark()
            place(staff_card)
            kiosk.wait("desk", mark)
            started = time.monotonic()
            assert call(desk.enter_pin(STAFF_PIN))["ok"]
            out["sign_in"].append(time.monotonic() - started)
            lift(staff_card)
            name = "王" + GIVEN[rep % len(GIVEN)] + GIVEN[rep // len(GIVEN) % len(GIVEN)]
            form = {"name": name, "id_type": "resident_id",
                    "id_number": _id_number(rep), "village": "石门村", "consent": True}
            assert call(desk.register(form))["ok"], desk.registration
            blank = VirtualCard(bytes([0x04, 0xB0, rep >> 8, rep & 0xFF, 0x11, 0x22, 0x33]))
            time.sleep(rng.uniform(0, 0.25))
            mark = kiosk.mark()
            placed = time.monotonic()
            place(blank)
            out["issued"].append(kiosk.wait("card_issued", mark)["mono"] - placed)
            lift(blank)
            call(desk.sign_out())
    finally:
        kiosk.stop()
    return out


def figures(size: str = "quick", reps: int | None = None) -> list[dict]:
    reps = reps or REPS[size]
    with tempfile.TemporaryDirectory(prefix="kd-desk-") as tmp:
        got = measure(Path(tmp), reps)
    ms = 1000.0
    p = daemon_bench.percentile
    out = [daemon_bench.figure("desk.sign_in", statistics.median(got["sign_in"]) * ms, "ms")]
    for q in (50, 95):
        out.append(daemon_bench.figure(f"desk.card_issued.p{q}", p(got["issued"], q) * ms,
                                       "ms", p(got["tap"], q) * ms))
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(REPS), default="quick")
    parser.add_argument("--reps", type=int, help="repetitions (default by size)")
    args = parser.parse_args()
    print(json.dumps(figures(args.size, args.reps), indent=2))
