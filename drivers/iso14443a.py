"""ISO/IEC 14443-3 type A and MIFARE Classic: the pure protocol pieces, no I/O.

Both the MFRC522 driver and the simulated cards use these, so the frames the driver builds and
the frames a virtual card parses are checked against the same published rules:

- CRC_A (ISO/IEC 14443-3 annex B): CRC-16 polynomial x^16 + x^12 + x^5 + 1, reflected, preset
  0x6363, no final XOR, sent low byte first. The CRC catalogue's check value for
  "CRC-16/ISO-IEC-14443-3-A" is 0xBF05 over ``b"123456789"``; annex B's examples give
  ``A0 1E`` for ``00 00`` and ``26 CF`` for ``12 34``.
- BCC: the XOR of the four bytes of a cascade level (ISO/IEC 14443-3, 6.5.4).
- UIDs of 4, 7 or 10 bytes, split into cascade levels; levels that are not the last start with
  the cascade tag 0x88 and the SAK of such a level has bit 0x04 set.
- MIFARE Classic 1K/4K block layout: sector trailers hold key A, the access bits and key B.

Bits on the air go least significant bit first, so "bit n" of a byte string here is bit
``n % 8`` of byte ``n // 8``.
"""

from __future__ import annotations

from dataclasses import dataclass

REQA = 0x26  # sent as a 7-bit short frame
WUPA = 0x52  # sent as a 7-bit short frame
SEL = (0x93, 0x95, 0x97)  # SEL codes of cascade levels 1, 2, 3
NVB_ANTICOLLISION = 0x20  # SEL + NVB only: every card in READY answers with its UID CLn + BCC
NVB_SELECT = 0x70  # seven whole bytes: SEL NVB UID0..3 BCC, then CRC_A
CASCADE_TAG = 0x88
SAK_CASCADE = 0x04  # SAK bit: the UID is not complete, go on at the next cascade level
HLTA = 0x50
MF_AUTH_KEY_A = 0x60
MF_AUTH_KEY_B = 0x61
MF_READ = 0x30
MF_WRITE = 0xA0
MF_ACK = 0x0A  # 4-bit answer
SHORT_FRAME_BITS = 7
BLOCK_SIZE = 16
KEY_SIZE = 6
UID_SIZES = (4, 7, 10)
CARD_NUMBER_DIGITS = 16

CRC_A_PRESET = 0x6363


def crc_a(data: bytes) -> bytes:
    """CRC_A of ``data`` as the two bytes sent after it (low byte first)."""
    crc = CRC_A_PRESET
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return bytes((crc & 0xFF, crc >> 8))


def check_crc_a(frame: bytes) -> bool:
    """True if the last two bytes of ``frame`` are the CRC_A of the bytes before them."""
    return len(frame) >= 3 and crc_a(frame[:-2]) == frame[-2:]


def bcc(four: bytes) -> int:
    """The block check character of one cascade level: XOR of its four bytes."""
    if len(four) != 4:
        raise ValueError(f"a cascade level has 4 bytes, not {len(four)}")
    return four[0] ^ four[1] ^ four[2] ^ four[3]


def cascade_levels(uid: bytes) -> list[bytes]:
    """Split a 4-, 7- or 10-byte UID into the 4-byte UID CLn of each cascade level."""
    if len(uid) not in UID_SIZES:
        raise ValueError(f"a UID has 4, 7 or 10 bytes, not {len(uid)}")
    levels = []
    rest = bytes(uid)
    while len(rest) > 4:
        levels.append(bytes([CASCADE_TAG]) + rest[:3])
        rest = rest[3:]
    levels.append(rest)
    return levels


def assemble_uid(levels: list[bytes]) -> bytes:
    """The UID from the UID CLn of each cascade level, as read in anticollision.

    Every level but the last must start with the cascade tag; raises ``ValueError`` otherwise.
    """
    if not 1 <= len(levels) <= 3 or any(len(level) != 4 for level in levels):
        raise ValueError("a UID has one to three cascade levels of 4 bytes each")
    uid = b""
    for level in levels[:-1]:
        if level[0] != CASCADE_TAG:
            raise ValueError(f"cascade level {level.hex()} does not start with the cascade tag")
        uid += level[1:]
    return uid + levels[-1]


def anticollision_frame(level: int, known: bytes, known_bits: int) -> tuple[bytes, int]:
    """The ANTICOLLISION frame of cascade ``level`` (1..3) carrying ``known_bits`` UID bits.

    Returns the bytes to send and the number of valid bits in the last byte (0 = all 8), which
    is what the reader's TxLastBits takes.
    """
    if not 0 <= known_bits < 32:
        raise ValueError(f"known bits must be 0..31, not {known_bits}")
    whole, extra = divmod(known_bits, 8)
    nvb = ((2 + whole) << 4) | extra
    body = bytes(known[: whole + (1 if extra else 0)])
    if extra:
        body = body[:-1] + bytes([body[-1] & ((1 << extra) - 1)])
    return bytes([SEL[level - 1], nvb]) + body, extra


def select_frame(level: int, uid_cln: bytes) -> bytes:
    """The SELECT frame of cascade ``level`` for ``uid_cln`` without its CRC_A."""
    return bytes([SEL[level - 1], NVB_SELECT]) + bytes(uid_cln) + bytes([bcc(uid_cln)])


def get_bit(data: bytes, index: int) -> int:
    return (data[index // 8] >> (index % 8)) & 1


def set_bit(data: bytearray, index: int, value: int) -> None:
    if value:
        data[index // 8] |= 1 << (index % 8)
    else:
        data[index // 8] &= ~(1 << (index % 8)) & 0xFF


def to_bits(data: bytes, count: int | None = None) -> list[int]:
    """The first ``count`` bits of ``data`` in air order (all of them by default)."""
    count = len(data) * 8 if count is None else count
    return [get_bit(data, i) for i in range(count)]


def from_bits(bits: list[int], offset: int = 0) -> bytes:
    """Pack bits (air order) into bytes, the first bit landing at bit ``offset`` of byte 0."""
    out = bytearray((offset + len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        set_bit(out, offset + i, bit)
    return bytes(out)


@dataclass(frozen=True)
class Card:
    """A card that answered and was selected: what ISO 14443-3 tells about it.

    ``uid`` is 4, 7 or 10 bytes, ``sak`` the SAK of the last cascade level (0x08 for a MIFARE
    Classic 1K, 0x18 for a 4K, 0x00 for an Ultralight), ``atqa`` the two ATQA bytes as received.
    """

    uid: bytes
    sak: int
    atqa: bytes

    @property
    def uid_hex(self) -> str:
        """The UID as the upper-case hex that is printed on readers and in logs."""
        return self.uid.hex().upper()

    @property
    def is_mifare_classic(self) -> bool:
        """True for the SAK values of MIFARE Classic Mini, 1K and 4K (and their clones)."""
        return self.sak in (0x08, 0x09, 0x18, 0x88, 0x28, 0x38)


def sector_trailer(block: int) -> int:
    """The trailer block of the sector that holds ``block`` (MIFARE Classic 1K and 4K)."""
    if not 0 <= block <= 255:
        raise ValueError(f"a MIFARE Classic block number is 0..255, not {block}")
    return block | 3 if block < 128 else block | 15


def is_sector_trailer(block: int) -> bool:
    return sector_trailer(block) == block


def access_bits_valid(trailer: bytes) -> bool:
    """True if bytes 6..8 of a sector trailer hold access bits with their inverted copies.

    A card that is sent a trailer failing this check blocks the whole sector for good, so
    nothing may write such a trailer.
    """
    if len(trailer) != BLOCK_SIZE:
        return False
    b6, b7, b8 = trailer[6], trailer[7], trailer[8]
    c1, c2, c3 = b7 >> 4, b8 & 0x0F, b8 >> 4
    return (b6 & 0x0F) == (~c1 & 0x0F) and (b6 >> 4) == (~c2 & 0x0F) and (b7 & 0x0F) == (~c3 & 0x0F)


def encode_card_number(number: str) -> bytes:
    """The 16-byte block that stores a library card number.

    The number is ASCII digits (1 to 16 of them, leading zeros kept), padded with 0x00 bytes
    after the digits, so ``"0012"`` and ``"12"`` stay different numbers.
    """
    digits_only = number.isascii() and number.isdigit()
    if not digits_only or len(number) > CARD_NUMBER_DIGITS:
        raise ValueError(f"a library card number is 1 to 16 ASCII digits, not {number!r}")
    return number.encode("ascii").ljust(BLOCK_SIZE, b"\x00")


def decode_card_number(block: bytes) -> str:
    """The library card number in a block written by :func:`encode_card_number`.

    Raises ``ValueError`` if the block holds anything else (a blank or foreign card).
    """
    if len(block) != BLOCK_SIZE:
        raise ValueError(f"a block has 16 bytes, not {len(block)}")
    digits, _, padding = bytes(block).partition(b"\x00")
    if not digits or not digits.isdigit() or padding.strip(b"\x00"):
        raise ValueError(f"block {block.hex()} holds no library card number")
    return digits.decode("ascii")
