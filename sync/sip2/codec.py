"""SIP2 messages to bytes and back, with error detection (AY sequence number, AZ checksum).

Pure code: no sockets, no clock. One call is one message without its terminator (see
:mod:`sync.sip2.framing` for cutting a byte stream into messages).

Decisions a caller may rely on:

- Character set: one per connection, ``cp850`` by default (the standard's code page),
  ``utf-8`` and ``gb18030`` as options (any ASCII-compatible Python codec is accepted).
  Command identifiers, fixed fields and the error-detection suffix are always ASCII.
- Checksum: the 16-bit sum of the *encoded bytes* from the first byte up to and including
  "AZ", negated (two's complement) and written as four upper-case hex digits. Adding the
  checksum's value to that sum gives 0 modulo 65536; that is what :func:`decode` verifies
  (it accepts lower-case hex; "AZ" followed by four characters that are not hex digits is a
  bad checksum, not a field).
- Sequence number: "AY" and one digit 0-9 just before "AZ". Resend requests (96, 97) carry
  no sequence number, only the checksum ("97AZFEF5").
- Writing: fields in the order the message class declares them, required variable fields
  always written (empty if empty), optional ones only when not ``None``, then ``extra``.
- Reading: a missing field takes its default (``""`` for required text, ``None`` for
  optional), unknown fields and repeats of single fields go to ``extra`` in order, a blank
  optional number or Y/N field reads as ``None``. Decoding is strict: bytes that are not
  valid in the connection's character set raise :class:`BadCharset`, because they mean the
  connection is configured with the wrong one.
"""

from __future__ import annotations

import codecs
import dataclasses
import re
from dataclasses import dataclass
from functools import cache

from sync.sip2.errors import (
    BadCharset,
    BadChecksum,
    BadField,
    MissingChecksum,
    Truncated,
    UnknownMessage,
)
from sync.sip2.fields import TEXT, Fixed, Var, check_text
from sync.sip2.messages import REGISTRY, RESEND_CODES, Message

DEFAULT_CHARSET = "cp850"
_CHECKSUM_TAIL = re.compile(r"AZ(.{4})\Z", re.DOTALL)
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}\Z")
_SEQUENCE_TAIL = re.compile(r"AY([0-9])\Z")
_IDENT = re.compile(r"[A-Za-z0-9]{2}\Z")


@dataclass(frozen=True)
class Decoded:
    """One message read from the wire, with its error-detection envelope.

    ``sequence`` is ``None`` when the message carried no AY; ``checksummed`` says whether
    it carried an AZ (which was then verified)."""

    message: Message
    sequence: int | None
    checksummed: bool


def checksum(data: bytes) -> str:
    """The AZ value for ``data`` (the bytes up to and including "AZ")."""
    return f"{-sum(data) & 0xFFFF:04X}"


def check_charset(charset: str) -> str:
    """The codec's canonical name, if it can carry SIP2 (ASCII-compatible)."""
    try:
        name = codecs.lookup(charset).name
    except (LookupError, TypeError):
        raise BadCharset(f"unknown character set {charset!r}") from None
    probe = "09AZ|Y 0123456789\r\n"
    try:
        ok = probe.encode(name) == probe.encode("ascii")
    except (UnicodeError, LookupError):
        ok = False
    if not ok:
        raise BadCharset(f"character set {charset!r} is not ASCII-compatible; SIP2 needs one")
    return name


@cache
def layout(cls: type[Message]) -> tuple[list[tuple[str, Fixed]], list[tuple[str, Var]]]:
    """The fixed fields and variable fields of ``cls``, in wire order."""
    fixed_fields, var_fields = [], []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get("sip")
        if isinstance(spec, Fixed):
            fixed_fields.append((f.name, spec))
        elif isinstance(spec, Var):
            var_fields.append((f.name, spec))
    return fixed_fields, var_fields


def fixed_width(cls: type[Message]) -> int:
    """Characters of the fixed part, command identifier included."""
    return 2 + sum(spec.kind.width or 0 for _, spec in layout(cls)[0])


def _encode_part(text: str, charset: str, label: str) -> bytes:
    try:
        return text.encode(charset)
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start:exc.end]
        raise BadCharset(f"{label}: {bad!r} cannot be written in {charset}") from None


def encode(message: Message, *, sequence: int | None = 0, charset: str = DEFAULT_CHARSET,
           error_detection: bool = True) -> bytes:
    """The bytes of ``message`` without a terminator. With ``error_detection``, "AY<n>"
    (except for resend requests) and "AZ<checksum>" end it."""
    cls = type(message)
    if cls.code not in REGISTRY or REGISTRY[cls.code] is not cls:
        raise UnknownMessage(f"{cls.__name__} is not a registered SIP2 message")
    where = f"{cls.name} ({cls.code})"
    fixed_fields, var_fields = layout(cls)
    head = [cls.code]
    for name, spec in fixed_fields:
        text = spec.kind.write(getattr(message, name), f"{where} {name}")
        if not text.isascii() or len(text) != spec.kind.width:
            raise BadField(f"{where} {name}: fixed fields are {spec.kind.width} ASCII "
                           f"characters, got {text!r}")
        head.append(text)
    out = bytearray("".join(head).encode("ascii"))
    for name, spec in var_fields:
        value = getattr(message, name)
        label = f"{where} {name} ({spec.ident})"
        if spec.repeat:
            if isinstance(value, str) or not isinstance(value, list | tuple):
                raise BadField(f"{label}: expected a list of texts, got {value!r}")
            values = list(value)
        elif value is None:
            if not spec.required:
                continue
            values = [""]
        else:
            values = [value]
        for one in values:
            text = TEXT.write(one, label) if spec.repeat else spec.kind.write(one, label)
            out += _encode_part(f"{spec.ident}{check_text(text, label)}|", charset, label)
    for ident, value in message.extra:
        label = f"{where} extra field {ident!r}"
        if not isinstance(ident, str) or not _IDENT.match(ident):
            raise BadField(f"{label}: a field identifier is two letters or digits")
        out += _encode_part(f"{ident}{check_text(value, label)}|", charset, label)
    if error_detection:
        if cls.code not in RESEND_CODES:
            if not isinstance(sequence, int) or isinstance(sequence, bool) \
                    or not 0 <= sequence <= 9:
                raise BadField(f"{where}: sequence number must be 0-9, got {sequence!r}")
            out += b"AY%d" % sequence
        out += b"AZ"
        out += checksum(bytes(out)).encode("ascii")
    return bytes(out)


def decode(data: bytes, *, charset: str = DEFAULT_CHARSET, require_checksum: bool = False,
           verify: bool = True) -> Decoded:
    """Read one message (without its terminator). A present AZ checksum is verified unless
    ``verify`` is false (a peer with error detection switched off may still send junk
    there); with ``require_checksum`` a missing one is an error."""
    try:
        text = bytes(data).decode(charset)
    except UnicodeDecodeError as exc:
        raise BadCharset(f"byte {exc.start} ({data[exc.start:exc.end].hex()}) of "
                         f"{bytes(data[:12])!r}... is not valid {charset}") from None
    except LookupError:
        raise BadCharset(f"unknown character set {charset!r}") from None
    code = text[:2]
    checked = _CHECKSUM_TAIL.search(text)
    if checked:
        if not _HEX4.match(checked.group(1)):
            # A corrupted digit must not turn a checksummed message into an unchecked one.
            raise BadChecksum(f"message {code!r}: AZ{checked.group(1)!r} is not four hex "
                              "digits")
        stated = int(checked.group(1), 16)
        # The checksum's four hex digits are ASCII: the bytes before them end with "AZ".
        covered = bytes(data[:-4])
        if verify and (sum(covered) + stated) & 0xFFFF:
            raise BadChecksum(f"message {code!r}: AZ{checked.group(1)} does not match the "
                              f"bytes received (expected AZ{checksum(covered)})")
        text = text[:checked.start()]
    elif require_checksum:
        raise MissingChecksum(f"message {code!r} carries no AZ checksum and error detection "
                              "is required")
    sequence = None
    numbered = _SEQUENCE_TAIL.search(text)
    if numbered:
        sequence = int(numbered.group(1))
        text = text[:numbered.start()]
    return Decoded(parse_text(text), sequence, checked is not None)


def parse_text(text: str) -> Message:
    """A message from its text without the error-detection suffix."""
    if len(text) < 2:
        raise Truncated(f"{text!r} is too short to hold a command identifier")
    cls = REGISTRY.get(text[:2])
    if cls is None:
        raise UnknownMessage(f"unknown SIP2 command identifier {text[:2]!r}")
    where = f"{cls.name} ({cls.code})"
    fixed_fields, var_fields = layout(cls)
    if len(text) < fixed_width(cls):
        raise Truncated(f"{where}: the fixed part needs {fixed_width(cls)} characters, "
                        f"got {len(text)}: {text!r}")
    values: dict[str, object] = {}
    position = 2
    for name, spec in fixed_fields:
        width = spec.kind.width or 0
        values[name] = spec.kind.read(text[position:position + width], f"{where} {name}")
        position += width
    by_ident = {spec.ident: (name, spec) for name, spec in var_fields}
    extra: list[tuple[str, str]] = []
    for piece in text[position:].split("|"):
        if not piece:
            continue
        ident, value = piece[:2], piece[2:]
        known = by_ident.get(ident)
        if known is None:
            extra.append((ident, value))
            continue
        name, spec = known
        if spec.repeat:
            values.setdefault(name, []).append(value)  # type: ignore[union-attr]
        elif name in values:
            extra.append((ident, value))
        elif spec.kind is not TEXT and not spec.required and not value.strip():
            values[name] = None
        else:
            values[name] = spec.kind.read(value, f"{where} {name} ({ident})")
    return cls(**values, extra=extra)
