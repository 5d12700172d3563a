"""Library item tag data: ISO 28560-2 and ISO 28560-3 (China: GB/T 35660.2 and .3).

Pure functions over bytes; no I/O. A tag reader reads the user memory (and the DSFID, when
the tag has one) and calls :func:`decode`; to label a book, :func:`encode_part2` or
:func:`encode_part3` give the bytes to write and :func:`dsfid_for` the DSFID. Everything
that is wrong with tag data raises :class:`TagDataError`, and nothing else: a decoder never
lets another exception out, whatever the bytes.

Security (the AFI and EAS bits) is not tag data and is handled by the tag reader.
"""

from __future__ import annotations

from drivers.iso28560.compaction import Scheme, compact, decompact
from drivers.iso28560.crc import basic_block_crc, crc16
from drivers.iso28560.errors import REASONS, TagDataError
from drivers.iso28560.isil import decode_isil, encode_isil, is_isil
from drivers.iso28560.model import MODELS, ItemTag
from drivers.iso28560.part2 import (
    Element,
    decode_part2,
    encode_element,
    encode_part2,
    iter_elements,
)
from drivers.iso28560.part3 import VERSION, decode_part3, encode_part3

# DSFIDs (ISO/IEC 15961 registered data formats): access method "no directory" with data
# format 6 for ISO 28560-2; 0x3E for ISO 28560-3. Tags written to the Danish model before
# ISO 28560-3 usually have DSFID 0x00, so 0x00 means "look at the data".
DSFID_PART2 = 0x06
DSFID_PART3 = 0x3E

__all__ = [
    "DSFID_PART2",
    "DSFID_PART3",
    "MODELS",
    "REASONS",
    "Element",
    "ItemTag",
    "Scheme",
    "TagDataError",
    "basic_block_crc",
    "compact",
    "crc16",
    "decode",
    "decode_isil",
    "decode_part2",
    "decode_part3",
    "decompact",
    "dsfid_for",
    "encode",
    "encode_element",
    "encode_isil",
    "encode_part2",
    "encode_part3",
    "is_isil",
    "iter_elements",
]


def dsfid_for(model: str) -> int:
    """The DSFID to write with data of ``model`` ("part2" or "part3")."""
    if model == "part2":
        return DSFID_PART2
    if model == "part3":
        return DSFID_PART3
    raise TagDataError("model", model=model)


def encode(tag: ItemTag, *, block_size: int = 4, capacity: int | None = None) -> bytes:
    """The user memory for ``tag`` in the data model ``tag.model`` names."""
    if tag.model == "part2":
        return encode_part2(tag, block_size=block_size, capacity=capacity)
    if tag.model == "part3":
        return encode_part3(tag, block_size=block_size, capacity=capacity)
    raise TagDataError("model", model=tag.model)


def decode(data: bytes, *, model: str = "auto", dsfid: int | None = None) -> ItemTag:
    """The :class:`ItemTag` in a tag's user memory.

    ``model`` "part2" or "part3" decodes as that model only. With "auto", a DSFID of 0x06 or
    0x3E decides; otherwise the data does: a valid ISO 28560-3 CRC over the first 32 (or 34)
    bytes means part 3, else the data must parse as ISO 28560-2 elements. The result's
    ``model`` says which was found. When neither fits, the error is the part 3 one for data
    that starts like a version 1 basic block, the part 2 one for data that starts with a
    data element, and ``not_recognised`` otherwise.
    """
    data = bytes(data)
    if model not in ("auto", *MODELS):
        raise TagDataError("model", model=model)
    if not any(data):
        raise TagDataError("empty")
    if model == "part2" or (model == "auto" and dsfid == DSFID_PART2):
        return decode_part2(data, dsfid=dsfid)
    if model == "part3" or (model == "auto" and dsfid == DSFID_PART3):
        return decode_part3(data, dsfid=dsfid)
    part3_error: TagDataError | None = None
    if len(data) >= 32:
        try:
            return decode_part3(data, dsfid=dsfid)
        except TagDataError as exc:
            part3_error = exc
    try:
        return decode_part2(data, dsfid=dsfid)
    except TagDataError as exc:
        if part3_error is not None and data[0] >> 4 == VERSION:
            raise part3_error from None
        if exc.reason != "precursor" or exc.params.get("offset") != 0:
            raise
    raise TagDataError("not_recognised")
