"""Virtual ISO/IEC 15693 tags and the air time of the commands a reader sends them.

A :class:`VirtualTag` holds what a library book tag holds: an 8-byte UID (``E0 04 01 ...`` for
NXP ICODE SLIX, most significant byte first), DSFID, AFI, EAS bit, memory in blocks of 4 bytes
(28 user blocks on an ICODE SLIX) and lock bits. Its methods answer as the tag would, with an
ISO 15693 error code where the tag refuses.

The air-time model says how long an exchange keeps the field busy, so a simulated reader can
take as long as a real one. High data rate throughout, which is what readers use for shelf and
pad work. Numbers (fc = 13.56 MHz), from ISO/IEC 15693-2 as summarised in the Wikipedia
article "ISO/IEC 15693" (bit coding, rates, tag SOF/EOF) and recalled from ISO/IEC 15693-3
(t1, t2, t3 timings; not re-checked against a copy of the standard here):

=============================  ==============  ============================================
reader -> tag, 1 out of 4      26.48 kbit/s    2 bits per 75.52 us symbol: 302.08 us a byte;
                                               SOF 75.52 us, EOF 37.76 us
tag -> reader, one subcarrier  26.48 kbit/s    fc/512 a bit: 302.08 us a byte; SOF and EOF
(423.75 kHz), high rate                        151.04 us each (56.64 us unmodulated, 24
                                               pulses = 56.64 us, one bit = 37.76 us)
t1 (tag answers after)         4352/fc         320.94 us
t2 (reader speaks again after) 4192/fc         309.14 us
t3 (empty inventory slot)      4384/fc + SOF   323.30 us + 75.52 us before the next EOF
EEPROM programming             5 ms            assumed per written block / AFI / EAS bit
                                               (option flag 0: the tag answers when done)
=============================  ==============  ============================================

Inventory uses 16 slots: a tag answers in the slot given by the 4 UID bits just above the
mask; slots where two or more tags answer collide, and the reader runs a further 16-slot round
for each collided slot with the mask extended by those 4 bits (ISO/IEC 15693-3 annex,
"anticollision"), until every tag has answered alone. Frames include their 2 CRC bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FC = 13.56e6
VCD_SOF = 75.52e-6
VCD_EOF = 37.76e-6
VCD_BYTE = 4 * 1024 / FC  # four 75.52 us symbols
VICC_SOF = VICC_EOF = 2048 / FC  # 151.04 us
VICC_BYTE = 8 * 512 / FC
T1 = 4352 / FC
T2 = 4192 / FC
T3_EMPTY = 4384 / FC + VCD_SOF
WRITE_TIME = 5e-3

INVENTORY_RESPONSE = 12  # flags, DSFID, UID (8), CRC (2)

# ISO 15693 error codes a tag answers with
NOT_SUPPORTED = 0x01
BLOCK_NOT_AVAILABLE = 0x10
BLOCK_LOCKED = 0x12
NOT_PROGRAMMED = 0x13

SLIX_BLOCKS = 28


def vcd_frame(n_bytes: int) -> float:
    """Seconds a reader request of ``n_bytes`` (CRC included) occupies the field."""
    return VCD_SOF + n_bytes * VCD_BYTE + VCD_EOF


def vicc_frame(n_bytes: int) -> float:
    """Seconds a tag response of ``n_bytes`` (CRC included) occupies the field."""
    return VICC_SOF + n_bytes * VICC_BYTE + VICC_EOF


def exchange_time(request: int, response: int, *, write: bool = False) -> float:
    """One request answered by one tag, up to when the reader may speak again."""
    return vcd_frame(request) + T1 + (WRITE_TIME if write else 0.0) + vicc_frame(response) + T2


def silent_time(request: int) -> float:
    """One request that no tag answers (the addressed tag is gone)."""
    return vcd_frame(request) + T3_EMPTY


@dataclass(frozen=True)
class InventoryRun:
    """What an anticollision run cost: air time, 16-slot rounds, collided slots."""

    seconds: float
    rounds: int
    collisions: int
    empty_slots: int


def inventory_time(uids: list[bytes], *, afi: bool = False) -> InventoryRun:
    """Air time of a full 16-slot anticollision over the tags ``uids`` (those answering)."""
    values = [int.from_bytes(u, "big") for u in uids]
    seconds, rounds, collisions, empty = 0.0, 0, 0, 0
    masks = [(0, 0)]  # (mask length in bits, mask value)
    while masks:
        length, mask = masks.pop(0)
        present = [v for v in values if v & ((1 << length) - 1) == mask]
        request = 2 + (1 if afi else 0) + 1 + (length + 7) // 8 + 2
        seconds += vcd_frame(request)
        rounds += 1
        for slot in range(16):
            if slot:
                seconds += VCD_EOF  # the reader's EOF opens the next slot
            answering = [v for v in present if (v >> length) & 0xF == slot]
            if not answering:
                seconds += T3_EMPTY
                empty += 1
                continue
            seconds += T1 + vicc_frame(INVENTORY_RESPONSE) + T2
            if len(answering) > 1:
                collisions += 1
                if length + 4 <= 64:
                    masks.append((length + 4, mask | slot << length))
    return InventoryRun(seconds, rounds, collisions, empty)


def afi_matches(request_afi: int, tag_afi: int) -> bool:
    """ISO 15693 AFI selection: 0x00 selects all; a zero nibble in the request is a wildcard
    for that nibble (family or sub-family)."""
    if request_afi == 0:
        return True
    family, sub = request_afi >> 4, request_afi & 0xF
    return (family in (0, tag_afi >> 4)) and (sub in (0, tag_afi & 0xF))


def make_uid(serial: int, manufacturer: int = 0x04, chip: int = 0x01) -> bytes:
    """An 8-byte UID, most significant byte first: E0, manufacturer (0x04 NXP), chip family
    (0x01 ICODE SLI/SLIX), then 40 bits of serial number."""
    if not 0 <= serial < 1 << 40:
        raise ValueError("serial must fit 40 bits")
    return bytes([0xE0, manufacturer, chip]) + serial.to_bytes(5, "big")


@dataclass(eq=False)
class VirtualTag:
    """One ISO 15693 tag. ``memory`` is in the tag's byte order, a whole number of blocks."""

    uid: bytes
    memory: bytearray
    afi: int = 0x07
    dsfid: int = 0x00
    block_size: int = 4
    eas: bool = False
    ic_ref: int = 0x01
    locked_blocks: set[int] = field(default_factory=set)
    afi_locked: bool = False
    quiet: bool = False  # after Stay Quiet, until RF reset or Reset to Ready

    def __post_init__(self) -> None:
        self.uid = bytes(self.uid)
        self.memory = bytearray(self.memory)
        if len(self.uid) != 8 or self.uid[0] != 0xE0:
            raise ValueError(f"an ISO 15693 UID is 8 bytes starting E0, got {self.uid.hex()}")
        if self.block_size < 1 or not self.memory or len(self.memory) % self.block_size:
            raise ValueError(f"memory of {len(self.memory)} bytes is not whole blocks of "
                             f"{self.block_size}")

    @classmethod
    def from_iso28560(cls, uid: bytes, data: bytes, *, block_count: int = SLIX_BLOCKS,
                      **kwargs) -> VirtualTag:
        """A tag whose memory starts with ``data`` (raw ISO 28560 bytes, encoded elsewhere),
        padded with zeros to ``block_count`` blocks."""
        size = block_count * kwargs.get("block_size", 4)
        if len(data) > size:
            raise ValueError(f"{len(data)} bytes do not fit {block_count} blocks")
        return cls(uid, bytearray(data) + bytes(size - len(data)), **kwargs)

    @property
    def block_count(self) -> int:
        return len(self.memory) // self.block_size

    def block(self, n: int) -> bytes:
        return bytes(self.memory[n * self.block_size:(n + 1) * self.block_size])

    def read(self, first: int, count: int) -> bytes | int:
        """Blocks ``first`` .. ``first + count - 1``, or an ISO error code."""
        if first < 0 or count < 1 or first + count > self.block_count:
            return BLOCK_NOT_AVAILABLE
        return bytes(self.memory[first * self.block_size:(first + count) * self.block_size])

    def write_block(self, n: int, data: bytes) -> int | None:
        if not 0 <= n < self.block_count or len(data) != self.block_size:
            return BLOCK_NOT_AVAILABLE
        if n in self.locked_blocks:
            return BLOCK_LOCKED
        self.memory[n * self.block_size:(n + 1) * self.block_size] = data
        return None

    def write_afi(self, afi: int) -> int | None:
        if self.afi_locked:
            return BLOCK_LOCKED
        self.afi = afi
        return None

    def set_eas(self, on: bool) -> int | None:
        self.eas = on
        return None
