"""Properties of the SIP2 codec and framing, and fuzzing of the parser.

- Every message type, with any values it can hold, in each character set: encode then
  decode gives the same message and sequence number, also when the byte stream is cut into
  random pieces and terminated with CR or CR LF.
- Any bytes at all: decoding raises nothing but the Sip2Error family.
- One corrupted byte in a checksummed message is always caught (a 16-bit sum notices any
  single-byte change).

``make soak`` (KIOSK_SOAK=1) runs ten times as many examples.
"""

from __future__ import annotations

import contextlib
import os
import string
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.sip2 import codec
from sync.sip2.errors import Sip2Error, Sip2FormatError
from sync.sip2.fields import SUMMARY_ITEMS, TEXT, Date, Flag, FlagSet, Number, Summary, Text
from sync.sip2.framing import CR, CRLF, MessageReader, frame
from sync.sip2.messages import REGISTRY

SOAK = bool(os.environ.get("KIOSK_SOAK"))
FUZZ_EXAMPLES = 20_000 if SOAK else 2_000
ROUND_TRIP_EXAMPLES = 1_000 if SOAK else 60
CHARSETS = ("cp850", "utf-8", "gb18030")
FORBIDDEN = "|\r\n"


def _encodable(charset: str):
    def ok(ch: str) -> bool:
        try:
            ch.encode(charset)
        except UnicodeEncodeError:
            return False
        return ch not in FORBIDDEN
    return ok


def texts(charset: str, **kwargs):
    alphabet = st.characters(exclude_categories=("Cs",)).filter(_encodable(charset))
    return st.text(alphabet, **kwargs)


FIXED_TEXT = st.sampled_from(string.ascii_letters + string.digits + " .-")
DATES = st.one_of(
    st.none(),
    st.datetimes(datetime(1000, 1, 1), datetime(9999, 12, 31, 23, 59, 59)).map(
        lambda d: d.replace(microsecond=0)),
    st.datetimes(datetime(1000, 1, 2), datetime(9999, 12, 30)).map(
        lambda d: d.replace(microsecond=0, tzinfo=UTC)),
)


def value_of(kind, charset: str, required: bool, fixed: bool):
    if isinstance(kind, Date):
        return DATES
    if isinstance(kind, Flag):
        return st.one_of(st.none(), st.booleans()) if kind.unknown or not fixed \
            else st.booleans()
    if isinstance(kind, Number):
        top = 10 ** kind.width - 1 if kind.width else 10 ** 12
        return st.one_of(st.none(), st.integers(0, top))
    if isinstance(kind, FlagSet):
        return st.frozensets(st.sampled_from(kind.names))
    if isinstance(kind, Summary):
        return st.one_of(st.none(), st.sampled_from(SUMMARY_ITEMS))
    if isinstance(kind, Text) and kind.width is not None:
        return st.text(FIXED_TEXT, min_size=kind.width, max_size=kind.width)
    assert kind is TEXT, kind
    value = texts(charset, max_size=12)
    return value if required else st.one_of(st.none(), value)


@st.composite
def messages(draw, charset: str):
    cls = draw(st.sampled_from(sorted(REGISTRY.values(), key=lambda c: c.code)))
    fixed_fields, var_fields = codec.layout(cls)
    values = {name: draw(value_of(spec.kind, charset, True, True))
              for name, spec in fixed_fields}
    for name, spec in var_fields:
        if spec.repeat:
            values[name] = draw(st.lists(texts(charset, max_size=8), max_size=3))
        else:
            values[name] = draw(value_of(spec.kind, charset, spec.required, False))
    known = {spec.ident for _, spec in var_fields} | {"AY", "AZ"}
    idents = st.text(string.ascii_uppercase + string.digits, min_size=2, max_size=2).filter(
        lambda i: i not in known)
    values["extra"] = draw(st.lists(st.tuples(idents, texts(charset, max_size=8)),
                                    max_size=2))
    return cls(**values)


def _split(wire: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(wire) + 1) for c in cuts})
    return [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]


@pytest.mark.parametrize("charset", CHARSETS)
@settings(max_examples=ROUND_TRIP_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_message_round_trips(charset, data):
    message = data.draw(messages(charset))
    sequence = data.draw(st.integers(0, 9))
    wire = codec.encode(message, sequence=sequence, charset=charset)
    decoded = codec.decode(wire, charset=charset, require_checksum=True)
    assert decoded.message == message
    if message.code not in ("96", "97"):
        assert decoded.sequence == sequence
    bare = codec.encode(message, charset=charset, error_detection=False)
    assert codec.decode(bare, charset=charset).message == message


@pytest.mark.parametrize("charset", CHARSETS)
@settings(max_examples=ROUND_TRIP_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), terminator=st.sampled_from([CR, CRLF]),
       cuts=st.lists(st.integers(0, 5_000), max_size=8))
def test_a_stream_of_messages_cut_anywhere_reads_back_in_order(charset, data, terminator,
                                                                 cuts):
    sent = data.draw(st.lists(messages(charset), min_size=1, max_size=4))
    stream = b"".join(frame(codec.encode(m, sequence=i % 10, charset=charset), terminator)
                      for i, m in enumerate(sent))
    reader = MessageReader()
    got = [raw for piece in _split(stream, cuts) for raw in reader.feed(piece)]
    assert [codec.decode(raw, charset=charset).message for raw in got] == sent
    assert reader.pending == 0


@pytest.mark.soak
@pytest.mark.parametrize("charset", CHARSETS)
@settings(max_examples=FUZZ_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(
    st.binary(max_size=200),
    # Mostly-valid starts reach deeper into the parser than pure noise does.
    st.tuples(st.sampled_from(sorted(REGISTRY)), st.binary(max_size=120)).map(
        lambda t: t[0].encode() + t[1]),
    st.tuples(st.sampled_from(sorted(REGISTRY)),
              st.text(string.printable, max_size=120)).map(
        lambda t: (t[0] + t[1]).encode()),
))
def test_fuzz_any_bytes_raise_only_sip2_errors(charset, data):
    try:
        decoded = codec.decode(data, charset=charset)
    except Sip2Error:
        return
    assert REGISTRY[decoded.message.code] is type(decoded.message)
    assert decoded.sequence is None or 0 <= decoded.sequence <= 9
    # Reading is lenient (odd field identifiers land in ``extra``), writing is strict: writing
    # back what was read either works or is refused with a Sip2Error, nothing else.
    with contextlib.suppress(Sip2Error):
        codec.encode(decoded.message, sequence=decoded.sequence or 0, charset=charset)


@pytest.mark.soak
@settings(max_examples=FUZZ_EXAMPLES // 5, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), charset=st.sampled_from(CHARSETS), position=st.integers(0, 10_000),
       flip=st.integers(1, 255))
def test_fuzz_one_corrupted_byte_is_always_caught(data, charset, position, flip):
    message = data.draw(messages(charset))
    wire = bytearray(codec.encode(message, sequence=3, charset=charset))
    wire[position % len(wire)] ^= flip
    with pytest.raises(Sip2FormatError):
        codec.decode(bytes(wire), charset=charset, require_checksum=True)


@pytest.mark.soak
@settings(max_examples=FUZZ_EXAMPLES // 4, deadline=None)
@given(chunks=st.lists(st.binary(max_size=80), max_size=12), limit=st.integers(2, 64))
def test_fuzz_the_reader_never_holds_more_than_its_limit(chunks, limit):
    reader = MessageReader(max_length=limit)
    for chunk in chunks:
        try:
            got = reader.feed(chunk)
        except Sip2FormatError:
            got = reader.feed(b"")
        assert all(0 < len(m) <= limit and b"\r" not in m and b"\n" not in m for m in got)
        assert reader.pending <= limit
