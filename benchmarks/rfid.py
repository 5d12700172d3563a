"""Benchmark of the book-tag path: the real FEIG driver against the simulated reader.

Ten books on the simulated pad at 38400 baud 8E1. One round is what a checkout of a pile of
books costs: an inventory, a read of each book's first 8 blocks (32 bytes, an ISO 28560-3
sized record), Write AFI 0xC2 on each and a Get System Information on each to read the AFI
back. The round's wall time is compared with the least time the same exchange could take:

    lower bound = serial bytes exchanged, both directions, x 11 bits / baud
                + the simulator's modelled RF air time for those commands

so ``ratio`` = wall / lower bound shows what the driver, the pty and Python add (target
< 1.3). The serial and RF parts are reported separately. The simulator's modelled reader
processing time is not part of the bound and shows up in the ratio.

    python benchmarks/rfid.py          # prints the figures as JSON
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import serial

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from drivers.feig import FeigReader  # noqa: E402
from hardware.sim.feig import FeigSimulator  # noqa: E402
from hardware.sim.iso15693 import VirtualTag, make_uid  # noqa: E402

BAUD = 38400
TAGS = 10
BLOCKS = 8
ON_LOAN, ON_SHELF = 0xC2, 0x07


def figure(name: str, value: float, unit: str, baseline: float | None = None) -> dict:
    """The shape benchmarks/run.py writes: ratio = value / baseline where there is one."""
    ratio = value / baseline if baseline else None
    return {"name": name, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio}


def _round(reader: FeigReader, books: dict[bytes, bytes]) -> None:
    found = reader.inventory()
    if {t.uid for t in found} != set(books):
        raise RuntimeError(f"inventory found {len(found)} of {len(books)} books")
    for tag in found:
        if reader.read_blocks(tag.uid, 0, BLOCKS) != books[tag.uid]:
            raise RuntimeError(f"book {tag.uid.hex()} read back wrong data")
    for tag in found:
        reader.write_afi(tag.uid, ON_LOAN)
    for tag in found:
        if reader.system_info(tag.uid).afi != ON_LOAN:
            raise RuntimeError(f"book {tag.uid.hex()} did not take AFI 0x{ON_LOAN:02X}")


def measure(rounds: int = 3) -> list[dict]:
    """Run ``rounds`` rounds; report the one with the median ratio, with its bounds."""
    results = []
    with tempfile.TemporaryDirectory() as tmp, FeigSimulator(Path(tmp), baud=BAUD) as sim:
        books = {}
        for n in range(TAGS):
            data = bytes((n * 32 + i) & 0xFF for i in range(BLOCKS * 4))
            tag = sim.place(VirtualTag.from_iso28560(make_uid(0x1000 + 7919 * n), data))
            books[tag.uid] = data
        port = serial.serial_for_url(str(sim.path), baudrate=BAUD,
                                     parity=serial.PARITY_EVEN, timeout=1)
        try:
            reader = FeigReader(port, timeout=2.0)
            reader.ping()  # first contact, not timed
            for _ in range(rounds):
                for tag in sim.tags:
                    tag.afi = ON_SHELF
                sim.reset_stats()
                start = time.monotonic()
                _round(reader, books)
                wall = time.monotonic() - start
                results.append((wall / sim.stats.lower_bound, wall, sim.stats))
        finally:
            port.close()
        if sim.errors:
            raise RuntimeError(f"the simulator failed: {sim.errors!r}")
    _, wall, stats = sorted(results, key=lambda r: r[0])[len(results) // 2]
    return [
        figure("rfid.pad10.wall", wall, "s", stats.lower_bound),
        figure("rfid.pad10.lower_bound", stats.lower_bound, "s"),
        figure("rfid.pad10.serial_bound", stats.serial_seconds, "s"),
        figure("rfid.pad10.rf_bound", stats.rf_seconds, "s"),
        figure("rfid.pad10.sim_processing", stats.processing_seconds, "s"),
        figure("rfid.pad10.serial_bytes", float(stats.bytes_in + stats.bytes_out), "bytes"),
        figure("rfid.pad10.commands", float(stats.commands), "commands"),
        figure("rfid.pad10.wall_spread", statistics.pstdev(r[1] for r in results), "s"),
    ]


def figures() -> list[dict]:
    """The figures for benchmarks/run.py (target: ``rfid.pad10.wall`` ratio < 1.3)."""
    return measure()


if __name__ == "__main__":
    print(json.dumps(figures(), indent=2))
