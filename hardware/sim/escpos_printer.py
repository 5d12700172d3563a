"""A simulated ESC/POS receipt printer on a pseudo-terminal, rendering each receipt to a PNG.

It takes the same bytes as a real printer, so the kiosk and the tests run the real driver
against it::

    with EscPosSimulator(tmp_path, out_dir=tmp_path / "receipts") as sim:
        port = serial.serial_for_url(str(sim.path), baudrate=115200, timeout=1)
        EscPosPrinter(port, name="printer").print_document([Text("你好"), Cut()])
        sim.jobs[0].lines        # ["你好"]
        sim.jobs[0].wait_png()   # receipts/receipt-0001.png, 384 dots wide

What it models:

- the byte stream (:mod:`hardware.sim.escpos_stream`): text and its styles, GB18030 inside
  FS & ... FS ., QR codes, feeds, cuts; every other command skipped by its length and counted;
- DLE EOT 1-4 answered at once wherever they appear in the stream, even mid-job, with the
  status bits of the faults in force; GS r 1 answered in turn, after what came before it;
- receipts: everything printed up to a cut is one :class:`Receipt` in :attr:`jobs`, drawn
  to ``receipt-0001.png``, ... in ``out_dir`` (:mod:`hardware.sim.escpos_render`) in a
  background thread, so the printer keeps answering while it draws;
- while the printer cannot print (paper out, cover open, cutter error) it drops what it is
  sent; a receipt that loses bytes that way is marked ``lost``, and so is a job sent to a
  printer that was already stopped. Once the fault is cleared it starts afresh.

Faults (:data:`FAULTS`) are switched with :meth:`EscPosSimulator.inject`, or come on in the
middle of a job with :meth:`EscPosSimulator.inject_after` (the paper running out, the cover
opened); :meth:`~EscPosSimulator.unplug` and :meth:`~EscPosSimulator.replug` pull and restore
the cable.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from hardware.sim.escpos_stream import (
    EscPosStream,
    Event,
    PaperCut,
    PrintedLine,
    PrintedQR,
    RealtimeScanner,
    StatusRequest,
)
from hardware.sim.pty import PtyDevice

FAULTS = {
    "paper_out": "the roll is empty: DLE EOT 2 and 4 say so, the printer is offline and "
                 "drops what it is sent",
    "paper_near_end": "the near-end sensor sees little paper left (it still prints)",
    "cover_open": "the cover is open: offline, drops what it is sent",
    "cutter_error": "the cutter is jammed (an autocutter error): offline, drops what it is sent",
    "no_status": "it stops answering DLE EOT (a printer whose status line is dead)",
}
STOPPING = ("paper_out", "cover_open", "cutter_error")


@dataclass
class Receipt:
    """One job: what was printed up to a cut (or until the printer stopped: ``lost``)."""

    number: int
    items: list[PrintedLine | PrintedQR] = field(default_factory=list)
    cut: bool = False
    lost: bool = False
    png: Path | None = None
    _rendered: Future | None = field(default=None, repr=False)

    @property
    def lines(self) -> list[str]:
        """The printed text lines, blank lines left out."""
        return [item.text for item in self.items
                if isinstance(item, PrintedLine) and item.text.strip()]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def qr_codes(self) -> list[str]:
        return [item.text for item in self.items if isinstance(item, PrintedQR)]

    def wait_png(self, timeout: float = 10.0) -> Path:
        """The PNG once drawn (raises if there is none, or drawing failed)."""
        if self._rendered is None:
            raise FileNotFoundError(f"receipt {self.number} is not rendered (no out_dir?)")
        return self._rendered.result(timeout)


class EscPosSimulator:
    """An ESC/POS printer behind the stable path ``link_dir/link_name`` (see module doc).

    ``paper_dots`` and ``chars_per_line`` are the paper's (384 and 32 for 58 mm, 576 and 48
    for 80 mm). ``out_dir`` receives the PNGs (none are drawn without it). ``realtime=False``
    moves bytes as fast as the pty can.
    """

    def __init__(self, link_dir: str | Path, *, out_dir: str | Path | None = None,
                 baud: int = 115200, link_name: str = "ttyPRN0", paper_dots: int = 384,
                 chars_per_line: int = 32, realtime: bool = True) -> None:
        self.paper_dots = paper_dots
        self.chars_per_line = chars_per_line
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.jobs: list[Receipt] = []
        self.faults: set[str] = set()
        self.dropped_bytes = 0
        self.status_requests = 0
        self._scheduled: tuple[str, int] | None = None  # a fault due after so many lines
        self._current: Receipt | None = None
        self._dropping = False  # dropping bytes since the printer stopped
        self._held = bytearray()  # bytes received while stopped, not yet known to be lost
        self._pending: list[bytes] = []  # answers to GS r, sent after the byte that asked
        self._lock = threading.RLock()
        self._renderer = ThreadPoolExecutor(1, thread_name_prefix="receipt render")
        self._stream = EscPosStream(self._on_event, columns=chars_per_line)
        self._realtime = RealtimeScanner()
        self._pty = PtyDevice(self._on_bytes, baud=baud, bits_per_byte=10, link_dir=link_dir,
                              link_name=link_name, pace=realtime)
        self._next_number = self._first_free_number()

    # -- lifetime ------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The stable path to open (a symlink to the current /dev/pts/N while plugged)."""
        return self._pty.path

    @property
    def plugged(self) -> bool:
        return self._pty.plugged

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised inside the model; a test should find this empty."""
        return self._pty.errors

    @property
    def skipped(self) -> Counter[str]:
        """Commands received that the model skips by their length, by name."""
        return self._stream.skipped

    @property
    def unknown(self) -> Counter[str]:
        """Byte sequences it did not know at all (a real printer ignores them too)."""
        return self._stream.unknown

    def start(self) -> EscPosSimulator:
        self._fresh()
        self._pty.start()
        return self

    def stop(self) -> None:
        """Unplug for good, and wait until every receipt is drawn."""
        self._pty.stop()
        self._renderer.submit(lambda: None).result()

    def unplug(self) -> None:
        """Pull the cable: the host's open port fails and the path disappears."""
        self._pty.unplug()

    def replug(self) -> EscPosSimulator:
        """Plug back in on a new pty behind the same path (the host must reopen it)."""
        self._pty.unplug()
        self._fresh()
        self._pty.start()
        return self

    def __enter__(self) -> EscPosSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (f"<EscPosSimulator {self.path} {self.paper_dots} dots, {len(self.jobs)} "
                f"receipts, faults {sorted(self.faults) or 'none'}>")

    # -- faults --------------------------------------------------------------------------------

    def inject(self, fault: str, on: bool = True) -> None:
        """Switch ``fault`` (one of :data:`FAULTS`) on or off; it lasts until switched off."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(sorted(FAULTS))}")
        with self._lock:
            if on:
                self.faults.add(fault)
            else:
                self.faults.discard(fault)
                if self._scheduled is not None and self._scheduled[0] == fault:
                    self._scheduled = None

    def inject_after(self, fault: str, lines: int) -> None:
        """Switch ``fault`` on after ``lines`` more printed lines (a QR code counts its
        height in lines): the cover opened or the cutter jammed in the middle of a job."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(sorted(FAULTS))}")
        with self._lock:
            self._scheduled = (fault, lines)

    def paper_runs_out_after(self, lines: int) -> None:
        """The roll ends after ``lines`` more printed lines."""
        self.inject_after("paper_out", lines)

    @property
    def stopped(self) -> bool:
        """Whether the printer is offline with a fault and drops what it is sent."""
        return any(f in self.faults for f in STOPPING)

    def status_byte(self, n: int) -> int:
        """The answer to DLE EOT ``n`` now: fixed bits 0x12 plus the bits of the faults."""
        f = self.faults
        empty = "paper_out" in f
        bits = {
            1: 0x08 * self.stopped,
            2: 0x04 * ("cover_open" in f) + 0x20 * empty + 0x40 * ("cutter_error" in f),
            3: 0x08 * ("cutter_error" in f),
            # an empty roll is past the near-end sensor too
            4: 0x0C * (empty or "paper_near_end" in f) + 0x60 * empty,
        }[n]
        return 0x12 | bits

    # -- the device thread ---------------------------------------------------------------------

    def _fresh(self) -> None:
        """Power on: the buffer is empty, modes are the defaults."""
        with self._lock:
            self._stream.reset()
            self._realtime = RealtimeScanner()

    def _on_bytes(self, data: bytes, device: PtyDevice) -> None:
        for byte in data:
            n = self._realtime.feed(byte)
            with self._lock:
                if self.stopped:
                    self._hold(byte, n)
                else:
                    if self._dropping:  # back online: whatever was half received is gone
                        self._dropping = False
                        self._held.clear()
                        self._stream.reset()
                    self._stream.feed_byte(byte)
                answers, self._pending = self._pending, []
            if n in (1, 2, 3, 4):
                self.status_requests += 1
                if "no_status" not in self.faults:
                    device.send(bytes([self.status_byte(n)]))
            for answer in answers:
                device.send(answer)

    def _hold(self, byte: int, realtime: int | None) -> None:
        """A byte sent to a stopped printer: lost, unless it is a real-time request."""
        self._held.append(byte)
        if realtime is not None and self._held[-3:-1] == b"\x10\x04":
            del self._held[-3:]
        if not self._held or not self._realtime.idle:
            return
        self.dropped_bytes += len(self._held)
        self._held.clear()
        if not self._dropping:
            self._dropping = True
            if self._current is None:  # a job sent to a printer that had stopped
                self._current = Receipt(self._take_number())
            self._finish(lost=True)

    def _on_event(self, event: Event) -> None:
        """Called by the stream, under the lock, for each thing the paper would show."""
        if isinstance(event, StatusRequest):
            if event.n in (1, 49):  # GS r 1: paper sensor, bits 0-1 near end, 4 and 7 clear
                self._pending.append(bytes([0x03 * ("paper_near_end" in self.faults)]))
            return
        if isinstance(event, PaperCut):
            if self._current is not None:
                self._current.cut = True
                self._finish(lost=False)
            return
        if self._current is None:
            self._current = Receipt(self._take_number())
        self._current.items.append(event)
        if self._scheduled is not None:
            fault, left = self._scheduled
            # a QR code is at least 21 modules high, in lines of 30 dots
            left -= max(1, event.module_size * 21 // 30) if isinstance(event, PrintedQR) else 1
            self._scheduled = (fault, left)
            if left <= 0:
                self._scheduled = None
                self.faults.add(fault)

    def _finish(self, *, lost: bool) -> None:
        receipt, self._current = self._current, None
        if receipt is None:
            return
        receipt.lost = lost
        self.jobs.append(receipt)
        if self.out_dir is not None:
            receipt.png = self.out_dir / f"receipt-{receipt.number:04d}.png"
            receipt._rendered = self._renderer.submit(self._render, receipt)

    def _render(self, receipt: Receipt) -> Path:
        from hardware.sim.escpos_render import render

        return render(receipt.items, receipt.png, paper_dots=self.paper_dots,
                      chars_per_line=self.chars_per_line)

    def _take_number(self) -> int:
        number, self._next_number = self._next_number, self._next_number + 1
        return number

    def _first_free_number(self) -> int:
        """Numbering goes on after the receipts already in ``out_dir``: none is overwritten."""
        if self.out_dir is None or not self.out_dir.is_dir():
            return 1
        taken = [int(m.group(1)) for p in self.out_dir.iterdir()
                 if (m := re.fullmatch(r"receipt-(\d+)\.png", p.name))]
        return max(taken, default=0) + 1
