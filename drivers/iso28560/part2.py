"""ISO 28560-2 (GB/T 35660.2): data elements encoded by the rules of ISO/IEC 15962.

The tag memory (after the DSFID, which ISO/IEC 15693 keeps outside the user memory) is a
sequence of data elements ending with a 0x00 byte. Each element is::

    precursor  [offset]  [OID - 15]  length  compacted data  [padding]

* precursor: bit 8 says an offset byte follows; bits 7-5 are the compaction code
  (:class:`~drivers.iso28560.compaction.Scheme`); bits 4-1 the relative OID, 1-14, or 15
  when the OID (15 and above) is given as ``OID - 15`` in the next byte;
* offset: the number of padding bytes (0x80 each) after the data, used to end an element
  on a block boundary so its blocks can be locked;
* length: the number of compacted bytes, 7 bits a byte, high bit set on all but the last.

The order of the offset byte and the OID extension byte is the one a public decoder uses;
no published vector has both in one element, and this encoder never writes both.

The primary item identifier (OID 1) comes first and the content parameter (OID 2, a bit map
of the further elements, OID 3 in the most significant bit) second; the rest follow by OID.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from drivers.iso28560 import elements as el
from drivers.iso28560.compaction import ENCODERS, SCHEME_NAMES, Scheme, compact, decompact
from drivers.iso28560.errors import TagDataError
from drivers.iso28560.isil import decode_isil, encode_isil, is_isil
from drivers.iso28560.model import ItemTag

PAD_BYTE = 0x80
MAX_OID = 15 + 255
MAX_LENGTH_BYTES = 3


@dataclass(frozen=True)
class Element:
    """One decoded data element.

    ``offset`` is the byte position of its precursor, ``end`` the position after its
    padding; ``data`` the compacted bytes; ``value`` the decoded value: text, or for
    application-defined data the content parameter as a tuple of OIDs, the type of usage
    as an int (0x00-0xFF), an ISIL as text, anything else as bytes.
    """

    offset: int
    oid: int
    scheme: Scheme
    data: bytes
    end: int
    value: str | bytes | int | tuple[int, ...]


def encode_length(length: int) -> bytes:
    """A length as ISO/IEC 15962 writes it: 7 bits a byte, most significant first."""
    if not 0 <= length < 1 << (7 * MAX_LENGTH_BYTES):
        raise TagDataError("too_long", oid=None, size=length, limit=(1 << 21) - 1)
    out = [length & 0x7F]
    length >>= 7
    while length:
        out.append(0x80 | (length & 0x7F))
        length >>= 7
    return bytes(reversed(out))


def _read_length(data: bytes, i: int, start: int, oid: int) -> tuple[int, int]:
    value = 0
    for count in range(MAX_LENGTH_BYTES + 1):
        if i >= len(data):
            raise TagDataError("truncated", offset=start, oid=oid)
        if count == MAX_LENGTH_BYTES:
            raise TagDataError("length", offset=start, oid=oid)
        byte = data[i]
        i += 1
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, i
    raise AssertionError("unreachable")


def _has_control(text: str) -> bool:
    return any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text)


def _decode_value(oid: int, scheme: Scheme, data: bytes) -> str | bytes | int | tuple[int, ...]:
    if scheme is Scheme.APPLICATION:
        if oid == el.CONTENT_PARAMETER:
            bits = int.from_bytes(data, "big")
            total = len(data) * 8
            return tuple(3 + i for i in range(total) if bits >> (total - 1 - i) & 1)
        if oid in el.ISIL_ELEMENTS:
            return decode_isil(data)
        if oid == el.TYPE_OF_USAGE and len(data) == 1:
            return data[0]
        return bytes(data)
    text = decompact(scheme, data)
    if scheme is Scheme.OCTET and oid != el.PRIMARY_ITEM_ID and _has_control(text):
        return bytes(data)
    return text


def iter_elements(data: bytes) -> Iterator[Element]:
    """The data elements of ISO 28560-2 tag memory, in the order written.

    Stops at the 0x00 terminator or the end of the data; single 0x80 bytes between elements
    (padding some encoders leave) are skipped. Raises :class:`TagDataError` for a precursor
    with OID 0, an element running past the end of the data, an over-long length or data
    its compaction cannot have produced.
    """
    data = bytes(data)
    i = 0
    while i < len(data):
        precursor = data[i]
        if precursor == 0x00:
            return
        if precursor == PAD_BYTE:
            i += 1
            continue
        start = i
        scheme = Scheme((precursor >> 4) & 0x07)
        oid = precursor & 0x0F
        if oid == 0:
            raise TagDataError("precursor", offset=start, oid=0)
        i += 1
        pad = 0
        if precursor & 0x80:
            if i >= len(data):
                raise TagDataError("truncated", offset=start, oid=oid)
            pad = data[i]
            i += 1
        if oid == 15:
            if i >= len(data):
                raise TagDataError("truncated", offset=start, oid=oid)
            oid = 15 + data[i]
            i += 1
        length, i = _read_length(data, i, start, oid)
        if i + length + pad > len(data):
            raise TagDataError("truncated", offset=start, oid=oid)
        payload = data[i:i + length]
        i += length + pad
        try:
            value = _decode_value(oid, scheme, payload)
        except TagDataError:
            raise TagDataError("compaction", offset=start, oid=oid,
                               scheme=SCHEME_NAMES[scheme]) from None
        yield Element(start, oid, scheme, payload, i, value)


def encode_element(oid: int, value: str | bytes | int, *, scheme: Scheme | None = None,
                   pad: int | None = None) -> bytes:
    """One data element: precursor, [offset], [OID extension], length, data, [padding].

    ``value`` is text (compacted as :func:`~drivers.iso28560.compaction.compact` chooses, or
    with ISIL compaction for OIDs 3 and 11), bytes (an octet string; application-defined
    for the content parameter) or, for the type of usage, the byte as an int. ``scheme``
    forces a compaction; ``pad`` writes an offset byte and that many 0x80 padding bytes.
    """
    if not 1 <= oid <= MAX_OID:
        raise TagDataError("bad_value", oid=oid, value=oid)
    if pad is not None and not 0 <= pad <= 255:
        raise TagDataError("bad_value", oid=oid, value=pad)
    if isinstance(value, int) and not isinstance(value, bool):
        if oid != el.TYPE_OF_USAGE:
            value = str(value)
        elif not 0 <= value <= 0xFF:
            raise TagDataError("bad_value", oid=oid, value=value)
        else:
            scheme, data = Scheme.APPLICATION, bytes([value])
    if isinstance(value, bytes | bytearray):
        if scheme is None:
            scheme = Scheme.APPLICATION if oid == el.CONTENT_PARAMETER else Scheme.OCTET
        if scheme not in (Scheme.APPLICATION, Scheme.OCTET):
            raise TagDataError("bad_value", oid=oid, value=bytes(value).hex())
        data = bytes(value)
    elif isinstance(value, str):
        try:
            if scheme is None and oid in el.ISIL_ELEMENTS:
                scheme, data = Scheme.APPLICATION, encode_isil(value)
            elif scheme is None:
                scheme, data = compact(value)
            else:
                data = ENCODERS[scheme](value)  # KeyError: APPLICATION for plain text
        except (TagDataError, KeyError):
            raise TagDataError("bad_value", oid=oid, value=value) from None
    elif not isinstance(value, int):
        raise TagDataError("bad_value", oid=oid, value=repr(value))
    precursor = (0x80 if pad is not None else 0) | (int(scheme) << 4) | min(oid, 15)
    out = bytearray([precursor])
    if pad is not None:
        out.append(pad)
    if oid >= 15:
        out.append(oid - 15)
    out += encode_length(len(data)) + data + bytes([PAD_BYTE]) * (pad or 0)
    return bytes(out)


def content_parameter(oids: set[int] | frozenset[int]) -> bytes:
    """The content parameter bit map for the further elements ``oids`` (OID 3 = MSB)."""
    present = sorted(o for o in oids if o >= 3)
    nbytes = max(1, ((present[-1] - 2) + 7) // 8) if present else 1
    bits = 0
    for oid in present:
        bits |= 1 << (nbytes * 8 - 1 - (oid - 3))
    return bits.to_bytes(nbytes, "big")


def _aligned(oid: int, value: str | bytes | int, block_size: int, start: int) -> bytes:
    plain = encode_element(oid, value)
    if (start + len(plain)) % block_size == 0:
        return plain
    pad = -(start + len(plain) + 1) % block_size
    return encode_element(oid, value, pad=pad)


def _set_information(tag: ItemTag) -> str | None:
    if tag.set_part is None and tag.set_parts is None:
        return None
    part, parts = tag.set_part, tag.set_parts
    if part is None or parts is None or not 1 <= part <= parts:
        raise TagDataError("bad_value", oid=el.SET_INFORMATION, value=f"{part}/{parts}")
    width = len(str(parts))
    return f"{parts:0{width}d}{part:0{width}d}"


def elements_of(tag: ItemTag) -> dict[int, str | bytes | int]:
    """The data elements (by OID, without the content parameter) that ``tag`` writes in
    ISO 28560-2; raises :class:`TagDataError` for values part 2 cannot hold."""
    if not tag.primary_item_id:
        raise TagDataError("bad_value", oid=el.PRIMARY_ITEM_ID, value=tag.primary_item_id)
    values: dict[int, str | bytes | int] = {el.PRIMARY_ITEM_ID: tag.primary_item_id}
    if tag.owner_isil is not None:
        if not is_isil(tag.owner_isil):
            raise TagDataError("bad_value", oid=el.OWNER_INSTITUTION, value=tag.owner_isil)
        values[el.OWNER_INSTITUTION] = tag.owner_isil
    if tag.country is not None and (tag.owner_isil is None
                                    or tag.owner_isil.split("-")[0] != tag.country):
        # Part 2 has no country element: the country is the owner's ISIL prefix.
        raise TagDataError("bad_value", oid=el.OWNER_INSTITUTION, value=tag.country)
    set_info = _set_information(tag)
    if set_info is not None:
        values[el.SET_INFORMATION] = set_info
    if tag.type_of_usage is not None or tag.usage_qualifier is not None:
        usage, qualifier = tag.type_of_usage, tag.usage_qualifier or 0
        if usage is None or not 0 <= usage <= 15 or not 0 <= qualifier <= 15:
            raise TagDataError("bad_value", oid=el.TYPE_OF_USAGE, value=f"{usage}/{qualifier}")
        values[el.TYPE_OF_USAGE] = usage << 4 | qualifier
    if tag.shelf_location is not None:
        values[el.SHELF_LOCATION] = tag.shelf_location
    if tag.title is not None:
        values[el.TITLE] = tag.title
    for oid, value in tag.other.items():
        # ``other`` may carry a named element the tag held in an unusual form (a type of
        # usage as text, say), but not one the named fields already give.
        if (not isinstance(oid, int) or oid in values or oid == el.CONTENT_PARAMETER
                or not 1 <= oid <= MAX_OID):
            raise TagDataError("bad_value", oid=oid, value=value)
        values[oid] = value
    return values


def encode_part2(tag: ItemTag, *, block_size: int = 4, capacity: int | None = None) -> bytes:
    """The ISO 28560-2 user memory for ``tag``, a whole number of ``block_size`` blocks.

    The primary item identifier ends on a block boundary (padded through its offset byte),
    so the blocks holding it can be locked; the data ends with the 0x00 terminator and
    zeros fill the last block. ``capacity`` (bytes) is the tag's user memory: data that
    does not fit raises :class:`TagDataError` (reason ``capacity``); nothing is truncated.
    """
    if not 1 <= block_size <= 32:
        raise TagDataError("bad_value", oid=None, value=block_size)
    values = elements_of(tag)
    out = bytearray(_aligned(el.PRIMARY_ITEM_ID, values.pop(el.PRIMARY_ITEM_ID),
                             block_size, 0))
    out += encode_element(el.CONTENT_PARAMETER, content_parameter(set(values)))
    for oid in sorted(values):
        out += encode_element(oid, values[oid])
    out.append(0x00)
    if capacity is not None and len(out) > capacity:
        raise TagDataError("capacity", need=len(out), capacity=capacity)
    size = len(out) + (-len(out) % block_size)
    if capacity is not None:
        size = min(size, capacity)
    return bytes(out.ljust(size, b"\x00"))


def decode_part2(data: bytes, *, dsfid: int | None = None) -> ItemTag:
    """The :class:`ItemTag` in ISO 28560-2 tag memory.

    Elements the tag holds beyond the named fields are kept in ``other``; the content
    parameter is read but not checked against the elements (tags in the field differ).
    Raises :class:`TagDataError` for a blank tag, a structural fault (see
    :func:`iter_elements`), an element given twice or a missing primary item identifier.
    """
    if not any(data):
        raise TagDataError("empty")
    found: dict[int, Element] = {}
    for element in iter_elements(data):
        if element.oid in found:
            raise TagDataError("duplicate", offset=element.offset, oid=element.oid)
        found[element.oid] = element
    if el.PRIMARY_ITEM_ID not in found:
        raise TagDataError("no_item_id")
    fields: dict[str, object] = {}
    other: dict[int, bytes | str] = {}
    for oid, element in found.items():
        value = element.value
        if oid == el.PRIMARY_ITEM_ID:
            fields["primary_item_id"] = (value.decode("latin-1") if isinstance(value, bytes)
                                         else str(value))
        elif oid == el.CONTENT_PARAMETER:
            continue
        elif oid == el.OWNER_INSTITUTION and isinstance(value, str):
            fields["owner_isil"] = value
            prefix = value.split("-")[0]
            if len(prefix) == 2 and prefix.isalpha() and prefix.isupper():
                fields["country"] = prefix
        elif oid == el.SET_INFORMATION and _split_set(value):
            fields["set_parts"], fields["set_part"] = _split_set(value)
        elif oid == el.TYPE_OF_USAGE and isinstance(value, int):
            fields["type_of_usage"], fields["usage_qualifier"] = value >> 4, value & 0x0F
        elif oid == el.SHELF_LOCATION and isinstance(value, str):
            fields["shelf_location"] = value
        elif oid == el.TITLE and isinstance(value, str):
            fields["title"] = value
        elif isinstance(value, str | bytes):
            other[oid] = value
        else:
            other[oid] = element.data
    return ItemTag(model="part2", other=other, dsfid=dsfid, **fields)  # type: ignore[arg-type]


def _split_set(value: object) -> tuple[int, int] | None:
    # Set information is "M" then "N" (part N of M), both with the same number of digits.
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        return None
    if len(value) % 2 or not value:
        return None
    half = len(value) // 2
    parts, part = int(value[:half]), int(value[half:])
    if not 1 <= part <= parts:
        return None
    return parts, part
