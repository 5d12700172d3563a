"""The CRC of the ISO 28560-3 basic block (and of the Danish data model it came from).

CRC-16 with the CCITT polynomial x^16 + x^12 + x^5 + 1 (0x1021), preset 0xFFFF, bits fed
most significant first, no reflection and no final inversion: the variant catalogues call
CRC-16/CCITT-FALSE or CRC-16/IBM-3740. The Danish data model gives its check value:
``crc16(b"RFID tag data model") == 0x1AEE``.

On the tag the CRC sits at bytes 19-20 with its least significant byte first. It covers the
other 32 bytes of the (34-byte) basic block in address order; a tag with only 32 bytes
counts its two missing bytes as zero.
"""

from __future__ import annotations

POLY = 0x1021
PRESET = 0xFFFF


def _table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ POLY) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_TABLE = _table()


def crc16(data: bytes, crc: int = PRESET) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (pass ``crc`` to continue an earlier result)."""
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[(crc >> 8) ^ byte]
    return crc


def basic_block_crc(block: bytes) -> int:
    """The CRC of an ISO 28560-3 basic block given as its first 32 or 34 bytes.

    Bytes 19-20 (the CRC itself) are skipped; a 32-byte block is extended by two zero bytes,
    as the Danish data model prescribes for 32-byte tags.
    """
    covered = bytes(block[:19]) + bytes(block[21:34])
    return crc16(covered.ljust(32, b"\x00"))
