"""Simulated library books: virtual ISO 15693 tags carrying real ISO 28560 data."""

from __future__ import annotations

import hashlib

from drivers.iso28560 import ItemTag, dsfid_for, encode
from hardware.sim.iso15693 import SLIX_BLOCKS, VirtualTag


def uid_for(barcode: str) -> bytes:
    """A stable NXP ICODE SLIX-like UID (E0 04 01 ...) for a barcode, so the same simulated
    book always carries the same tag."""
    return bytes.fromhex("E00401") + hashlib.sha256(barcode.encode()).digest()[:5]


def book_tag(barcode: str, *, owner_isil: str | None = None, model: str = "part2",
             afi: int = 0x07, set_parts: int | None = None, set_part: int | None = None,
             **tag_fields: object) -> VirtualTag:
    """A tag as a library's tagging station writes it: ISO 28560 data of ``model`` with the
    item's barcode as primary item identifier, the DSFID of that model, the given AFI."""
    item = ItemTag(barcode, model=model, owner_isil=owner_isil, set_parts=set_parts,
                   set_part=set_part, **tag_fields)  # type: ignore[arg-type]
    data = encode(item)
    return VirtualTag.from_iso28560(uid_for(barcode), data, block_count=SLIX_BLOCKS, afi=afi,
                                    dsfid=dsfid_for(model))
