"""FEIG "ISO Host" protocol frames: CRC, building and parsing, as pure code.

FEIG OBID i-scan and ID ISC readers (ID ISC.MR101, MR102, LRM2500, CPR readers in ISO host
mode) frame every request and reply the same way; this module knows those frames and nothing
about ports, so it is tested with byte strings alone (the idea of pyserial's
``threaded.Packetizer``).

Standard frame (up to 255 bytes)::

    request: LEN COM-ADR CMD [DATA] CRC-LSB CRC-MSB
    reply:   LEN COM-ADR CMD STATUS [DATA] CRC-LSB CRC-MSB

Advanced frame (for long frames; a reader answers an advanced request with an advanced reply,
and a standard request with an advanced reply when the reply exceeds 255 bytes)::

    request: 0x02 ALEN-MSB ALEN-LSB COM-ADR CMD [DATA] CRC-LSB CRC-MSB
    reply:   0x02 ALEN-MSB ALEN-LSB COM-ADR CMD STATUS [DATA] CRC-LSB CRC-MSB

LEN and ALEN count every byte of the frame, themselves and the CRC included. The CRC is
CRC-16/MCRF4XX: polynomial x^16 + x^12 + x^5 + 1 processed LSB first (0x8408), preset 0xFFFF,
no final inversion, sent low byte first. A standard frame's LEN is at least 5, so a first byte
of 0x02 always starts an advanced frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from drivers.errors import FrameError

STX = 0x02
BROADCAST = 0xFF  # every reader answers COM-ADR 255, whatever its bus address
MAX_STANDARD = 255
MAX_ADVANCED = 0xFFFF


class Command(IntEnum):
    """Control bytes (commands) this project speaks."""

    BAUD_RATE_DETECTION = 0x52
    GET_SOFTWARE_VERSION = 0x65
    RF_RESET = 0x69
    RF_ON_OFF = 0x6A
    ISO_HOST = 0xB0  # ISO 15693 mandatory and optional commands
    ISO_CUSTOM = 0xB1  # ISO 15693 custom and proprietary commands (manufacturer code first)


class Status(IntEnum):
    """Reader status bytes (the manuals' "Index of Status Bytes")."""

    OK = 0x00
    NO_TRANSPONDER = 0x01
    DATA_FALSE = 0x02
    WRITE_ERROR = 0x03
    ADDRESS_ERROR = 0x04
    WRONG_TRANSPONDER_TYPE = 0x05
    UNKNOWN_COMMAND = 0x80
    LENGTH_ERROR = 0x81
    COMMAND_NOT_AVAILABLE = 0x82
    RF_COMMUNICATION_ERROR = 0x83
    RF_WARNING = 0x84
    DATA_BUFFER_OVERFLOW = 0x93
    MORE_DATA = 0x94
    ISO_ERROR = 0x95  # the first data byte is the ISO 15693 error code from the tag


STATUS_TEXT = {
    0x00: "OK",
    0x01: "no transponder in the field",
    0x02: "data false (CRC error in the tag's answer)",
    0x03: "write error",
    0x04: "address error (block outside the tag's memory)",
    0x05: "wrong transponder type for this command",
    0x08: "authentication error",
    0x0E: "general error",
    0x10: "EEPROM failure",
    0x11: "parameter range error",
    0x13: "login request",
    0x14: "login error",
    0x15: "read protect",
    0x16: "write protect",
    0x80: "unknown command",
    0x81: "length error",
    0x82: "command not available",
    0x83: "RF communication error",
    0x84: "RF warning (antenna or field problem)",
    0x93: "data buffer overflow",
    0x94: "more data",
    0x95: "ISO 15693 error",
}

ISO_ERROR_TEXT = {
    0x01: "command not supported",
    0x02: "command not recognised",
    0x03: "option not supported",
    0x0F: "unknown error",
    0x10: "block not available",
    0x11: "block already locked",
    0x12: "block locked, content cannot be changed",
    0x13: "block not successfully programmed",
    0x14: "block not successfully locked",
}


def status_text(status: int) -> str:
    return STATUS_TEXT.get(status, "unknown status")


def iso_error_text(code: int) -> str:
    return ISO_ERROR_TEXT.get(code, "manufacturer-specific error")


def crc16(data: bytes | bytearray | memoryview, crc: int = 0xFFFF) -> int:
    """CRC-16/MCRF4XX of ``data`` (FEIG's frame CRC); check value for b"123456789" is 0x6F91."""
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


@dataclass(frozen=True)
class Frame:
    """One frame as it travels. ``status`` is None for requests (host to reader)."""

    address: int
    command: int
    data: bytes = b""
    status: int | None = None
    advanced: bool = False

    @property
    def is_reply(self) -> bool:
        return self.status is not None


def build_frame(address: int, command: int, data: bytes = b"", *, status: int | None = None,
                advanced: bool | None = None) -> bytes:
    """The bytes of one frame. ``status`` makes it a reply. ``advanced=None`` uses the
    standard frame unless the frame would exceed 255 bytes, as the readers do."""
    for name, value in (("address", address), ("command", command)):
        if not 0 <= value <= 0xFF:
            raise ValueError(f"{name} must be a byte, got {value!r}")
    body = bytes([address, command]) + (b"" if status is None else bytes([status])) + data
    if advanced is None:
        advanced = len(body) + 3 > MAX_STANDARD
    if advanced:
        total = len(body) + 5
        if total > MAX_ADVANCED:
            raise ValueError(f"frame of {total} bytes is too long even for the advanced frame")
        head = bytes([STX, total >> 8, total & 0xFF])
    else:
        total = len(body) + 3
        if total > MAX_STANDARD:
            raise ValueError(f"frame of {total} bytes needs the advanced frame")
        head = bytes([total])
    frame = head + body
    crc = crc16(frame)
    return frame + bytes([crc & 0xFF, crc >> 8])


def encode(frame: Frame) -> bytes:
    return build_frame(frame.address, frame.command, frame.data, status=frame.status,
                       advanced=frame.advanced)


class FrameParser:
    """Turns a byte stream into frames; feed it bytes as they arrive, in any split.

    ``kind`` is ``"reply"`` (the host's side: frames carry a STATUS byte) or ``"request"``
    (the reader's side). ``feed()`` returns the frames completed by the new bytes. A frame
    that cannot be right (impossible length, bad CRC) raises :class:`FrameError` naming
    ``device``; the parser then drops everything it held, so the caller resynchronises by
    flushing its input as well. ``needed()`` says how many more bytes would let the parser
    make progress, so a reader of a port can ask for exactly that many.
    """

    def __init__(self, kind: str = "reply", device: str = "FEIG reader") -> None:
        if kind not in ("reply", "request"):
            raise ValueError(f"kind must be 'reply' or 'request', not {kind!r}")
        self.replies = kind == "reply"
        self.device = device
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held of a frame not yet complete."""
        return len(self._buf)

    def reset(self) -> None:
        self._buf.clear()

    def _min_len(self, advanced: bool) -> int:
        # length field(s), COM-ADR, CMD, STATUS (replies only), CRC
        return (3 if advanced else 1) + 2 + (1 if self.replies else 0) + 2

    def _expected(self) -> int | None:
        """Length of the frame at the head of the buffer, if known yet."""
        buf = self._buf
        if not buf:
            return None
        if buf[0] == STX:
            if len(buf) < 3:
                return None
            total = buf[1] << 8 | buf[2]
            if total < self._min_len(True):
                self._fail(f"advanced frame length {total} is impossible")
            return total
        if buf[0] < self._min_len(False):
            self._fail(f"frame length {buf[0]} is impossible")
        return buf[0]

    def needed(self) -> int:
        expected = self._expected()
        if expected is None:
            return 3 - len(self._buf) if self._buf else 1
        return max(1, expected - len(self._buf))

    def _fail(self, detail: str) -> None:
        held = bytes(self._buf[:64]).hex(" ")
        self._buf.clear()
        raise FrameError(self.device, detail, received=held)

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames = []
        while True:
            expected = self._expected()
            if expected is None or len(self._buf) < expected:
                return frames
            raw = bytes(self._buf[:expected])
            if crc16(raw) != 0:  # a frame followed by its own CRC (LSB first) leaves 0
                self._fail(f"bad CRC in a {expected}-byte frame")
            del self._buf[:expected]
            frames.append(self._decode(raw))

    def _decode(self, raw: bytes) -> Frame:
        advanced = raw[0] == STX
        body = raw[3 if advanced else 1:-2]
        if self.replies:
            return Frame(body[0], body[1], bytes(body[3:]), status=body[2], advanced=advanced)
        return Frame(body[0], body[1], bytes(body[2:]), advanced=advanced)


def parse(raw: bytes, kind: str = "reply", device: str = "FEIG reader") -> Frame:
    """Exactly one frame from ``raw``; anything else raises :class:`FrameError`."""
    parser = FrameParser(kind, device)
    frames = parser.feed(raw)
    if len(frames) != 1 or parser.pending:
        raise FrameError(device, f"expected one whole frame, got {len(frames)} and "
                                 f"{parser.pending} bytes over", received=raw[:64].hex(" "))
    return frames[0]
