"""ISO 28560-2/-3 tag data (drivers.iso28560): published vectors, real tags, round trips, fuzz.

Where each vector comes from is said next to it. "lainuri" is Hypernova-Oy/lainuri (a
Koha self-service kiosk used in Finnish libraries): its tests transcribe the annex examples
of ISO 28560-3 and ISO/IEC 15962 and hold dumps of real tags from a Finnish library.
"""

from __future__ import annotations

import contextlib
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.iso28560 import (
    DSFID_PART2,
    DSFID_PART3,
    REASONS,
    ItemTag,
    Scheme,
    TagDataError,
    basic_block_crc,
    compact,
    crc16,
    decode,
    decode_isil,
    decode_part2,
    decode_part3,
    decompact,
    dsfid_for,
    encode,
    encode_element,
    encode_isil,
    encode_part2,
    encode_part3,
    is_isil,
    iter_elements,
)
from drivers.iso28560 import compaction as cp
from drivers.iso28560.part2 import content_parameter, encode_length
from kiosk.messages import texts

SOAK = bool(os.environ.get("KIOSK_SOAK"))
FUZZ = settings(max_examples=50_000 if SOAK else 2_000, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
PROPERTY = settings(max_examples=5_000 if SOAK else 300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# ISO 28560-3:2011 annex B.1, "encoding of truncated basic block" (as transcribed in
# lainuri t/iso28560.py): item 1000000056, 1 of 1, for circulation, DK-718500.
ANNEX_B1 = bytes.fromhex(
    "11 01 01 31303030303030303536 000000000000 98A4 444B373138353030 000000")
# ISO 28560-3:2011 annex B.2, "basic block and structured extension blocks" (same source):
# library extension block (media format 1, book) and acquisition extension block
# (supplier Bogvognen, product 1234567890, no order number, invoice a789656c), end byte.
ANNEX_B2 = (bytes.fromhex("11 01 01 31303030303030313336 000000000000 3615"
                          "444B373138353030 0000000000")
            + bytes.fromhex("05 0100 05 01")
            + bytes.fromhex("22 0200 71") + b"Bogvognen\x001234567890\x00\x00a789656c"
            + b"\x00")
# A real ISO 28560-3 tag of a Finnish library (lainuri t/iso28560.py, "mv"): 34-byte basic
# block, then a vendor extension block (id 0x65) the kiosk does not know.
FINNISH_PART3 = (b"\x11\x01\x011620154429\x00\x00\x00\x00\x00\x00\xc4\xcfFIMamk-M\x00\x00\x00"
                 b"\x00\x00\x06e\x00vta" + bytes(44))
# libdanrfid (GallusMax/libdanrfid, DDMDataTest): a Danish data model tag, CRC 0x3E51.
DANISH_DDM = bytes.fromhex("11010131313232333334340000000000000000513e4445373035000000000000")
# A real ISO 28560-2 tag of the same Finnish library (lainuri t/iso28560_2.py, DSFID 06):
# OID 1 integer 1620168259 padded to 8 bytes, content parameter A8 (OIDs 3, 5, 7),
# type of usage 10, ONIX media format "BA", owner ISIL FI-Mamk-M in ISIL compaction.
FINNISH_PART2 = bytes.fromhex(
    "9101046091ce4380 0201a8 050110 67024241 03073240de05ab075b 00") + bytes(64)
# ISO/IEC 15962 annex P example as transcribed in lainuri t/iso15692_annex_p.py. The
# transcription's OID 17 element (7F 02 02 54 1C) says UTF-8 but holds 5-bit "JPN", and
# its OID 1 value does not match the bytes; only the unambiguous elements are asserted.
ANNEX_P = bytes.fromhex("910508002BDC545E14D64E8080808080 C70005042C726198 19040132915F"
                        " 7F0202541C 6E03A2B380")


# --- CRC ---------------------------------------------------------------------------------

def test_crc_check_value_of_the_danish_data_model():
    # "RFID Data model for libraries" (Danish Standard S24/u4, doc 067), CRC section.
    assert crc16(b"RFID tag data model") == 0x1AEE


def test_crc_is_crc16_ccitt_false():
    # The CRC catalogue's check value for CRC-16/CCITT-FALSE (alias CRC-16/IBM-3740).
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"56789", crc16(b"1234")) == 0x29B1


def test_crc_is_stored_least_significant_byte_first():
    assert basic_block_crc(ANNEX_B1) == 0xA498
    assert ANNEX_B1[19:21] == bytes([0x98, 0xA4])
    assert basic_block_crc(ANNEX_B2[:34]) == 0x1536
    assert basic_block_crc(DANISH_DDM) == 0x3E51


def test_a_32_byte_block_counts_its_missing_bytes_as_zero():
    assert basic_block_crc(ANNEX_B1[:32]) == basic_block_crc(ANNEX_B1[:32] + b"\0\0")


# --- ISO 28560-3 -------------------------------------------------------------------------

def test_part3_annex_b1_decodes():
    for data in (ANNEX_B1, ANNEX_B1[:32]):
        tag = decode(data)
        assert tag.model == "part3"
        assert (tag.primary_item_id, tag.owner_isil, tag.country) == ("1000000056",
                                                                      "DK-718500", "DK")
        assert (tag.set_part, tag.set_parts, tag.type_of_usage, tag.version) == (1, 1, 1, 1)


def test_part3_annex_b1_encodes_byte_for_byte():
    tag = ItemTag("1000000056", model="part3", owner_isil="DK-718500", type_of_usage=1,
                  set_part=1, set_parts=1)
    assert encode_part3(tag) == ANNEX_B1[:32]
    assert encode_part3(tag, capacity=32) == ANNEX_B1[:32]


def test_part3_annex_b2_round_trips_byte_for_byte():
    tag = decode(ANNEX_B2, dsfid=DSFID_PART3)
    assert tag.primary_item_id == "1000000136"
    assert tag.other == {19: b"\x01", 9: "Bogvognen", 18: "1234567890", 21: "a789656c"}
    assert encode_part3(tag, block_size=1) == ANNEX_B2


def test_part3_real_tag_with_vendor_extension_block():
    tag = decode(FINNISH_PART3)
    assert (tag.primary_item_id, tag.owner_isil, tag.model) == ("1620154429", "FI-Mamk-M",
                                                                "part3")


def test_danish_data_model_tag():
    tag = decode(DANISH_DDM)
    assert (tag.primary_item_id, tag.country, tag.owner_isil) == ("11223344", "DE", "DE-705")


def test_part3_bad_crc_is_refused_with_both_values():
    damaged = bytearray(ANNEX_B1)
    damaged[5] ^= 0x01
    with pytest.raises(TagDataError) as exc:
        decode(bytes(damaged))
    assert exc.value.reason == "crc"
    assert exc.value.params["stored"] == "0xA498"
    assert exc.value.message_key == "tag.error.crc"


def test_part3_damaged_extension_block():
    damaged = bytearray(ANNEX_B2)
    damaged[40] ^= 0xFF  # inside the acquisition block: its XOR no longer checks
    with pytest.raises(TagDataError) as exc:
        decode_part3(bytes(damaged))
    assert (exc.value.reason, exc.value.params["offset"]) == ("extension", 39)


def test_part3_refuses_what_does_not_fit():
    base = ItemTag("1", model="part3")
    cases = {
        "too_long": base.with_changes(primary_item_id="1" * 17),
        "bad_value": base.with_changes(owner_isil="ZDB-1"),  # no country prefix
    }
    for reason, tag in cases.items():
        with pytest.raises(TagDataError) as exc:
            encode_part3(tag)
        assert exc.value.reason == reason
    for tag in (base.with_changes(usage_qualifier=2), base.with_changes(other={99: "x"}),
                base.with_changes(set_part=3, set_parts=2), base.with_changes(country="cn")):
        with pytest.raises(TagDataError):
            encode_part3(tag)
    with pytest.raises(TagDataError) as exc:
        encode_part3(base.with_changes(title="t" * 40), capacity=64)
    assert exc.value.reason == "capacity"


def test_part3_long_isil_uses_the_full_basic_block():
    tag = ItemTag("7", model="part3", owner_isil="DE-MUS-360614")
    data = encode_part3(tag)
    assert len(data) == 36 and data[21:34] == b"DEMUS-360614\x00"
    assert decode(data).owner_isil == "DE-MUS-360614"


# --- compaction (ISO/IEC 15962) ----------------------------------------------------------

@pytest.mark.parametrize(("scheme", "text", "packed"), [
    # lainuri t/iso15692_compaction.py
    (Scheme.INTEGER, "123456789012", "1CBE991A14"),
    (Scheme.NUMERIC, "410", "410F"),
    (Scheme.BIT5, "JPN", "541C"),
    (Scheme.BIT6, "ABC123456", "0420F1CB3D35DA"),
    # ISO/IEC 15962 annex P (lainuri transcription)
    (Scheme.BIT6, "AB12XY", "042C726198"),
    (Scheme.INTEGER, "20091231", "0132915F"),
])
def test_compaction_vectors(scheme, text, packed):
    assert cp.ENCODERS[scheme](text) == bytes.fromhex(packed)
    assert decompact(scheme, bytes.fromhex(packed)) == text


def test_compaction_choice():
    assert compact("1620168259") == (Scheme.INTEGER, bytes.fromhex("6091CE43"))
    assert compact("00020000000001") == (Scheme.NUMERIC, bytes.fromhex("00020000000001"))
    assert compact("BA")[0] is Scheme.OCTET  # 5-bit would not be shorter
    assert compact("JPNX")[0] is Scheme.BIT5
    assert compact("AB12-XY")[0] is Scheme.BIT6
    assert compact("Shelf 12 a")[0] is Scheme.BIT7
    assert compact("Zürich")[0] is Scheme.OCTET
    assert compact("红楼梦") == (Scheme.UTF8, "红楼梦".encode())


@pytest.mark.parametrize(("scheme", "data"), [
    (Scheme.NUMERIC, "A1"), (Scheme.BIT5, "0000F0"), (Scheme.UTF8, "FF"),
    (Scheme.INTEGER, ""), (Scheme.INTEGER, "010203040506070809"), (Scheme.BIT7, "FFFF"),
])
def test_invalid_compacted_data(scheme, data):
    with pytest.raises(TagDataError) as exc:
        decompact(scheme, bytes.fromhex(data))
    assert exc.value.reason == "compaction"


def test_padding_groups_are_dropped():
    for text in ("A", "AB", "ABCDE", "ABCDEFG"):  # 3, 6, 7 and 5 bits of padding
        assert cp.decode_5bit(cp.encode_5bit(text)) == text
    for text in ("ABC1", "AB", "A"):
        assert cp.decode_6bit(cp.encode_6bit(text)) == text
    assert cp.decode_7bit(cp.encode_7bit("abcdefg")) == "abcdefg"
    with pytest.raises(TagDataError):
        cp.encode_6bit("AB ")  # a trailing space would read as padding


# --- ISIL compaction ---------------------------------------------------------------------

def test_isil_compaction_of_a_real_tag():
    # FINNISH_PART2, written by a commercial encoder: latch lowercase, shift uppercase,
    # padding with a 1 bit.
    assert encode_isil("FI-Mamk-M") == bytes.fromhex("3240DE05AB075B")
    assert decode_isil(bytes.fromhex("3240DE05AB075B")) == "FI-Mamk-M"


@pytest.mark.parametrize(("isil", "packed"), [
    # Derived by hand from the table in isil.py: C N - (5 bits each), latch numeric,
    # eleven 4-bit codes: exactly 8 bytes.
    ("CN-431121-0002", "1B81E431121A0002"),
    ("DK-710100", "22C1E710100F"),
    ("US-MiU", "ACC0DEA6BF"),
])
def test_isil_compaction_known_values(isil, packed):
    assert encode_isil(isil) == bytes.fromhex(packed)
    assert decode_isil(bytes.fromhex(packed)) == isil


def test_isil_check():
    for good in ("CN-431121-0002", "DK-710100", "US-MiU", "ZDB-1", "oclc-1/a:b"):
        assert is_isil(good), good
    for bad in ("CN431121", "cn-1", "CN-", "-1", "CN-12345678901234", "CN-1 2", "ABCDE-1"):
        assert not is_isil(bad), bad


# --- ISO 28560-2 -------------------------------------------------------------------------

def test_part2_real_tag_decodes():
    tag = decode(FINNISH_PART2, dsfid=DSFID_PART2)
    assert tag.model == "part2"
    assert tag.primary_item_id == "1620168259"
    assert (tag.owner_isil, tag.country) == ("FI-Mamk-M", "FI")
    assert (tag.type_of_usage, tag.usage_qualifier) == (1, 0)
    assert tag.other == {7: "BA"}
    assert decode(FINNISH_PART2).model == "part2"  # found without the DSFID too


def test_part2_real_tag_reencodes_the_same_elements():
    tag = decode_part2(FINNISH_PART2)
    ours = encode_part2(tag)
    # The primary item identifier is padded to the block boundary exactly as on the tag.
    assert ours[:8] == FINNISH_PART2[:8]
    theirs = {FINNISH_PART2[e.offset:e.end] for e in iter_elements(FINNISH_PART2)}
    assert {ours[e.offset:e.end] for e in iter_elements(ours)} == theirs


def test_part2_annex_p_elements():
    found = {e.oid: e for e in iter_elements(ANNEX_P)}
    assert found[1].end == 16  # offset byte 05: five 0x80 padding bytes to the block edge
    assert found[7].value == "AB12XY" and found[7].scheme is Scheme.BIT6
    assert found[9].value == "20091231" and found[9].scheme is Scheme.INTEGER
    assert 17 in found  # OID 15 + 0x02 from the extension byte
    assert found[14].value == bytes.fromhex("A2B380")


def test_relative_oid_above_14_uses_an_extension_byte():
    assert encode_element(17, "红楼梦") == bytes.fromhex("7F0209") + "红楼梦".encode()
    assert encode_element(26, "x")[:2] == bytes([0x6F, 26 - 15])
    assert encode_element(270, "x")[:2] == bytes([0x6F, 0xFF])
    (element,) = iter_elements(encode_element(200, "ABCD"))
    assert (element.oid, element.value) == (200, "ABCD")


def test_offset_and_padding():
    assert encode_element(1, "1620168259", pad=1) == bytes.fromhex("9101046091CE4380")
    assert encode_element(7, "AB12XY", pad=0) == bytes.fromhex("C70005042C726198")
    for block_size in (1, 2, 4, 8, 16, 32):
        data = encode_part2(ItemTag("00020000000001", owner_isil="CN-431121-0002"),
                            block_size=block_size)
        assert len(data) % block_size == 0
        first = next(iter_elements(data))
        assert first.end % block_size == 0


def test_length_is_seven_bits_a_byte():
    # The values of lainuri t/iso15692_compaction_length.py.
    for length, encoded in ((1, "01"), (127, "7F"), (128, "8100"), (138, "810A"),
                            (16383, "FF7F"), (16384, "818000")):
        assert encode_length(length) == bytes.fromhex(encoded)
    long_title = "T" * 200
    (element,) = iter_elements(encode_element(17, long_title, scheme=Scheme.OCTET))
    assert element.value == long_title


def test_content_parameter():
    assert content_parameter({3, 5, 7}) == b"\xA8"  # FINNISH_PART2
    assert content_parameter(set()) == b"\x00"
    assert content_parameter({17}) == b"\x00\x02"
    (element,) = iter_elements(encode_element(2, b"\xA8"))
    assert element.value == (3, 5, 7)


def test_dsfids():
    assert dsfid_for("part2") == DSFID_PART2 == 0x06
    assert dsfid_for("part3") == DSFID_PART3 == 0x3E
    with pytest.raises(TagDataError):
        dsfid_for("part4")


def test_part2_keeps_unusual_forms_of_named_elements():
    odd = encode_element(1, "42") + encode_element(5, "1", scheme=Scheme.OCTET) + b"\0"
    tag = decode(odd, model="part2")
    assert (tag.type_of_usage, tag.other) == (None, {5: "1"})
    assert decode(encode_part2(tag), model="part2") == tag


def test_part2_is_lenient_where_tags_differ():
    data = encode_part2(ItemTag("123", other={99: "unknown to us"}))
    tag = decode(data + bytes(50), model="part2")
    assert tag.other == {99: "unknown to us"}
    # No terminator, and a 0x80 filler byte between elements.
    bare = encode_element(1, "123") + b"\x80" + encode_element(6, "A-1")
    assert decode(bare, model="part2").shelf_location == "A-1"


@pytest.mark.parametrize(("data", "reason", "offset"), [
    ("", "empty", None),
    ("00000000", "empty", None),
    ("0105313233", "truncated", 0),  # length 5, three bytes follow
    ("9103023132", "truncated", 0),  # three padding bytes announced, none there
    ("10", "precursor", 0),
    ("010131 1001", "precursor", 3),
    ("21 01 A1", "compaction", 0),  # numeric nibble A
    ("01 FFFFFF01 00", "length", 0),
    ("01 0131 01 0132", "duplicate", 3),
    ("6601 41 00", "no_item_id", None),
])
def test_part2_structure_errors(data, reason, offset):
    with pytest.raises(TagDataError) as exc:
        decode(bytes.fromhex(data), model="part2")
    assert exc.value.reason == reason
    if offset is not None:
        assert exc.value.params["offset"] == offset


def test_part2_refuses_what_it_cannot_hold():
    for tag in (ItemTag(""), ItemTag("1", owner_isil="not an isil"),
                ItemTag("1", country="CN"), ItemTag("1", set_part=2, set_parts=1),
                ItemTag("1", type_of_usage=16), ItemTag("1", usage_qualifier=1),
                ItemTag("1", shelf_location="A", other={6: "B"})):
        with pytest.raises(TagDataError):
            encode_part2(tag)
    with pytest.raises(TagDataError) as exc:
        encode_part2(ItemTag("1" * 40, title="x" * 60), capacity=32)
    assert exc.value.reason == "capacity"


def test_auto_detection_and_model_errors():
    with pytest.raises(TagDataError) as exc:
        decode(ANNEX_B1, model="part4")
    assert exc.value.reason == "model"
    with pytest.raises(TagDataError) as exc:
        decode(b"\x70" + bytes(40))  # OID 0, neither model
    assert exc.value.reason == "not_recognised"
    assert decode(ANNEX_B1, dsfid=0x00).model == "part3"
    with pytest.raises(TagDataError):
        decode(ANNEX_B1, dsfid=DSFID_PART2)  # the DSFID wins; not a valid part 2 tag


def test_every_reason_has_a_text_in_every_language():
    for language in ("zh-CN", "en"):
        known = texts(language)
        assert [r for r in REASONS if f"tag.error.{r}" not in known] == []
    assert "tag.error.invalid" in texts("zh-CN")


def test_error_messages_say_where():
    with pytest.raises(TagDataError) as exc:
        decode(bytes.fromhex("0105313233"), model="part2")
    assert str(exc.value) == ("the data element at byte 0 (OID 1) runs past the end of the "
                              "data")
    assert isinstance(exc.value, ValueError)


# --- properties --------------------------------------------------------------------------

def _printable(min_size=0, max_size=30):
    return st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=min_size,
                   max_size=max_size)


ISILS = st.one_of(
    st.sampled_from(["CN-431121-0002", "CN-431121-0001", "DK-710100", "US-MiU", "FI-Mamk-M",
                     "DE-Kn41-41", "oclc-1/a:b", "ZDB-1"]),
    st.builds(lambda c, rest: f"{c}-{rest}", st.from_regex(r"[A-Z]{2}", fullmatch=True),
              st.from_regex(r"[A-Za-z0-9:/-]{1,13}", fullmatch=True)),
)
ITEM_IDS = st.one_of(st.from_regex(r"[0-9]{1,24}", fullmatch=True),
                     st.from_regex(r"[A-Z0-9]{1,20}", fullmatch=True),
                     st.text(st.characters(blacklist_categories=("Cs",)), min_size=1,
                             max_size=24))
OTHER_OIDS = st.sampled_from([7, 8, 9, 10, 12, 13, 14, 15, 16, 18, 19, 20, 21, 22, 24, 26,
                              31, 200, 270])


@st.composite
def part2_tags(draw):
    parts = draw(st.none() | st.integers(1, 999))
    usage = draw(st.none() | st.integers(0, 15))
    return ItemTag(
        primary_item_id=draw(ITEM_IDS),
        owner_isil=draw(st.none() | ISILS),
        set_parts=parts,
        set_part=None if parts is None else draw(st.integers(1, parts)),
        type_of_usage=usage,
        usage_qualifier=None if usage is None else draw(st.none() | st.integers(0, 15)),
        shelf_location=draw(st.none() | _printable()),
        title=draw(st.none() | _printable(max_size=60)),
        other=draw(st.dictionaries(OTHER_OIDS, _printable(), max_size=4)),
    )


def _expected_part2(tag: ItemTag) -> ItemTag:
    prefix = (tag.owner_isil or "").split("-")[0]
    country = prefix if len(prefix) == 2 and prefix.isupper() else None
    qualifier = None if tag.type_of_usage is None else tag.usage_qualifier or 0
    return tag.with_changes(country=country, usage_qualifier=qualifier, dsfid=DSFID_PART2)


@PROPERTY
@given(part2_tags(), st.sampled_from([1, 4, 8, 32]))
def test_part2_round_trip(tag, block_size):
    data = encode_part2(tag, block_size=block_size)
    assert len(data) % block_size == 0
    assert decode(data, dsfid=DSFID_PART2) == _expected_part2(tag)
    assert decode_part2(data + bytes(17), dsfid=DSFID_PART2) == _expected_part2(tag)


@st.composite
def part3_tags(draw):
    parts = draw(st.none() | st.integers(1, 255))
    isil = draw(st.none() | st.builds(
        lambda c, rest: f"{c}-{rest}", st.from_regex(r"[A-Z]{2}", fullmatch=True),
        st.from_regex(r"[A-Za-z0-9:/-]{1,11}", fullmatch=True)))
    item = draw(st.one_of(st.from_regex(r"[0-9]{1,16}", fullmatch=True),
                          st.text(st.characters(blacklist_categories=("Cs", "Cc")),
                                  min_size=1, max_size=4)))  # at most 16 bytes of UTF-8
    text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20)
    return ItemTag(
        primary_item_id=item, model="part3", owner_isil=isil,
        country=None if isil or draw(st.booleans()) else draw(
            st.from_regex(r"[A-Z]{2}", fullmatch=True)),
        set_parts=parts, set_part=None if parts is None else draw(st.integers(1, parts)),
        type_of_usage=draw(st.none() | st.integers(0, 15)),
        shelf_location=draw(st.none() | text.filter(bool)),
        title=draw(st.none() | text.filter(bool)),
        other=draw(st.dictionaries(st.sampled_from([9, 10, 18, 21, 8, 7, 24, 11, 12, 25]),
                                   text.filter(bool), max_size=3)),
    )


def _expected_part3(tag: ItemTag) -> ItemTag:
    single = tag.set_parts is None
    return tag.with_changes(
        country=tag.owner_isil[:2] if tag.owner_isil else tag.country,
        set_parts=1 if single else tag.set_parts, set_part=1 if single else tag.set_part,
        type_of_usage=1 if tag.type_of_usage is None else tag.type_of_usage,
        version=1, dsfid=DSFID_PART3)


@PROPERTY
@given(part3_tags())
def test_part3_round_trip(tag):
    data = encode(tag)
    assert decode(data, dsfid=DSFID_PART3) == _expected_part3(tag)
    if len(data) == 32:
        assert decode(data) == _expected_part3(tag).with_changes(dsfid=None)


@PROPERTY
@given(st.text(st.characters(blacklist_categories=("Cs",)), min_size=17, max_size=40))
def test_part3_never_truncates_an_item_id(item):
    if len(item.encode()) > 16 and "\x00" not in item:
        with pytest.raises(TagDataError):
            encode_part3(ItemTag(item, model="part3"))


@PROPERTY
@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_compaction_round_trip(text):
    scheme, packed = compact(text)
    assert decompact(scheme, packed) == text
    assert len(packed) <= len(text.encode("utf-8"))


@PROPERTY
@given(st.from_regex(r"[A-Za-z0-9:/-]{0,16}", fullmatch=True))
def test_isil_compaction_round_trip(text):
    assert decode_isil(encode_isil(text)) == text


def _only_tag_data_errors(call, *args, **kwargs):
    with contextlib.suppress(TagDataError):
        call(*args, **kwargs)


@FUZZ
@given(st.binary(max_size=128), st.sampled_from([None, 0x00, DSFID_PART2, DSFID_PART3]))
def test_fuzz_raises_only_tag_data_errors(data, dsfid):
    for model in ("auto", "part2", "part3"):
        _only_tag_data_errors(decode, data, model=model, dsfid=dsfid)
    decode_isil(data)
    for scheme in range(1, 8):
        _only_tag_data_errors(decompact, scheme, data)


@FUZZ
@given(st.sampled_from([ANNEX_B1, ANNEX_B2, FINNISH_PART2, FINNISH_PART3, ANNEX_P,
                        encode_part2(ItemTag("1", title="红楼梦", other={200: "x"}))]),
       st.lists(st.tuples(st.integers(0, 127), st.integers(0, 255)), max_size=4),
       st.integers(0, 128))
def test_fuzz_damaged_tags(data, changes, cut):
    damaged = bytearray(data)
    for position, value in changes:
        if position < len(damaged):
            damaged[position] = value
    for model in ("auto", "part2", "part3"):
        _only_tag_data_errors(decode, bytes(damaged[:cut]), model=model)
