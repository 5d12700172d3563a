"""Virtual ISO 14443 A cards for the simulated MFRC522 (see :mod:`hardware.sim.mfrc522`).

:class:`VirtualCard` is a MIFARE Classic 1K (or any ISO 14443-3 A card) with the ISO 14443-3
states IDLE, READY, ACTIVE, HALT and the MIFARE AUTHENTICATED state, bit-level anticollision
over 4-, 7- and 10-byte UIDs and 64 blocks of 16 bytes. Authentication compares the key with
the sector trailer directly (no Crypto1; see the simulated chip's docstring).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from drivers import iso14443a as iso

TRANSPORT_TRAILER = bytes.fromhex("FFFFFFFFFFFF FF078069 FFFFFFFFFFFF")
BLOCKS_1K = 64
NAK_INVALID, NAK_TRANSMISSION = 0x4, 0x5


class State(enum.Enum):
    IDLE = "IDLE"
    READY = "READY"
    ACTIVE = "ACTIVE"
    HALT = "HALT"
    AUTHENTICATED = "AUTHENTICATED"


@dataclass(eq=False)
class VirtualCard:
    """A card in (or out of) the field. ``blocks`` not given are made up: block 0 holds the
    UID and manufacturer data, sector trailers the transport keys (FF..FF, access FF0780),
    data blocks zeros."""

    uid: bytes
    sak: int = 0x08
    atqa: bytes = b"\x04\x00"
    blocks: dict[int, bytes] = field(default_factory=dict)
    state: State = field(default=State.IDLE, init=False)
    _woken_from_halt: bool = field(default=False, init=False, repr=False)
    _level: int = field(default=1, init=False, repr=False)  # cascade level being selected
    _sector: int | None = field(default=None, init=False, repr=False)  # authenticated one
    _write_to: int | None = field(default=None, init=False, repr=False)  # WRITE step 2 due

    def __post_init__(self) -> None:
        self.uid = bytes(self.uid)
        self._levels = iso.cascade_levels(self.uid)
        if self.uid[0] == iso.CASCADE_TAG:
            raise ValueError("a UID never starts with the cascade tag 0x88")
        if len(self.atqa) != 2:
            raise ValueError("an ATQA has 2 bytes")
        head = self.uid + (bytes([iso.bcc(self.uid)]) if len(self.uid) == 4 else b"")
        head += bytes([self.sak]) + self.atqa
        defaults = {0: (head + b"LIBKIOSK-SIM")[:16]}
        for block in range(1, BLOCKS_1K):
            defaults[block] = TRANSPORT_TRAILER if iso.is_sector_trailer(block) else bytes(16)
        for block, data in self.blocks.items():
            if block not in defaults or len(data) != 16:
                raise ValueError(f"block {block} must be 0..63 with 16 bytes")
        self.blocks = {**defaults, **{b: bytes(d) for b, d in self.blocks.items()}}

    def power_off(self) -> None:
        self.state, self._woken_from_halt, self._level = State.IDLE, False, 1
        self._sector = self._write_to = None

    def _fall_back(self) -> None:
        halted = self._woken_from_halt
        self.power_off()
        if halted:
            self.state = State.HALT

    def authenticate(self, command: int, block: int, key: bytes, uid4: bytes) -> bool:
        """MFAuthent, with the key compared to the sector trailer (see the module doc)."""
        ok = self.state in (State.ACTIVE, State.AUTHENTICATED) and uid4 == self.uid[-4:]
        if ok and block < BLOCKS_1K:
            trailer = self.blocks[iso.sector_trailer(block)]
            stored = trailer[0:6] if command == iso.MF_AUTH_KEY_A else trailer[10:16]
            if key == stored and iso.access_bits_valid(trailer):
                self.state, self._sector = State.AUTHENTICATED, block // 4
                return True
        self._fall_back()
        return False

    def receive(self, data: bytes, nbits: int) -> tuple[bytes, int] | None:
        """The card's answer to a frame of ``nbits`` bits: (bytes, bits), or None (silent)."""
        if self.state in (State.IDLE, State.HALT) and nbits != iso.SHORT_FRAME_BITS:
            return None  # asleep: only REQA (IDLE) or WUPA wake a card
        if nbits == iso.SHORT_FRAME_BITS:
            command = data[0] & 0x7F
            if self.state == State.HALT and command != iso.WUPA:
                return None
            if (command == iso.REQA and self.state == State.IDLE) or (
                    command == iso.WUPA and self.state in (State.IDLE, State.HALT)):
                self._woken_from_halt = self.state == State.HALT
                self.state, self._level = State.READY, 1
                return self.atqa, 16
            self._fall_back()
            return None
        if self.state == State.READY:
            return self._anticollision(data, nbits)
        if self.state in (State.ACTIVE, State.AUTHENTICATED):
            return self._command(data, nbits)
        return None

    def _anticollision(self, data: bytes, nbits: int) -> tuple[bytes, int] | None:
        if nbits < 16 or data[0] != iso.SEL[self._level - 1]:
            self._fall_back()
            return None
        full = self._levels[self._level - 1] + bytes([iso.bcc(self._levels[self._level - 1])])
        if data[1] == iso.NVB_SELECT and nbits == 72:
            if not iso.check_crc_a(data[:9]) or data[2:7] != full:
                return None  # garbled, or another card's UID: stay READY
            last = self._level == len(self._levels)
            sak = self.sak if last else iso.SAK_CASCADE
            if last:
                self.state = State.ACTIVE
            else:
                self._level += 1
            return bytes([sak]) + iso.crc_a(bytes([sak])), 24
        known = (data[1] >> 4) * 8 + (data[1] & 0x0F) - 16
        if not 0 <= known < 40 or nbits != 16 + known:
            self._fall_back()
            return None
        if iso.to_bits(data[2:], known) != iso.to_bits(full, known):
            return None  # not this card's prefix: stay READY and silent
        rest = iso.to_bits(full)[known:]
        return iso.from_bits(rest), len(rest)

    def _command(self, data: bytes, nbits: int) -> tuple[bytes, int] | None:
        if nbits % 8 or not iso.check_crc_a(data):
            if self.state == State.AUTHENTICATED:
                return self._nak(NAK_TRANSMISSION)
            self._fall_back()
            return None
        body = data[:-2]
        if self._write_to is not None:
            block, self._write_to = self._write_to, None
            if len(body) != 16:
                return self._nak(NAK_INVALID)
            self.blocks[block] = bytes(body)
            return bytes([iso.MF_ACK]), 4
        if body == bytes([iso.HLTA, 0]):
            self.power_off()
            self.state = State.HALT
            return None
        if len(body) != 2 or body[0] not in (iso.MF_READ, iso.MF_WRITE):
            self._fall_back()
            return None
        block = body[1]
        if self.state != State.AUTHENTICATED or block >= BLOCKS_1K or block // 4 != self._sector:
            return self._nak(NAK_INVALID)
        if body[0] == iso.MF_READ:
            content = self.blocks[block]
            if iso.is_sector_trailer(block):
                content = bytes(6) + content[6:]  # key A never reads back
            return content + iso.crc_a(content), 144
        if block == 0:  # the manufacturer block is read-only on a genuine card
            return self._nak(NAK_INVALID)
        self._write_to = block
        return bytes([iso.MF_ACK]), 4

    def _nak(self, code: int) -> tuple[bytes, int]:
        self._fall_back()
        return bytes([code]), 4
