"""Reading the books on the pad: every tag in the field, what its ISO 28560 data says.

One unreadable or corrupt tag never hides the others: each book comes back with either its
decoded data or the error that stopped it, and the caller decides (the patron is told to
hand that book to staff; the rest are lent).
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.errors import DriverError
from drivers.iso28560 import ItemTag, TagDataError, decode
from hardware.roles import HardwareError, TagInField, TagReader

# Most library tags fit their ISO 28560 data in the first 36 bytes (the ISO 28560-3 basic
# block is 32 or 34); reading only those keeps a ten-book stack quick at 38400 baud, and the
# rest of the memory is read only when the data says it goes on.
FIRST_READ_BLOCKS = 9
MAX_BLOCKS_PER_READ = 32
_NEEDS_MORE = {"truncated", "extension", "not_recognised"}


@dataclass(frozen=True)
class BookOnPad:
    """A tag in the field: ``item`` when its data decoded, else ``error`` (a TagDataError,
    or the reader's error when the tag could not be read)."""

    uid: bytes
    dsfid: int
    item: ItemTag | None = None
    error: Exception | None = None

    @property
    def uid_hex(self) -> str:
        return self.uid.hex().upper()


def _read(reader: TagReader, uid: bytes, blocks: int) -> bytes:
    data = bytearray()
    for first in range(0, blocks, MAX_BLOCKS_PER_READ):
        data += reader.read_blocks(uid, first, min(MAX_BLOCKS_PER_READ, blocks - first))
    return bytes(data)


def read_book(reader: TagReader, tag: TagInField, block_count: int | None = None) -> BookOnPad:
    """Read and decode one tag. Reader errors and bad data come back in ``error``."""
    dsfid = tag.dsfid or None  # 0x00 means "look at the data" (see drivers.iso28560)
    try:
        first = FIRST_READ_BLOCKS if block_count is None else min(FIRST_READ_BLOCKS, block_count)
        data = _read(reader, tag.uid, first)
        try:
            return BookOnPad(tag.uid, tag.dsfid, decode(data, dsfid=dsfid))
        except TagDataError as exc:
            if exc.reason not in _NEEDS_MORE:
                raise
        if block_count is None:
            block_count = reader.system_info(tag.uid).block_count or first
        if block_count <= first:
            raise TagDataError("truncated", offset=len(data), oid="-")
        data = _read(reader, tag.uid, block_count)
        return BookOnPad(tag.uid, tag.dsfid, decode(data, dsfid=dsfid))
    except (TagDataError, DriverError, HardwareError) as exc:
        return BookOnPad(tag.uid, tag.dsfid, error=exc)


def read_books(reader: TagReader) -> list[BookOnPad]:
    """Every book on the pad now, in inventory order. Raises only when the inventory itself
    fails (reader offline or broken); per-book trouble is in each result."""
    return [read_book(reader, tag) for tag in reader.inventory()]
