"""ISO 28560-3 (GB/T 35660.3): the fixed-length model that grew out of the Danish data model.

Basic block (34 bytes; a 32-byte tag holds the truncated block, without bytes 32-33)::

    0      version (high nibble) | type of usage (low nibble)
    1      number of parts in the set        2      ordinal part number
    3-18   primary item identifier, NUL-padded (0x01 alone: it is in extension block 1)
    19-20  CRC-16 of the other bytes, least significant byte first (see crc.py)
    21-33  owner ISIL without its first hyphen: country (21-22) then the library identifier

Extension blocks may follow from byte 34: ``length`` (counting the whole block; 0 ends the
list, 1 is a filler byte), ``block id`` (2 bytes, least significant first; 0xFF as the
second byte announces a 4-byte id), an XOR checksum making the XOR of the whole block 0,
then the fields: text separated by NUL bytes, trailing empty fields left out. The
structured blocks and the elements (relative OIDs) of their fields:

    1 library        media format (19, one byte), item identifier, owner institution
    2 acquisition    9, 18, 10, 21, 13, 20
    3 supplement     6, 8, 7, 24
    4 title          17
    5 ILL            11, 12, 25

Block 2 follows ISO 28560-3 annex B (a vector in the tests); the orders in blocks 1 and
3-5 come from a public implementation and are not confirmed by a vector.
"""

from __future__ import annotations

from functools import reduce

from drivers.iso28560 import elements as el
from drivers.iso28560.crc import basic_block_crc
from drivers.iso28560.errors import TagDataError
from drivers.iso28560.isil import is_isil
from drivers.iso28560.model import ItemTag

BASIC = 34
TRUNCATED = 32
ID_FIELD = slice(3, 19)
ISIL_START = 21
VERSION = 1  # ISO 28560-3:2011 and the Danish data model
ITEM_ID_ELSEWHERE = b"\x01"

LIBRARY_BLOCK = 1
BLOCK_FIELDS = {
    2: (el.SUPPLIER_IDENTIFIER, el.PRODUCT_IDENTIFIER_LOCAL, el.ORDER_NUMBER,
        el.SUPPLIER_INVOICE_NUMBER, el.GS1_PRODUCT_IDENTIFIER, el.SUPPLY_CHAIN_STAGE),
    3: (el.SHELF_LOCATION, el.MARC_MEDIA_FORMAT, el.ONIX_MEDIA_FORMAT, el.SUBSIDIARY_OF_OWNER),
    4: (el.TITLE,),
    5: (el.ILL_BORROWING_INSTITUTION, el.ILL_BORROWING_TRANSACTION,
        el.ALTERNATIVE_ILL_BORROWING_INSTITUTION),
}
_BLOCK_OF = {oid: block for block, oids in BLOCK_FIELDS.items() for oid in oids}


def _text(raw: bytes) -> str:
    raw = raw.split(b"\x00", 1)[0]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _xor(data: bytes) -> int:
    return reduce(lambda a, b: a ^ b, data, 0)


def _blocks(data: bytes) -> list[tuple[int, bytes]]:
    found = []
    i = BASIC
    while i < len(data):
        length = data[i]
        if length == 0:
            break
        if length == 1:
            i += 1
            continue
        block = data[i:i + length]
        if length < 4 or len(block) < length or _xor(block) != 0:
            raise TagDataError("extension", offset=i)
        header = 4
        block_id = block[1] | block[2] << 8
        if block[2] == 0xFF:
            if length < 6:
                raise TagDataError("extension", offset=i)
            block_id, header = block[1] | block[3] << 8 | block[4] << 16, 6
        found.append((block_id, bytes(block[header:])))
        i += length
    return found


def decode_part3(data: bytes, *, dsfid: int | None = None) -> ItemTag:
    """The :class:`ItemTag` in ISO 28560-3 tag memory (32 bytes or more).

    The CRC is checked; more than 32 bytes are read as the 34-byte basic block plus
    extension blocks, unless only the truncated block's CRC fits (a 32-byte block written
    to a larger tag). Set information 0 of 0 reads as none. Raises :class:`TagDataError`
    for short or blank data, a bad CRC, a damaged extension block or no item identifier.
    """
    data = bytes(data)
    if not any(data):
        raise TagDataError("empty")
    if len(data) < TRUNCATED:
        raise TagDataError("truncated", offset=0, oid=el.PRIMARY_ITEM_ID)
    stored = data[19] | data[20] << 8
    size = TRUNCATED
    if len(data) >= BASIC and basic_block_crc(data[:BASIC]) == stored:
        size = BASIC
    elif basic_block_crc(data[:TRUNCATED]) != stored:
        computed = basic_block_crc(data[:BASIC if len(data) >= BASIC else TRUNCATED])
        raise TagDataError("crc", stored=f"0x{stored:04X}", computed=f"0x{computed:04X}")
    fields: dict[str, object] = {"version": data[0] >> 4, "type_of_usage": data[0] & 0x0F}
    if data[1] or data[2]:
        fields["set_parts"], fields["set_part"] = data[1], data[2]
    item_id = _text(data[ID_FIELD])
    isil = _text(data[ISIL_START:size])
    if len(isil) >= 2:
        fields["country"] = isil[:2]
    if len(isil) > 2:
        fields["owner_isil"] = f"{isil[:2]}-{isil[2:]}"
    other: dict[int, bytes | str] = {}
    for block_id, payload in _blocks(data) if size == BASIC else ():
        if block_id == LIBRARY_BLOCK:
            if payload[:1] not in (b"", b"\x00"):
                other[el.MEDIA_FORMAT_OTHER] = payload[:1]
            texts = [_text(part) for part in payload[1:].split(b"\x00")] + ["", ""]
            if texts[0]:
                if data[ID_FIELD].rstrip(b"\x00") == ITEM_ID_ELSEWHERE:
                    item_id = texts[0]
                else:
                    other[el.ALTERNATIVE_ITEM_ID] = texts[0]
            if texts[1]:
                if "owner_isil" in fields:
                    other[el.ALTERNATIVE_OWNER_INSTITUTION] = texts[1]
                else:
                    fields["owner_isil"] = texts[1]
        elif block_id in BLOCK_FIELDS:
            for oid, raw in zip(BLOCK_FIELDS[block_id], payload.split(b"\x00"), strict=False):
                if raw:
                    other[oid] = _text(raw)
    if not item_id or item_id == ITEM_ID_ELSEWHERE.decode():
        raise TagDataError("no_item_id")
    for oid, key in ((el.SHELF_LOCATION, "shelf_location"), (el.TITLE, "title")):
        if oid in other:
            fields[key] = other.pop(oid)
    return ItemTag(primary_item_id=item_id, model="part3", other=other, dsfid=dsfid,
                   **fields)  # type: ignore[arg-type]


def _field_bytes(oid: int, value: object) -> bytes:
    if not isinstance(value, str) or "\x00" in value:
        raise TagDataError("bad_value", oid=oid, value=value)
    return value.encode("utf-8")


def _extension_blocks(tag: ItemTag) -> bytes:
    values: dict[int, object] = dict(tag.other)
    for oid, value in ((el.SHELF_LOCATION, tag.shelf_location), (el.TITLE, tag.title)):
        if value is not None:
            if oid in values:
                raise TagDataError("bad_value", oid=oid, value=value)
            values[oid] = value
    blocks: dict[int, bytes] = {}
    media = values.pop(el.MEDIA_FORMAT_OTHER, None)
    if media is not None:
        if isinstance(media, int) and not isinstance(media, bool) and 1 <= media <= 255:
            media = bytes([media])
        if not isinstance(media, bytes) or len(media) != 1 or media == b"\x00":
            raise TagDataError("bad_value", oid=el.MEDIA_FORMAT_OTHER, value=media)
        blocks[LIBRARY_BLOCK] = media
    for oid in values:
        if oid not in _BLOCK_OF:
            # Part 3 has no place for this element: refuse rather than drop it.
            raise TagDataError("bad_value", oid=oid, value=values[oid])
    for block_id, oids in BLOCK_FIELDS.items():
        fields = [_field_bytes(oid, values[oid]) if oid in values else b"" for oid in oids]
        while fields and not fields[-1]:
            fields.pop()
        if fields:
            blocks[block_id] = b"\x00".join(fields)
    out = bytearray()
    for block_id, payload in sorted(blocks.items()):
        length = 4 + len(payload)
        if length > 255:
            raise TagDataError("too_long", oid=BLOCK_FIELDS.get(block_id, (19,))[0],
                               size=length, limit=255)
        block = bytearray([length, block_id & 0xFF, block_id >> 8, 0]) + payload
        block[3] = _xor(block)
        out += block
    return bytes(out)


def _isil_field(tag: ItemTag) -> bytes:
    if tag.owner_isil is None:
        if tag.country is None:
            return b""
        if len(tag.country) != 2 or not (tag.country.isalpha() and tag.country.isupper()
                                         and tag.country.isascii()):
            raise TagDataError("bad_value", oid=el.OWNER_INSTITUTION, value=tag.country)
        return tag.country.encode()
    prefix, _, rest = tag.owner_isil.partition("-")
    if not is_isil(tag.owner_isil) or len(prefix) != 2 or (
            tag.country is not None and tag.country != prefix):
        # The basic block's first two bytes are a country: other prefixes do not fit.
        raise TagDataError("bad_value", oid=el.OWNER_INSTITUTION, value=tag.owner_isil)
    return (prefix + rest).encode()


def encode_part3(tag: ItemTag, *, block_size: int = 4, capacity: int | None = None) -> bytes:
    """The ISO 28560-3 user memory for ``tag``.

    Without extension data and with an ISIL of at most 12 characters this is the 32-byte
    truncated basic block (unless ``capacity`` allows 34 bytes or more); otherwise the
    34-byte basic block, the extension blocks and a 0x00 end byte, zero-filled to whole
    ``block_size`` blocks. A missing type of usage is written as 1 (for circulation), a
    missing set as 1 of 1. Values part 3 cannot hold (an item identifier over 16 bytes, an
    ISIL without a country prefix, a usage qualifier, an element without a block) raise
    :class:`TagDataError`; nothing is truncated.
    """
    version = VERSION if tag.version is None else tag.version
    usage = 1 if tag.type_of_usage is None else tag.type_of_usage
    if not 0 <= version <= 15:
        raise TagDataError("bad_value", oid=None, value=version)
    if not 0 <= usage <= 15 or tag.usage_qualifier not in (None, 0):
        raise TagDataError("bad_value", oid=el.TYPE_OF_USAGE,
                           value=f"{usage}/{tag.usage_qualifier}")
    parts, part = tag.set_parts, tag.set_part
    if parts is None and part is None:
        parts = part = 1
    if parts is None or part is None or not 1 <= part <= parts <= 255:
        raise TagDataError("bad_value", oid=el.SET_INFORMATION, value=f"{part}/{parts}")
    item = _field_bytes(el.PRIMARY_ITEM_ID, tag.primary_item_id)
    if not item or item == ITEM_ID_ELSEWHERE:
        raise TagDataError("bad_value", oid=el.PRIMARY_ITEM_ID, value=tag.primary_item_id)
    if len(item) > 16:
        raise TagDataError("too_long", oid=el.PRIMARY_ITEM_ID, size=len(item), limit=16)
    isil = _isil_field(tag)
    extensions = _extension_blocks(tag)
    full = bool(extensions) or len(isil) > TRUNCATED - ISIL_START or (
        capacity is not None and capacity >= BASIC)
    if len(isil) > BASIC - ISIL_START:
        raise TagDataError("too_long", oid=el.OWNER_INSTITUTION, size=len(isil), limit=13)
    block = bytearray(BASIC if full else TRUNCATED)
    block[0] = version << 4 | usage
    block[1], block[2] = parts, part
    block[ID_FIELD] = item.ljust(16, b"\x00")
    block[ISIL_START:ISIL_START + len(isil)] = isil
    crc = basic_block_crc(bytes(block))
    block[19], block[20] = crc & 0xFF, crc >> 8
    out = bytes(block) + (extensions + b"\x00" if full else b"")
    if capacity is not None and len(out) > capacity:
        if len(out) - 1 == capacity and full:
            return out[:-1]  # the end byte may be left out when the memory ends there
        raise TagDataError("capacity", need=len(out), capacity=capacity)
    size = len(out) + (-len(out) % block_size) if block_size > 0 else len(out)
    if capacity is not None:
        size = min(size, capacity)
    return out.ljust(size, b"\x00")
