"""The compaction schemes of ISO/IEC 15962 used by ISO 28560-2, and the choice between them.

A data element's precursor carries a 3-bit compaction code (:class:`Scheme`). Encoders here
take text and return bytes; decoders take bytes and return text. A decoder raises
:class:`TagDataError` (reason ``compaction``) for bytes that the scheme cannot have produced;
an encoder raises it (reason ``bad_value``) for text the scheme cannot hold.

Padding, where a scheme's bit groups do not fill the last byte:

* numeric: a 1111 nibble;
* 5-bit: 0 bits (the group 00000 is not a character of the scheme, so a whole padding
  group is recognised and dropped);
* 6-bit: the bits of 100000 (the space), so the encoder never uses 6-bit for text that
  ends in a space;
* 7-bit: 1 bits (the group 1111111 is not a character of the scheme).

The 5-bit, 6-bit and numeric padding agree with the published vectors in the tests; the
7-bit padding is inferred from the scheme's range (0x00-0x7E) and not from a vector.
"""

from __future__ import annotations

from enum import IntEnum

from drivers.iso28560.errors import TagDataError


class Scheme(IntEnum):
    """Compaction codes of the precursor (bits 7-5)."""

    APPLICATION = 0  # application-defined: each ISO 28560-2 element says what it means
    INTEGER = 1
    NUMERIC = 2
    BIT5 = 3  # uppercase: 0x41-0x5F
    BIT6 = 4  # uppercase, digits, punctuation: 0x20-0x5F
    BIT7 = 5  # ISO/IEC 646 (US-ASCII) 0x00-0x7E
    OCTET = 6  # ISO/IEC 8859-1, unaltered
    UTF8 = 7  # ISO/IEC 10646 as UTF-8, for text outside ISO/IEC 8859-1


SCHEME_NAMES = {
    Scheme.APPLICATION: "application-defined",
    Scheme.INTEGER: "integer",
    Scheme.NUMERIC: "numeric",
    Scheme.BIT5: "5-bit",
    Scheme.BIT6: "6-bit",
    Scheme.BIT7: "7-bit",
    Scheme.OCTET: "octet string",
    Scheme.UTF8: "UTF-8",
}

# Integer compaction is used for at most 19 digits: the largest such number fits 8 bytes.
MAX_INTEGER_DIGITS = 19
MAX_INTEGER_BYTES = 8

# The 6-bit table of ISO/IEC 15962 is not plain ASCII at 0x21-0x27 (some editions put control
# functions there); the encoder avoids those characters so every reader agrees.
_SIX_BIT_AVOID = frozenset(chr(c) for c in range(0x21, 0x28))


def _bad(scheme: Scheme) -> TagDataError:
    return TagDataError("compaction", scheme=SCHEME_NAMES[scheme])


def _refuse(value: str, scheme: Scheme) -> TagDataError:
    return TagDataError("bad_value", value=value, oid=None, scheme=SCHEME_NAMES[scheme])


def pack_bits(groups: list[tuple[int, int]], pad: str) -> bytes:
    """Pack (value, width) bit groups, most significant bit first, padding the last byte with
    the leading bits of ``pad`` (a string of '0'/'1')."""
    acc = 0
    nbits = 0
    for value, width in groups:
        acc = (acc << width) | value
        nbits += width
    fill = -nbits % 8
    if fill:
        acc = (acc << fill) | int(pad[:fill], 2)
        nbits += fill
    return acc.to_bytes(nbits // 8, "big")


def unpack_bits(data: bytes, width: int) -> list[int]:
    """Every whole ``width``-bit group of ``data``, most significant bit first."""
    acc = int.from_bytes(data, "big")
    total = len(data) * 8
    count = total // width
    shift = total - width
    mask = (1 << width) - 1
    return [(acc >> (shift - i * width)) & mask for i in range(count)]


def _drop_padding_group(groups: list[int], width: int, nbytes: int, pad_value: int) -> None:
    # A whole group fits in the padding only when fewer than 8 bits would remain without it.
    if groups and groups[-1] == pad_value and nbytes * 8 - (len(groups) - 1) * width < 8:
        groups.pop()


def encode_integer(value: str) -> bytes:
    """Digits without a leading zero (or "0"), at most 19, as a big-endian binary number."""
    if not (value.isascii() and value.isdigit()) or len(value) > MAX_INTEGER_DIGITS or (
            len(value) > 1 and value[0] == "0"):
        raise _refuse(value, Scheme.INTEGER)
    number = int(value)
    return number.to_bytes(max(1, (number.bit_length() + 7) // 8), "big")


def decode_integer(data: bytes) -> str:
    if not 1 <= len(data) <= MAX_INTEGER_BYTES:
        raise _bad(Scheme.INTEGER)
    return str(int.from_bytes(data, "big"))


def encode_numeric(value: str) -> bytes:
    """Digits, two to a byte; an odd count ends with the nibble 1111."""
    if not (value.isascii() and value.isdigit()):
        raise _refuse(value, Scheme.NUMERIC)
    return pack_bits([(int(c), 4) for c in value], "1111")


def decode_numeric(data: bytes) -> str:
    nibbles = unpack_bits(data, 4)
    if nibbles and nibbles[-1] == 0xF:
        nibbles.pop()
    if any(n > 9 for n in nibbles):
        raise _bad(Scheme.NUMERIC)
    return "".join(str(n) for n in nibbles)


def encode_5bit(value: str) -> bytes:
    """Characters 0x41-0x5F (A-Z [ \\ ] ^ _), five bits each (the low bits of the code)."""
    if any(not 0x41 <= ord(c) <= 0x5F for c in value):
        raise _refuse(value, Scheme.BIT5)
    return pack_bits([(ord(c) & 0x1F, 5) for c in value], "0000000")


def decode_5bit(data: bytes) -> str:
    groups = unpack_bits(data, 5)
    _drop_padding_group(groups, 5, len(data), 0)
    if 0 in groups:
        raise _bad(Scheme.BIT5)
    return "".join(chr(0x40 | g) for g in groups)


def encode_6bit(value: str) -> bytes:
    """Characters 0x20-0x5F (except 0x21-0x27), six bits each; not ending in a space."""
    if any(not 0x20 <= ord(c) <= 0x5F or c in _SIX_BIT_AVOID for c in value) or (
            value.endswith(" ")):
        raise _refuse(value, Scheme.BIT6)
    return pack_bits([(ord(c) & 0x3F, 6) for c in value], "100000")


def decode_6bit(data: bytes) -> str:
    groups = unpack_bits(data, 6)
    _drop_padding_group(groups, 6, len(data), 0b100000)
    return "".join(chr(g + 0x40) if g < 0x20 else chr(g) for g in groups)


def encode_7bit(value: str) -> bytes:
    """Characters 0x00-0x7E, seven bits each."""
    if any(ord(c) > 0x7E for c in value):
        raise _refuse(value, Scheme.BIT7)
    return pack_bits([(ord(c), 7) for c in value], "1111111")


def decode_7bit(data: bytes) -> str:
    groups = unpack_bits(data, 7)
    _drop_padding_group(groups, 7, len(data), 0x7F)
    if 0x7F in groups:
        raise _bad(Scheme.BIT7)
    return "".join(chr(g) for g in groups)


def encode_octet(value: str) -> bytes:
    """ISO/IEC 8859-1, one byte a character."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        raise _refuse(value, Scheme.OCTET) from None


def decode_octet(data: bytes) -> str:
    return data.decode("latin-1")


def encode_utf8(value: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        raise _refuse(value, Scheme.UTF8) from None


def decode_utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad(Scheme.UTF8) from None


ENCODERS = {
    Scheme.INTEGER: encode_integer,
    Scheme.NUMERIC: encode_numeric,
    Scheme.BIT5: encode_5bit,
    Scheme.BIT6: encode_6bit,
    Scheme.BIT7: encode_7bit,
    Scheme.OCTET: encode_octet,
    Scheme.UTF8: encode_utf8,
}

DECODERS = {
    Scheme.INTEGER: decode_integer,
    Scheme.NUMERIC: decode_numeric,
    Scheme.BIT5: decode_5bit,
    Scheme.BIT6: decode_6bit,
    Scheme.BIT7: decode_7bit,
    Scheme.OCTET: decode_octet,
    Scheme.UTF8: decode_utf8,
}

_TRY_ORDER = (Scheme.INTEGER, Scheme.NUMERIC, Scheme.BIT5, Scheme.BIT6, Scheme.BIT7)


def compact(value: str) -> tuple[Scheme, bytes]:
    """The scheme ISO/IEC 15962 would pick for ``value``, and the compacted bytes.

    Text outside ISO/IEC 8859-1 is UTF-8. Otherwise a compaction is used only when it is
    shorter than the plain octet string (so "BA" stays two octets); among equally short
    ones the earlier of integer, numeric, 5-bit, 6-bit, 7-bit wins.
    """
    try:
        plain = value.encode("latin-1")
    except UnicodeEncodeError:
        return Scheme.UTF8, encode_utf8(value)
    best: tuple[Scheme, bytes] = (Scheme.OCTET, plain)
    for scheme in _TRY_ORDER:
        try:
            packed = ENCODERS[scheme](value)
        except TagDataError:
            continue
        if len(packed) < len(best[1]):
            best = (scheme, packed)
    return best


def decompact(scheme: int, data: bytes) -> str:
    """Text from ``data`` compacted with ``scheme`` (not for application-defined data)."""
    decoder = DECODERS.get(Scheme(scheme)) if 0 <= scheme <= 7 else None
    if decoder is None:
        raise TagDataError("compaction", scheme=str(scheme))
    return decoder(data)
