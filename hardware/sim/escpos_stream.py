"""The printer's side of ESC/POS: a byte stream in, printed lines, QR codes and cuts out.

:class:`EscPosStream` is fed bytes in any split and calls ``emit(event)`` for each thing
the paper would show (:class:`PrintedLine`, :class:`PrintedQR`, :class:`PaperCut`) and
for each request answered in turn (:class:`StatusRequest`, GS r). It models what a
Chinese-market printer does: style state (alignment, emphasis, size, Chinese mode), a line
buffer that prints on LF or when full, GB18030 two-byte codes inside FS & ... FS .. Commands
it does not model are skipped by their known lengths and counted in :attr:`skipped`;
sequences it does not know at all are counted in :attr:`unknown` and only their first two
bytes are dropped, as a printer would. Any byte string is accepted; nothing raises.

:class:`RealtimeScanner` finds DLE EOT n in the raw stream, wherever it appears (inside
other commands' data too, as Epson's reference warns), so the device can answer it at once.
It decodes the printer's input independently of the driver's encoder, so each checks the
other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass

ESC, GS, FS, DLE = 0x1B, 0x1D, 0x1C, 0x10
MISSING = "\ufffd"  # what a printer's font shows for a code it has no glyph for


@dataclass(frozen=True)
class Cell:
    """One printed character: ``columns`` is 1 (one-byte code) or 2 (two-byte code)."""

    char: str
    columns: int
    bold: bool
    width: int
    height: int


@dataclass(frozen=True)
class PrintedLine:
    """A printed line (empty for a line fed blank). ``feed_dots`` is set for ESC J."""

    cells: tuple[Cell, ...]
    align: int = 0
    feed_dots: int | None = None

    @property
    def text(self) -> str:
        return "".join(cell.char for cell in self.cells)


@dataclass(frozen=True)
class PrintedQR:
    data: bytes
    module_size: int
    error: str
    align: int

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


@dataclass(frozen=True)
class PaperCut:
    partial: bool


@dataclass(frozen=True)
class StatusRequest:
    """GS r n: answered when the printer gets to it, after everything before it."""

    n: int


Event = PrintedLine | PrintedQR | PaperCut | StatusRequest

# Commands skipped by their parameter count (after the command letter).
_ESC_FIXED = {0x20: 1, 0x24: 2, 0x25: 1, 0x2D: 1, 0x32: 0, 0x33: 1, 0x3D: 1,
              0x3F: 1, 0x47: 1, 0x4C: 0, 0x4D: 1, 0x52: 1, 0x53: 0, 0x54: 1, 0x55: 1, 0x56: 1,
              0x57: 8, 0x5C: 2, 0x63: 2, 0x65: 1, 0x70: 3, 0x72: 1, 0x74: 1, 0x75: 1, 0x76: 0,
              0x7B: 1}
_GS_FIXED = {0x24: 2, 0x2F: 1, 0x3A: 0, 0x42: 1, 0x48: 1, 0x49: 1, 0x4C: 2, 0x50: 2, 0x57: 2,
             0x5C: 2, 0x5E: 3, 0x61: 1, 0x62: 1, 0x66: 1, 0x68: 1, 0x77: 1, 0x7C: 1}
_FS_FIXED = {0x21: 1, 0x2D: 1, 0x43: 1, 0x53: 2, 0x57: 1, 0x70: 2, 0x32: 74}
_CUT_WITH_FEED = (65, 66, 97, 98, 103, 104)  # GS V m n
_QR_ERRORS = {48: "L", 49: "M", 50: "Q", 51: "H"}
_DC4_PARAMS = {1: 2, 2: 2, 7: 3, 8: 7}

class RealtimeScanner:
    """Feed it every received byte; it returns n when the byte completes DLE EOT n."""

    def __init__(self) -> None:
        self._state = 0

    @property
    def idle(self) -> bool:
        """Not in the middle of a DLE sequence."""
        return self._state == 0

    def feed(self, byte: int) -> int | None:
        if self._state == 2:
            self._state = 1 if byte == DLE else 0
            return byte
        if self._state == 1 and byte == 0x04:
            self._state = 2
        else:
            self._state = 1 if byte == DLE else 0
        return None


class EscPosStream:
    """See the module docstring. ``columns`` is how many one-byte characters fit a line."""

    def __init__(self, emit: Callable[[Event], None] | None = None, *, columns: int = 32) -> None:
        self.events: list[Event] = []
        self.emit = emit if emit is not None else self.events.append
        self.columns = columns
        self.skipped: Counter[str] = Counter()
        self.unknown: Counter[str] = Counter()
        self.missing_glyphs = 0  # codes the modelled font has no glyph for
        self.reset()

    def reset(self) -> None:
        """Power-on state, buffer empty (after an unplug, or data dropped mid-command)."""
        self._init_modes()
        self._machine = self._run()
        next(self._machine)

    def _init_modes(self) -> None:
        self.align = 0
        self.bold = False
        self.width = self.height = 1
        self.chinese = False
        self.qr_module, self.qr_error, self.qr_data = 3, "L", b""
        self._cells: list[Cell] = []

    def feed(self, data: bytes) -> None:
        for byte in data:
            self.feed_byte(byte)

    def feed_byte(self, byte: int) -> None:
        try:
            self._machine.send(byte)
        except StopIteration:  # an emit() that raised ended the machine: start afresh
            self.reset()
            self._machine.send(byte)

    # -- printing ------------------------------------------------------------------------------

    def _put(self, char: str, columns: int) -> None:
        used = sum(c.columns * c.width for c in self._cells)
        if self._cells and used + columns * self.width > self.columns:
            self._print_line()  # a full buffer prints by itself, as on the printers
        self._cells.append(Cell(char, columns, self.bold, self.width, self.height))

    def _print_line(self, feed_dots: int | None = None) -> None:
        self.emit(PrintedLine(tuple(self._cells), self.align, feed_dots))
        self._cells = []

    def _feed(self, lines: int) -> None:
        if self._cells:
            self._print_line()
            lines -= 1
        for _ in range(max(0, lines)):
            self._print_line()

    # -- the byte machine ------------------------------------------------------------------

    def _run(self) -> Generator[None, int, None]:
        pushback: list[int] = []
        while True:
            byte = pushback.pop() if pushback else (yield)
            if byte == 0x0A:
                self._print_line()
            elif byte == 0x09:
                self._put(" ", 1)
            elif byte == ESC:
                yield from self._esc()
            elif byte == GS:
                yield from self._gs()
            elif byte == FS:
                yield from self._fs()
            elif byte == DLE:
                yield from self._dle()
            elif byte < 0x20 or byte == 0x7F:
                self.skipped[f"control 0x{byte:02X}"] += 1  # CR, FF, CAN ...: no effect here
            elif byte < 0x80:
                self._put(chr(byte), 1)
            elif not self.chinese:
                self._put(bytes([byte]).decode("cp437"), 1)
            elif 0x81 <= byte <= 0xFE:
                second = yield
                if 0x30 <= second <= 0x39:  # a four-byte GB18030 code: no printer font has it
                    yield
                    yield
                    self._missing(2)
                elif 0x40 <= second <= 0xFE and second != 0x7F:
                    try:
                        self._put(bytes([byte, second]).decode("gb18030"), 2)
                    except UnicodeDecodeError:
                        self._missing(2)
                else:
                    self._missing(1)
                    pushback.append(second)
            else:
                self._missing(1)

    def _missing(self, columns: int) -> None:
        self.missing_glyphs += 1
        self._put(MISSING, columns)

    def _skip(self, count: int) -> Generator[None, int, int]:
        for _ in range(count):
            yield
        return count

    def _params(self, count: int) -> Generator[None, int, bytes]:
        out = bytearray()
        for _ in range(count):
            out.append((yield))
        return bytes(out)

    def _esc(self) -> Generator[None, int, None]:
        cmd = yield
        if cmd == 0x40:  # ESC @
            self._init_modes()
        elif cmd == 0x61:  # ESC a n
            n = (yield) % 48
            if self._cells:
                self.skipped["ESC a (not at the start of a line)"] += 1
            elif n <= 2:
                self.align = n
        elif cmd == 0x45:  # ESC E n
            self.bold = bool((yield) & 1)
        elif cmd == 0x21:  # ESC ! n: bit 3 emphasised, bit 4 double height, bit 5 double width
            n = yield
            self.bold = bool(n & 0x08)
            self.height, self.width = (2 if n & 0x10 else 1), (2 if n & 0x20 else 1)
        elif cmd == 0x64:  # ESC d n
            self._feed((yield))
        elif cmd == 0x4A:  # ESC J n: print and feed n dots
            n = yield
            if self._cells:
                self._print_line()
            self._print_line(feed_dots=n)
        elif cmd in (0x69, 0x6D):  # ESC i / ESC m: the old cut commands
            self.emit(PaperCut(partial=cmd == 0x6D))
        elif cmd == 0x2A:  # ESC * m nL nH d...: bit image, 3 bytes a column for m = 32, 33
            m, low, high = (yield), (yield), (yield)
            self.skipped["ESC *"] += 1
            yield from self._skip((low + high * 256) * (3 if m in (32, 33) else 1))
        elif cmd == 0x44:  # ESC D n1 ... NUL: tab stops
            self.skipped["ESC D"] += 1
            for _ in range(33):
                if (yield) == 0:
                    break
        elif cmd == 0x26:  # ESC & y c1 c2 [x d1 ... d(y*x)]...: user-defined characters
            y, c1, c2 = (yield), (yield), (yield)
            self.skipped["ESC &"] += 1
            for _ in range(max(0, c2 - c1 + 1)):
                yield from self._skip(y * (yield))
        elif cmd in _ESC_FIXED:
            self.skipped[f"ESC {chr(cmd)}"] += 1
            yield from self._skip(_ESC_FIXED[cmd])
        else:
            self.unknown[f"ESC 0x{cmd:02X}"] += 1

    def _gs(self) -> Generator[None, int, None]:
        cmd = yield
        if cmd == 0x21:  # GS ! n
            n = yield
            if (n >> 4) <= 7 and (n & 0x0F) <= 7:
                self.width, self.height = (n >> 4) + 1, (n & 0x0F) + 1
        elif cmd == 0x56:  # GS V m [n]
            m = yield
            if m in _CUT_WITH_FEED:
                yield
            if self._cells:
                self._print_line()
            self.emit(PaperCut(partial=m in (1, 49, 66, 98, 104)))
        elif cmd == 0x28:  # GS ( x pL pH ...
            kind, low, high = (yield), (yield), (yield)
            body = yield from self._params(low + high * 256)
            if kind == 0x6B and len(body) >= 2 and body[0] == 49:
                self._qr(body[1], body[2:])
            else:
                self.skipped[f"GS ( {chr(kind) if 32 < kind < 127 else hex(kind)}"] += 1
        elif cmd == 0x72:  # GS r n
            self.emit(StatusRequest((yield)))
        elif cmd == 0x76:  # GS v 0 m xL xH yL yH d...: raster bit image
            if (yield) != 0x30:
                self.unknown["GS v"] += 1
                return
            _m, xl, xh, yl, yh = yield from self._params(5)
            self.skipped["GS v 0"] += 1
            yield from self._skip((xl + xh * 256) * (yl + yh * 256))
        elif cmd == 0x2A:  # GS * x y d...: downloaded bit image, x * y * 8 bytes
            x, y = (yield), (yield)
            self.skipped["GS *"] += 1
            yield from self._skip(x * y * 8)
        elif cmd == 0x6B:  # GS k m ...: barcodes
            m = yield
            self.skipped["GS k"] += 1
            if m <= 6:
                for _ in range(256):
                    if (yield) == 0:
                        break
            else:
                yield from self._skip((yield))
        elif cmd == 0x38:  # GS 8 L p1 p2 p3 p4 ...: graphics with a 32-bit length
            if (yield) != 0x4C:
                self.unknown["GS 8"] += 1
                return
            p = yield from self._params(4)
            self.skipped["GS 8 L"] += 1
            yield from self._skip(int.from_bytes(p, "little"))
        elif cmd in _GS_FIXED:
            self.skipped[f"GS {chr(cmd)}"] += 1
            yield from self._skip(_GS_FIXED[cmd])
        else:
            self.unknown[f"GS 0x{cmd:02X}"] += 1

    def _qr(self, fn: int, params: bytes) -> None:
        if fn == 65:
            pass  # the model: the renderer draws model 2 whatever is chosen
        elif fn == 67 and params and 1 <= params[0] <= 16:
            self.qr_module = params[0]
        elif fn == 69 and params and params[0] in _QR_ERRORS:
            self.qr_error = _QR_ERRORS[params[0]]
        elif fn == 80 and params[:1] == b"\x30":
            self.qr_data = bytes(params[1:])
        elif fn == 81:
            if self._cells:
                self._print_line()
            if self.qr_data:
                self.emit(PrintedQR(self.qr_data, self.qr_module, self.qr_error, self.align))
        else:
            self.skipped[f"GS ( k fn {fn}"] += 1

    def _fs(self) -> Generator[None, int, None]:
        cmd = yield
        if cmd == 0x26:  # FS &
            self.chinese = True
        elif cmd == 0x2E:  # FS .
            self.chinese = False
        elif cmd == 0x28:  # FS ( x pL pH ...
            _kind, low, high = (yield), (yield), (yield)
            self.skipped["FS ("] += 1
            yield from self._skip(low + high * 256)
        elif cmd == 0x71:  # FS q n [xL xH yL yH d...]...: NV bit images
            self.skipped["FS q"] += 1
            for _ in range((yield)):
                xl, xh, yl, yh = yield from self._params(4)
                yield from self._skip((xl + xh * 256) * (yl + yh * 256) * 8)
        elif cmd in _FS_FIXED:
            self.skipped[f"FS {chr(cmd)}"] += 1
            yield from self._skip(_FS_FIXED[cmd])
        else:
            self.unknown[f"FS 0x{cmd:02X}"] += 1

    def _dle(self) -> Generator[None, int, None]:
        cmd = yield
        if cmd == 0x04:  # DLE EOT n [a]: answered by the real-time scanner already
            if (yield) in (7, 8, 18):
                yield
        elif cmd == 0x05:  # DLE ENQ n
            yield
            self.skipped["DLE ENQ"] += 1
        elif cmd == 0x14:  # DLE DC4 fn ...
            fn = yield
            self.skipped["DLE DC4"] += 1
            yield from self._skip(_DC4_PARAMS.get(fn, 2))
        else:
            self.unknown[f"DLE 0x{cmd:02X}"] += 1
