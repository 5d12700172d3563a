"""FEIG ISO host frames as byte strings: CRC, framing, every command this project sends and every
reply it reads, the byte order of block data, and a fuzz of the frame parser. No port.

Published vectors used here (facts, copied as hex):

- CRC-16/MCRF4XX check value 0x6F91 for b"123456789": the CRC RevEng catalogue
  (reveng.sourceforge.net/crc-catalogue/16.htm#crc.cat.crc-16-mcrf4xx). The FEIG manuals'
  C example (poly 0x8408, preset 0xFFFF, no final XOR) is exactly that CRC.
- Frames from the unit tests of Amarok79/InlayTester.Drivers.FeigReader (MIT, a C# FEIG
  driver): [0x65] and [0x80] requests and a [0x65] reply, standard and advanced.
- A FEIG ID ISC.LR1002 trace posted in the ST community thread "Error 0x12 when writing
  multiple blocks on ST25DV16KC" (2023): inventory, its two-tag reply, a Write Multiple Blocks
  request and its ISO-error reply.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.errors import FrameError
from drivers.feig_frames import Frame, FrameParser, build_frame, crc16, encode, parse
from drivers.feig_iso import (
    EAS_ALARM,
    RESET_EAS,
    RESET_TO_READY,
    SELECT,
    SET_EAS,
    STAY_QUIET,
    BlockOrder,
    addressed_request,
    decode_blocks,
    decode_inventory,
    decode_software_version,
    decode_system_info,
    inventory_request,
    nxp_request,
    read_blocks_request,
    system_info_request,
    write_afi_request,
    write_blocks_request,
)

SOAK = bool(os.environ.get("KIOSK_SOAK"))
FUZZ_EXAMPLES = 20_000 if SOAK else 2_000
UID = bytes.fromhex("E0 04 01 00 00 12 34 56")


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# -- CRC and published frames ------------------------------------------------------------------

def test_crc_check_value_from_the_crc_catalogue():
    assert crc16(b"123456789") == 0x6F91


def test_a_frame_with_its_crc_appended_leaves_zero():
    frame = h("05 FF 65 E5 CB")
    assert crc16(frame[:-2]) == 0xCBE5
    assert crc16(frame) == 0


@pytest.mark.parametrize(("address", "command", "data", "advanced", "wire"), [
    (0xFF, 0x65, b"", False, "05 FF 65 E5 CB"),
    (0xFF, 0x65, b"", True, "02 00 07 FF 65 6E 61"),
    (0x12, 0x80, b"\x07", False, "06 12 80 07 E5 80"),
    (0x12, 0x80, b"\x07", True, "02 00 08 12 80 07 A0 2D"),
    (0xFF, 0xB0, b"\x01\x00", True, "02 00 09 FF B0 01 00 18 43"),
])
def test_published_requests(address, command, data, advanced, wire):
    assert build_frame(address, command, data, advanced=advanced) == h(wire)
    assert parse(h(wire), "request") == Frame(address, command, data, advanced=advanced)


@pytest.mark.parametrize("wire", ["0D 00 65 00 03 03 00 44 53 0D 30 33 09",
                                  "02 00 0F 00 65 00 03 03 00 44 53 0D 30 74 69"])
def test_published_software_version_reply(wire):
    frame = parse(h(wire))
    assert (frame.address, frame.command, frame.status) == (0x00, 0x65, 0x00)
    version = decode_software_version(frame.data)
    assert version.firmware == "3.3.0"
    assert (version.hw_type, version.sw_type, version.tr_types) == (0x44, 0x53, 0x0D30)
    assert encode(frame) == h(wire)


def test_published_inventory_reply_with_two_tags():
    frame = parse(h("02 00 1D 00 B0 00 02 03 00 E0 02 51 00 02 56 4A A4 03 00 E0 02 23 00 18 "
                    "89 2B 09 E3 00"))
    assert frame.advanced and frame.status == 0x00
    tags = decode_inventory(frame.data)
    assert [t.uid.hex() for t in tags] == ["e002510002564aa4", "e002230018892b09"]
    assert {t.dsfid for t in tags} == {0} and {t.tr_type for t in tags} == {0x03}


def test_published_write_request_has_every_block_reversed():
    """The LR1002 trace writes tag bytes 01 02 03 04 | 05 00 60 70 | ... as 04 03 02 01 | ...:
    the driver's REVERSED order reproduces it byte for byte from memory in tag order."""
    wire = h("02 00 34 FF B0 24 01 E0 02 51 00 02 56 4A A4 00 08 04 04 03 02 01 70 60 00 05 0B "
             "A0 90 80 0F 0E 0D 0C 13 12 11 10 00 16 15 14 00 00 00 00 00 00 00 00 18 18")
    memory = h("01 02 03 04 05 00 60 70 80 90 A0 0B 0C 0D 0E 0F 10 11 12 13 14 15 16 00") + bytes(8)
    uid = h("E0 02 51 00 02 56 4A A4")
    data = write_blocks_request(uid, 0, memory, 4, BlockOrder.REVERSED)
    assert build_frame(0xFF, 0xB0, data, advanced=True) == wire


def test_published_iso_error_reply():
    frame = parse(h("02 00 0A 00 B0 95 12 00 94 29"))
    assert frame.status == 0x95
    assert frame.data == h("12 00")  # ISO error 0x12 (block locked), DB-ADR-E block 0


# -- every command and reply this project uses, byte for byte ----------------------------------

REQUESTS = {
    "ping": (0x52, b"\x00", "06 FF 52 00 0F 6E"),
    "version": (0x65, b"", "05 FF 65 E5 CB"),
    "rf_reset": (0x69, b"", "05 FF 69 89 01"),
    "rf_off": (0x6A, b"\x00", "06 FF 6A 00 6D 16"),
    "rf_on": (0x6A, b"\x01", "06 FF 6A 01 E4 07"),
    "inventory": (0xB0, inventory_request(), "07 FF B0 01 00 1C 56"),
    "inventory_more": (0xB0, inventory_request(more=True), "07 FF B0 01 80 14 D2"),
    "inventory_afi": (0xB0, inventory_request(afi=0xC2), "08 FF B0 01 10 C2 BD 97"),
    "read": (0xB0, read_blocks_request(UID, 0, 8),
             "11 FF B0 23 01 E0 04 01 00 00 12 34 56 00 08 5A 74"),
    "read_sec": (0xB0, read_blocks_request(UID, 2, 1, security=True),
                 "11 FF B0 23 09 E0 04 01 00 00 12 34 56 02 01 81 66"),
    "write": (0xB0, write_blocks_request(UID, 4, h("01 02 03 04 05 06 07 08"), 4,
                                         BlockOrder.REVERSED),
              "1A FF B0 24 01 E0 04 01 00 00 12 34 56 04 02 04 04 03 02 01 08 07 06 05 7F 47"),
    "write_afi": (0xB0, write_afi_request(UID, 0xC2),
                  "10 FF B0 27 01 E0 04 01 00 00 12 34 56 C2 AE 20"),
    "system_info": (0xB0, system_info_request(UID),
                    "0F FF B0 2B 01 E0 04 01 00 00 12 34 56 BD 12"),
    "select": (0xB0, addressed_request(SELECT, UID),
               "0F FF B0 25 01 E0 04 01 00 00 12 34 56 46 93"),
    "reset_to_ready": (0xB0, addressed_request(RESET_TO_READY, UID),
                       "0F FF B0 26 01 E0 04 01 00 00 12 34 56 2F E7"),
    "stay_quiet": (0xB0, addressed_request(STAY_QUIET, UID),
                   "0F FF B0 02 01 E0 04 01 00 00 12 34 56 06 FB"),
    "set_eas": (0xB1, nxp_request(SET_EAS, UID),
                "10 FF B1 04 A2 01 E0 04 01 00 00 12 34 56 50 0A"),
    "reset_eas": (0xB1, nxp_request(RESET_EAS, UID),
                  "10 FF B1 04 A3 01 E0 04 01 00 00 12 34 56 77 26"),
    "eas_alarm": (0xB1, nxp_request(EAS_ALARM, UID),
                  "10 FF B1 04 A5 01 E0 04 01 00 00 12 34 56 A5 CE"),
}


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_request_bytes(name):
    command, data, wire = REQUESTS[name]
    assert build_frame(0xFF, command, data) == h(wire)
    assert parse(h(wire), "request") == Frame(0xFF, command, data)


def test_inventory_reply_and_more_data():
    done = parse(h("11 00 B0 00 01 03 00 E0 04 01 00 00 12 34 56 74 84"))
    more = parse(h("11 00 B0 94 01 03 00 E0 04 01 00 00 12 34 56 1A 3A"))
    assert (done.status, more.status) == (0x00, 0x94)
    assert decode_inventory(done.data) == decode_inventory(more.data)
    assert decode_inventory(done.data)[0].uid == UID
    assert parse(h("06 00 B0 01 5C 63")).status == 0x01  # no tag: no data at all


def test_read_reply_gives_memory_in_tag_order():
    frame = parse(h("12 00 B0 00 02 04 00 04 03 02 01 00 08 07 06 05 B2 A0"))
    memory, security, size = decode_blocks(frame.data, BlockOrder.REVERSED)
    assert memory == h("01 02 03 04 05 06 07 08") and security == [0, 0] and size == 4
    as_stored, _, _ = decode_blocks(frame.data, BlockOrder.AS_STORED)
    assert as_stored == h("04 03 02 01 08 07 06 05")


def test_system_info_reply():
    frame = parse(h("13 00 B0 00 00 E0 04 01 00 00 12 34 56 07 03 1B 01 38 BC"))
    info = decode_system_info(frame.data)
    assert (info.uid, info.dsfid, info.afi) == (UID, 0x00, 0x07)
    assert (info.block_size, info.block_count, info.ic_ref) == (4, 28, 0x01)
    assert info.memory_size == 112


def test_iso_error_and_eas_alarm_replies():
    assert parse(h("07 00 B0 95 12 60 DE")).data == b"\x12"
    eas = parse(h("26 00 B1 00 " + bytes(range(0x10, 0x30)).hex() + " 48 6D"))
    assert eas.command == 0xB1 and eas.status == 0 and len(eas.data) == 32


@pytest.mark.parametrize("data", [b"", h("02 03 00") + UID, h("01 07 00") + UID,
                                  h("01 03 00") + UID + b"\x00"])
def test_malformed_inventory_data_is_a_frame_error(data):
    with pytest.raises(FrameError):
        decode_inventory(data)


@pytest.mark.parametrize("data", [b"\x02", h("02 04 00 01 02 03 04"), h("01 00 00")])
def test_malformed_read_data_is_a_frame_error(data):
    with pytest.raises(FrameError):
        decode_blocks(data, BlockOrder.REVERSED)


def test_long_frames_switch_to_the_advanced_format():
    assert build_frame(0xFF, 0xB0, bytes(250))[0] == 255  # still fits the standard frame
    long = build_frame(0x00, 0xB0, bytes(300), status=0)
    assert long[:3] == h("02 01 34") and len(long) == 0x134  # 3 + 3 + 300 + 2 bytes
    assert parse(long).data == bytes(300)
    with pytest.raises(ValueError):
        build_frame(0xFF, 0xB0, bytes(300), advanced=False)


def test_parser_reports_bad_frames_and_names_the_device():
    parser = FrameParser("reply", "<FeigReader /dev/ttyUSB0 addr 0xFF>")
    with pytest.raises(FrameError, match=r"ttyUSB0.*bad CRC"):
        parser.feed(h("06 00 B0 00 D5 73"))
    assert parser.pending == 0
    with pytest.raises(FrameError, match="length 3"):
        parser.feed(b"\x03")
    with pytest.raises(FrameError, match="advanced frame length 4"):
        parser.feed(h("02 00 04"))
    assert parser.feed(h("06 00 B0 00 D5 72 06 00 B0 01 5C 63")) == [
        Frame(0, 0xB0, b"", status=0), Frame(0, 0xB0, b"", status=1)]


def test_parser_asks_for_exactly_the_bytes_it_needs():
    parser = FrameParser("reply")
    wire = h("02 00 0A 00 B0 95 12 00 94 29")
    assert parser.needed() == 1
    assert parser.feed(wire[:1]) == [] and parser.needed() == 2
    assert parser.feed(wire[1:3]) == [] and parser.needed() == 7
    assert parser.feed(wire[3:]) == [Frame(0, 0xB0, h("12 00"), status=0x95, advanced=True)]


# -- properties and fuzz ---------------------------------------------------------------------

frames = st.builds(
    Frame,
    address=st.integers(0, 255), command=st.integers(0, 255),
    data=st.binary(max_size=400),
    status=st.one_of(st.none(), st.integers(0, 255)),
    advanced=st.booleans(),
).filter(lambda f: f.advanced or len(f.data) <= 249)


def _split(wire: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(wire) + 1) for c in cuts})
    return [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]


@settings(max_examples=300, deadline=None)
@given(frame=frames, cuts=st.lists(st.integers(0, 2000), max_size=6))
def test_build_then_parse_round_trips_in_any_split(frame, cuts):
    wire = encode(frame)
    parser = FrameParser("request" if frame.status is None else "reply")
    got = [f for piece in _split(wire, cuts) for f in parser.feed(piece)]
    assert got == [frame] and parser.pending == 0


@pytest.mark.soak
@settings(max_examples=FUZZ_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["reply", "request"]),
       chunks=st.lists(st.binary(max_size=64), max_size=12))
def test_fuzz_random_bytes_raise_only_frame_errors(kind, chunks):
    parser = FrameParser(kind)
    for chunk in chunks:
        try:
            for frame in parser.feed(chunk):
                assert crc16(encode(frame)) == 0  # anything accepted is a well-formed frame
        except FrameError:
            assert parser.pending == 0


@pytest.mark.soak
@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(frame=frames.filter(lambda f: f.status is not None), cuts=st.lists(st.integers(0, 999)),
       position=st.integers(0, 10_000), flip=st.integers(1, 255))
def test_fuzz_a_corrupted_byte_is_always_caught(frame, cuts, position, flip):
    """Past the length field, CRC-16 catches every error burst up to 16 bits long."""
    wire = bytearray(encode(frame))
    header = 3 if frame.advanced else 1
    wire[header + position % (len(wire) - header)] ^= flip
    parser = FrameParser("reply")
    with pytest.raises(FrameError, match="bad CRC"):
        for piece in _split(bytes(wire), cuts):
            parser.feed(piece)
