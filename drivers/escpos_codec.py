"""ESC/POS as pure code: the receipt document model, its encoder, and the status bytes.

Nothing here touches a port; the driver (:mod:`drivers.escpos`) sends what :func:`encode`
makes and reads what :func:`parse_status` reads. Byte values are those of Epson's ESC/POS
reference as implemented by the Chinese-market printers (Xprinter, GAINSCHA, Rongta, SPRT,
Zijiang) this project meets; docs/wiring-printer.md lists the sources.

What a caller may rely on:

- :func:`encode` starts every document with ``ESC @`` and then tracks the printer's state, so
  each style command is sent once, when it changes. Each item ends at the beginning of a
  line, so the cut (only accepted there) and alignment (taken at a line's start) work.
- Text is wrapped by the encoder at ``chars_per_line`` columns (divided by the character
  width): an ASCII character takes one column, every other character two, as Chinese-mode
  printers print them. Lines break at a space where one is in reach.
- Every character other than printable ASCII is sent as a two-byte code of ``encoding``
  (GB18030, GBK or GB2312) inside ``FS &`` ... ``FS .``. A character the printer cannot print
  is replaced by :data:`REPLACEMENT` (``〓``, the typesetters' mark for a missing glyph, in
  every Chinese font) and listed in :attr:`Encoded.replaced`: four-byte GB18030 codes (CJK
  extension B and later, emoji, most scripts beyond Chinese; printer fonts cover the
  two-byte GB18030/GBK area at most), characters the chosen encoding lacks, and control
  characters (which would otherwise be commands). Tabs print as a space.
- QR codes are sent as GS ( k functions 165 (model 2), 167, 169, 180 and 181 with the data as
  UTF-8, framed by blank lines for the quiet zone the symbol needs.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, field

from drivers.errors import FrameError

ESC, GS, FS, DLE, EOT = 0x1B, 0x1D, 0x1C, 0x10, 0x04
INIT = b"\x1b@"  # ESC @
LF = b"\n"
CHINESE_ON = b"\x1c&"  # FS &: two-byte (GB) characters from here
CHINESE_OFF = b"\x1c."  # FS .: back to one-byte characters
PAPER_SENSOR_STATUS = b"\x1dr\x01"  # GS r 1: answered in turn, after what came before it
REPLACEMENT = "〓"  # U+3013, GB2312 0xA1FE
ENCODINGS = ("gb18030", "gbk", "gb2312")
ALIGNMENTS = {"left": 0, "center": 1, "right": 2}
QR_ERROR_LEVELS = {"L": 48, "M": 49, "Q": 50, "H": 51}
QR_MAX_DATA = 7092 - 3  # GS ( k function 180: pL + pH * 256 <= 7092
DOTS_PER_LINE = 30  # default line spacing (1/6 inch at 180 dpi; about 3.75 mm at 203 dpi)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class Text:
    """A paragraph; ``\\n`` starts a new line. ``width``/``height`` magnify 1 to 8 times."""

    text: str
    align: str = "left"
    bold: bool = False
    width: int = 1
    height: int = 1

    def __post_init__(self) -> None:
        _check(self.align in ALIGNMENTS, f"align must be one of {sorted(ALIGNMENTS)}")
        _check(1 <= self.width <= 8 and 1 <= self.height <= 8, "width and height are 1..8")


@dataclass(frozen=True)
class QRCode:
    """A QR code (model 2) of ``data``; ``module_size`` dots a module (1..16)."""

    data: str
    module_size: int = 6
    error: str = "M"
    align: str = "center"

    def __post_init__(self) -> None:
        _check(bool(self.data), "a QR code needs data")
        _check(1 <= self.module_size <= 16, "module_size is 1..16 dots")
        _check(self.error in QR_ERROR_LEVELS, f"error must be one of {sorted(QR_ERROR_LEVELS)}")
        _check(self.align in ALIGNMENTS, f"align must be one of {sorted(ALIGNMENTS)}")
        # DLE is where real-time commands start; a printer takes DLE EOT n as a status
        # request wherever it appears, data included.
        _check("\x10" not in self.data, "QR data must not contain DLE (0x10)")
        _check(len(self.data.encode("utf-8")) <= QR_MAX_DATA,
               f"QR data is limited to {QR_MAX_DATA} bytes")


@dataclass(frozen=True)
class Rule:
    """A line of ``char`` across the paper."""

    char: str = "-"

    def __post_init__(self) -> None:
        _check(len(self.char) == 1, "a rule is made of one character")


@dataclass(frozen=True)
class Feed:
    """``lines`` blank lines (1..255)."""

    lines: int = 1

    def __post_init__(self) -> None:
        _check(1 <= self.lines <= 255, "feed 1..255 lines")


@dataclass(frozen=True)
class Cut:
    """Feed to the cutter (plus ``feed`` motion units) and cut, partially by default."""

    partial: bool = True
    feed: int = 0

    def __post_init__(self) -> None:
        _check(0 <= self.feed <= 255, "feed is 0..255")


Item = Text | QRCode | Rule | Feed | Cut


@dataclass(frozen=True)
class Encoded:
    """The bytes of a document, and the characters replaced by :data:`REPLACEMENT`."""

    data: bytes
    replaced: tuple[str, ...] = ()


# -- single commands ---------------------------------------------------------------------------

def align(name: str) -> bytes:
    """ESC a n: 0 left, 1 centre, 2 right."""
    return bytes([ESC, 0x61, ALIGNMENTS[name]])


def bold(on: bool) -> bytes:
    """ESC E n: emphasised on (1) or off (0)."""
    return bytes([ESC, 0x45, 1 if on else 0])


def char_size(width: int, height: int) -> bytes:
    """GS ! n: bits 4-7 width - 1, bits 0-3 height - 1."""
    _check(1 <= width <= 8 and 1 <= height <= 8, "width and height are 1..8")
    return bytes([GS, 0x21, (width - 1) << 4 | (height - 1)])


def feed_lines(lines: int) -> bytes:
    """ESC d n: print the line buffer and feed n lines."""
    _check(0 <= lines <= 255, "feed 0..255 lines")
    return bytes([ESC, 0x64, lines])


def cut(partial: bool = True, feed: int = 0) -> bytes:
    """GS V 66 n (partial) or GS V 65 n (full): feed to the cutting position plus n, cut."""
    return bytes([GS, 0x56, 66 if partial else 65, feed])


def status_request(n: int) -> bytes:
    """DLE EOT n: real-time status, answered at once with one byte (n = 1..4)."""
    _check(n in STATUS_BITS, "DLE EOT n is 1..4")
    return bytes([DLE, EOT, n])


def _gs_k(fn: int, payload: bytes) -> bytes:
    size = len(payload) + 2  # cn and fn count too
    return bytes([GS, 0x28, 0x6B, size & 0xFF, size >> 8, 49, fn]) + payload


def qr_code(data: bytes, module_size: int = 6, error: str = "M") -> bytes:
    """GS ( k, cn 49: functions 165 (model 2), 167 (module size), 169 (error correction),
    180 (store ``data``) and 181 (print)."""
    return (_gs_k(65, bytes([50, 0])) + _gs_k(67, bytes([module_size]))
            + _gs_k(69, bytes([QR_ERROR_LEVELS[error]])) + _gs_k(80, b"\x30" + data)
            + _gs_k(81, b"\x30"))


# -- text --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Glyph:
    char: str
    code: bytes  # one byte: ASCII; two bytes: sent inside FS & ... FS .

    @property
    def columns(self) -> int:
        return len(self.code)


def glyphs(text: str, encoding: str, replaced: list[str]) -> list[_Glyph]:
    """Each character of one line of ``text`` as the printer will get it (see module doc)."""
    out = []
    mark = _Glyph(REPLACEMENT, REPLACEMENT.encode(encoding))
    for char in unicodedata.normalize("NFC", text):
        if " " <= char <= "~":
            out.append(_Glyph(char, char.encode("ascii")))
            continue
        if char == "\t":
            out.append(_Glyph(" ", b" "))
            continue
        try:
            code = char.encode(encoding)
        except UnicodeEncodeError:
            code = b""
        if len(code) != 2 or unicodedata.category(char).startswith("C"):
            replaced.append(char)
            out.append(mark)
        else:
            out.append(_Glyph(char, code))
    return out


def wrap(line: list[_Glyph], columns: int) -> list[list[_Glyph]]:
    """Break one line into lines of at most ``columns`` columns, at a space if possible."""
    lines: list[list[_Glyph]] = []
    current: list[_Glyph] = []
    used = 0
    for glyph in line:
        if used + glyph.columns > columns and current:
            spaces = [i for i, g in enumerate(current) if g.char == " "]
            if glyph.char == " ":
                lines.append(current)
                current, used = [], 0
                continue
            # a word is carried over whole when the line keeps at least half its width
            if spaces and spaces[-1] > 0 and spaces[-1] >= len(current) // 2:
                cut_at = spaces[-1]
                lines.append(current[:cut_at])
                current = current[cut_at + 1:]
            else:
                lines.append(current)
                current = []
            used = sum(g.columns for g in current)
        current.append(glyph)
        used += glyph.columns
    lines.append(current)
    return lines


def line_bytes(line: list[_Glyph]) -> bytes:
    """One printed line: ASCII as is, runs of two-byte codes inside FS & ... FS ., then LF."""
    out = bytearray()
    chinese = False
    for glyph in line:
        wide = glyph.columns == 2
        if wide != chinese:
            out += CHINESE_ON if wide else CHINESE_OFF
            chinese = wide
        out += glyph.code
    if chinese:
        out += CHINESE_OFF
    return bytes(out + LF)


# -- documents ---------------------------------------------------------------------------------

@dataclass
class _State:
    """What the printer is set to, as far as the encoder has told it (ESC @ defaults)."""

    align: str = "left"
    bold: bool = False
    size: tuple[int, int] = (1, 1)
    out: bytearray = field(default_factory=bytearray)

    def style(self, align_to: str, bold_on: bool, size: tuple[int, int]) -> None:
        if align_to != self.align:
            self.out += align(align_to)
            self.align = align_to
        if bold_on != self.bold:
            self.out += bold(bold_on)
            self.bold = bold_on
        if size != self.size:
            self.out += char_size(*size)
            self.size = size


def encode_document(document: list[Item], *, chars_per_line: int = 32,
                    encoding: str = "gb18030") -> Encoded:
    """The bytes that print ``document``; see the module docstring for the guarantees."""
    _check(encoding in ENCODINGS, f"encoding must be one of {ENCODINGS}")
    _check(chars_per_line >= 2, "chars_per_line must be at least 2")
    state = _State(out=bytearray(INIT))
    replaced: list[str] = []
    for item in document:
        if isinstance(item, Text):
            _check(chars_per_line // item.width >= 2,
                   f"width {item.width} leaves no room for a character on the line")
            state.style(item.align, item.bold, (item.width, item.height))
            for paragraph in item.text.split("\n"):
                for line in wrap(glyphs(paragraph, encoding, replaced),
                                 chars_per_line // item.width):
                    state.out += line_bytes(line)
        elif isinstance(item, Rule):
            state.style("left", False, (1, 1))
            glyph = glyphs(item.char, encoding, replaced)[0]
            state.out += line_bytes([glyph] * (chars_per_line // glyph.columns))
        elif isinstance(item, QRCode):
            state.style(item.align, state.bold, state.size)
            # The symbol needs a quiet zone of 4 modules above and below.
            quiet = feed_lines(math.ceil(4 * item.module_size / DOTS_PER_LINE))
            state.out += quiet + qr_code(item.data.encode("utf-8"), item.module_size,
                                         item.error) + quiet
        elif isinstance(item, Feed):
            state.out += feed_lines(item.lines)
        elif isinstance(item, Cut):
            state.out += cut(item.partial, item.feed)
        else:
            raise TypeError(f"not a receipt item: {item!r}")
    return Encoded(bytes(state.out), tuple(replaced))


def encode(document: list[Item], *, chars_per_line: int = 32,
           encoding: str = "gb18030") -> bytes:
    """The bytes of ``document``; :func:`encode_document` also says what was replaced."""
    return encode_document(document, chars_per_line=chars_per_line, encoding=encoding).data


# -- real-time status (DLE EOT n) --------------------------------------------------------------

# Every DLE EOT answer has bits 1 and 4 set and bits 0 and 7 clear (Epson: "fixed").
FIXED_MASK, FIXED_VALUE = 0x93, 0x12
STATUS_BITS: dict[int, dict[str, int]] = {
    1: {"drawer_pin3_high": 0x04, "offline": 0x08, "waiting_for_recovery": 0x20,
        "feed_button": 0x40},
    2: {"cover_open": 0x04, "feeding_by_button": 0x08, "paper_end_stop": 0x20, "error": 0x40},
    3: {"recoverable_error": 0x04, "cutter_error": 0x08, "unrecoverable_error": 0x20,
        "autorecoverable_error": 0x40},
    4: {"paper_near_end": 0x0C, "paper_out": 0x60},  # two sensor bits each
}


def is_status_byte(byte: int) -> bool:
    """Whether ``byte`` has the fixed bits of a DLE EOT answer."""
    return byte & FIXED_MASK == FIXED_VALUE


def is_paper_sensor_byte(byte: int) -> bool:
    """Whether ``byte`` can be the answer to GS r 1 (bits 4 and 7 fixed clear), which a
    DLE EOT answer never is (bit 4 fixed set)."""
    return byte & 0x90 == 0


def parse_status(n: int, byte: int, device: str = "ESC/POS printer") -> dict[str, bool]:
    """The named bits of the answer ``byte`` to DLE EOT ``n``. A byte whose fixed bits are
    wrong was not a status answer: :class:`FrameError` naming ``device``."""
    if n not in STATUS_BITS:
        raise ValueError(f"DLE EOT n is 1..4, not {n!r}")
    if not 0 <= byte <= 0xFF or not is_status_byte(byte):
        raise FrameError(device, f"0x{byte:02X} cannot answer DLE EOT {n}: bits 1 and 4 must "
                         "be set, bits 0 and 7 clear", received=f"{byte:02X}")
    return {name: bool(byte & mask) for name, mask in STATUS_BITS[n].items()}


@dataclass(frozen=True)
class Status:
    """A printer's state from its answers to DLE EOT 1-4 (``raw``, in that order). The
    fields are those of ``hardware.roles.PrinterStatus``."""

    online: bool
    cover_open: bool = False
    paper_near_end: bool = False
    paper_out: bool = False
    cutter_error: bool = False
    unrecoverable_error: bool = False
    autorecoverable_error: bool = False
    feed_button: bool = False
    raw: bytes = b""

    @classmethod
    def from_bytes(cls, raw: bytes, device: str = "ESC/POS printer") -> Status:
        if len(raw) != 4:
            raise FrameError(device, f"need the answers to DLE EOT 1-4, got {len(raw)} bytes")
        printer, offline, error, paper = (parse_status(n, b, device)
                                          for n, b in zip(range(1, 5), raw, strict=True))
        return cls(online=not printer["offline"], cover_open=offline["cover_open"],
                   paper_near_end=paper["paper_near_end"],
                   paper_out=paper["paper_out"] or offline["paper_end_stop"],
                   cutter_error=error["cutter_error"],
                   unrecoverable_error=error["unrecoverable_error"],
                   autorecoverable_error=error["autorecoverable_error"],
                   feed_button=printer["feed_button"], raw=bytes(raw))

    @property
    def problems(self) -> list[str]:
        """What stops printing, by name; "offline" when the printer is offline for another
        reason (its feed button held, say). Empty when it can print."""
        names = [name for name in ("cover_open", "paper_out", "cutter_error",
                                   "unrecoverable_error", "autorecoverable_error")
                 if getattr(self, name)]
        if not self.online and not names:
            names.append("offline")
        return names

    @property
    def ready(self) -> bool:
        return not self.problems
