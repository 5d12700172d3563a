"""The MFRC522 driver, its ISO 14443-3 A protocol pieces, and the simulated chip it runs on.

Published values checked here:
- CRC_A: the CRC catalogue's check value 0xBF05 ("CRC-16/ISO-IEC-14443-3-A" over "123456789")
  and ISO/IEC 14443-3 annex B's examples (00 00 -> A0 1E, 12 34 -> 26 CF); HLTA is 50 00 57 CD.
- The digital self-test's 64 FIFO bytes for versions 1.0 and 2.0: MFRC522 datasheet, section
  16.1.1 "Self test", copied here again so a typo in the driver's copy fails a test.
"""

from __future__ import annotations

import os
import random
import time

import pytest
from gpiozero import DigitalOutputDevice
from gpiozero.pins.mock import MockFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers import iso14443a as iso
from drivers.errors import (
    DeviceGone,
    DeviceStatusError,
    DriverError,
    FrameError,
    NoTag,
    SelfTestFailed,
    TagWriteError,
)
from drivers.mfrc522 import MFRC522, SELF_TEST_REFERENCE
from hardware.sim.mfrc522 import FAULTS, SimulatedMFRC522, State, VirtualCard

NAME = "mfrc522 test"
KEY = b"\xff" * 6
DATASHEET_V1 = (
    "00 C6 37 D5 32 B7 57 5C C2 D8 7C 4D D9 70 C7 73 10 E6 D2 AA 5E A1 3E 5A 14 AF 30 61 C9 70"
    " DB 2E 64 22 72 B5 BD 65 F4 EC 22 BC D3 72 35 CD AA 41 1F A7 F3 53 14 DE 7E 02 D9 0F B5 5E"
    " 25 1D 29 79")
DATASHEET_V2 = (
    "00 EB 66 BA 57 BF 23 95 D0 E3 0D 3D 27 89 5C DE 9D 3B A7 00 21 5B 89 82 51 3A EB 02 0C A5"
    " 00 49 7C 84 4D B3 CC D2 1B 81 5D 48 76 D5 71 61 21 A9 86 96 83 38 CF 9D 5B 6D DC 15 BA 3E"
    " 7D 95 3B 2F")
SOAK = bool(os.environ.get("KIOSK_SOAK"))


def reader(sim: SimulatedMFRC522, **kw) -> MFRC522:
    r = MFRC522(sim, name=NAME, **kw)
    r.init()
    return r


@pytest.fixture
def sim() -> SimulatedMFRC522:
    return SimulatedMFRC522(version=0x92)


@pytest.fixture
def rc(sim) -> MFRC522:
    with MFRC522(sim, name=NAME) as r:
        r.init()
        yield r


# -- pure protocol ----------------------------------------------------------------------------

def test_crc_a_published_values():
    assert iso.crc_a(b"123456789") == bytes.fromhex("05BF")  # 0xBF05, low byte sent first
    assert iso.crc_a(b"\x00\x00") == bytes.fromhex("A01E")
    assert iso.crc_a(b"\x12\x34") == bytes.fromhex("26CF")
    assert iso.crc_a(b"\x50\x00") == bytes.fromhex("57CD")
    assert iso.check_crc_a(bytes.fromhex("500057CD"))
    assert not iso.check_crc_a(bytes.fromhex("500057CE"))


@given(st.binary(min_size=1, max_size=64))
def test_crc_a_appended_always_checks(data):
    assert iso.check_crc_a(data + iso.crc_a(data))


def test_bcc_and_frames():
    assert iso.bcc(bytes.fromhex("DEADBEEF")) == 0xDE ^ 0xAD ^ 0xBE ^ 0xEF
    with pytest.raises(ValueError):
        iso.bcc(b"\x01\x02\x03")
    assert iso.anticollision_frame(1, b"", 0) == (b"\x93\x20", 0)
    # 13 known bits: SEL, NVB = 0x35 (3 whole bytes + 5 bits), UID0, 5 bits of UID1.
    frame = iso.anticollision_frame(2, bytes.fromhex("A5FF0000"), 13)
    assert frame == (bytes.fromhex("9535A51F"), 5)
    assert iso.select_frame(1, bytes.fromhex("DEADBEEF")) == bytes.fromhex("9370DEADBEEF22")


def test_uid_cascade_levels_and_assembly():
    uid7 = bytes.fromhex("04112233445566")
    assert iso.cascade_levels(uid7) == [bytes.fromhex("88041122"), bytes.fromhex("33445566")]
    uid10 = bytes(range(1, 11))
    levels = iso.cascade_levels(uid10)
    assert [lv[0] for lv in levels[:2]] == [0x88, 0x88] and len(levels) == 3
    assert iso.assemble_uid(levels) == uid10
    with pytest.raises(ValueError):
        iso.assemble_uid([bytes.fromhex("04112233"), bytes.fromhex("44556677")])
    with pytest.raises(ValueError):
        iso.cascade_levels(b"\x01\x02\x03\x04\x05")


@given(st.sampled_from([4, 7, 10]).flatmap(lambda n: st.binary(min_size=n, max_size=n)))
def test_cascade_round_trip(uid):
    assert iso.assemble_uid(iso.cascade_levels(uid)) == uid


def test_card_numbers_and_access_bits():
    assert iso.encode_card_number("0012") == b"0012" + bytes(12)
    assert iso.decode_card_number(iso.encode_card_number("0012")) == "0012"
    assert iso.decode_card_number(b"1234567890123456") == "1234567890123456"
    for bad in ("", "12a", "１２", "1" * 17):
        with pytest.raises(ValueError):
            iso.encode_card_number(bad)
    for block in (bytes(16), b"12\x0034" + bytes(11), b"\xff" * 16):
        with pytest.raises(ValueError):
            iso.decode_card_number(block)
    transport = bytes.fromhex("FFFFFFFFFFFFFF078069FFFFFFFFFFFF")
    assert iso.access_bits_valid(transport)
    assert not iso.access_bits_valid(transport[:7] + b"\x08" + transport[8:])
    assert [b for b in range(64) if iso.is_sector_trailer(b)] == list(range(3, 64, 4))
    assert iso.sector_trailer(130) == 143


# -- the chip ---------------------------------------------------------------------------------

def test_self_test_reference_is_the_datasheets():
    assert SELF_TEST_REFERENCE[0x91] == bytes.fromhex(DATASHEET_V1)
    assert SELF_TEST_REFERENCE[0x92] == bytes.fromhex(DATASHEET_V2)


@pytest.mark.parametrize("version", [0x91, 0x92, 0x88, 0xB2])
def test_version_and_self_test_pass(version):
    sim = SimulatedMFRC522(version=version)
    rc = reader(sim)
    assert rc.version() == version
    rc.self_test()
    assert repr(rc).startswith(f"<MFRC522 {NAME!r}")
    if version in SELF_TEST_REFERENCE:
        assert [e.command for e in sim.log].count("Mem") == 1
    sim.place(VirtualCard(bytes.fromhex("DEADBEEF")))
    assert rc.poll() is not None  # the chip was re-initialised after the test


def test_self_test_failure_names_device_and_byte(sim, rc):
    sim.inject("self_test", times=1)
    with pytest.raises(SelfTestFailed) as info:
        rc.self_test()
    assert NAME in str(info.value) and info.value.params["byte"] == 17
    assert "16.1.1" in str(info.value)


def test_chip_crc_matches_software(rc):
    for data in (b"", b"123456789", bytes(range(64))):
        assert rc.crc_a(data) == iso.crc_a(data)


def test_request_without_and_with_a_card(sim, rc):
    assert rc.request() is None
    assert rc.poll() is None
    sim.place(VirtualCard(bytes.fromhex("DEADBEEF")))
    assert rc.request() == b"\x04\x00"
    assert rc.select().uid == bytes.fromhex("DEADBEEF")


@pytest.mark.parametrize("uid, sak, atqa", [
    ("DEADBEEF", 0x08, "0400"), ("04112233445566", 0x08, "4400"),
    ("04112233445566", 0x00, "4400"), ("0102030405060708090A", 0x08, "8400")])
def test_select_uid_sizes(sim, rc, uid, sak, atqa):
    sim.place(VirtualCard(bytes.fromhex(uid), sak=sak, atqa=bytes.fromhex(atqa)))
    card = rc.poll()
    assert card == iso.Card(bytes.fromhex(uid), sak, bytes.fromhex(atqa))
    assert card.uid_hex == uid.upper()
    assert sim.field[0].state == State.ACTIVE


def test_two_cards_one_selected_other_after_halt(sim, rc):
    a = sim.place(VirtualCard(bytes.fromhex("DEADBEEF")))
    b = sim.place(VirtualCard(bytes.fromhex("DEADBE0F")))  # differ only in the last byte
    first = rc.poll()
    rc.halt()
    second = rc.poll()
    assert {first.uid, second.uid} == {a.uid, b.uid}
    rc.halt()
    assert rc.poll() is None  # both halted: REQA wakes neither
    assert rc.poll(wakeup=True) is not None  # WUPA does


def test_authenticate_read_write_read_back(sim, rc):
    sim.place(VirtualCard(bytes.fromhex("DEADBEEF"), blocks={5: b"A" * 16}))
    card = rc.poll()
    rc.authenticate(card, 5, KEY)
    assert rc.read_block(5) == b"A" * 16
    rc.write_block(5, b"B" * 16)
    assert rc.read_block(5) == b"B" * 16
    assert rc.read_block(7)[:6] == bytes(6)  # key A never reads back
    rc.stop_crypto()
    assert sim.field[0].blocks[5] == b"B" * 16


def test_card_number_round_trip_and_read_back_check(sim, rc):
    sim.place(VirtualCard(bytes.fromhex("04112233445566")))
    card = rc.poll()
    rc.write_card_number(card, 4, KEY, "0043000123")
    assert rc.read_card_number(card, 4, KEY) == "0043000123"
    assert rc.read_card_number(card, 5, KEY) is None  # a blank block holds no number
    with pytest.raises(ValueError):
        rc.write_card_number(card, 7, KEY, "1")  # a sector trailer


def test_write_refusals(sim, rc):
    sim.place(VirtualCard(bytes.fromhex("DEADBEEF")))
    card = rc.poll()
    rc.authenticate(card, 4, KEY)
    trailer = bytes.fromhex("FFFFFFFFFFFFFF078069FFFFFFFFFFFF")
    with pytest.raises(ValueError):
        rc.write_block(7, trailer)
    with pytest.raises(ValueError):
        rc.write_block(7, trailer[:6] + b"\x00\x00\x00" + trailer[9:], sector_trailer=True)
    with pytest.raises(ValueError):
        rc.write_block(0, bytes(16))
    with pytest.raises(TagWriteError):
        rc.write_block(8, bytes(16))  # another sector: the card answers NAK


def test_wrong_key_is_a_clear_error(sim, rc):
    sim.place(VirtualCard(bytes.fromhex("DEADBEEF")))
    card = rc.poll()
    with pytest.raises(DeviceStatusError) as info:
        rc.authenticate(card, 4, b"\x00" * 6)
    assert NAME in str(info.value) and "wrong key" in str(info.value)
    assert sim.field[0].state == State.IDLE
    card = rc.poll()
    sim.inject("wrong_key", times=1)
    with pytest.raises(DeviceStatusError):
        rc.read_card_number(card, 4, KEY)


def test_read_without_authentication_is_a_nak(sim, rc):
    sim.place(VirtualCard(bytes.fromhex("DEADBEEF")))
    rc.poll()
    with pytest.raises(DeviceStatusError) as info:
        rc.read_block(4)
    assert info.value.status == 0x4


def test_card_removed_mid_read(sim, rc):
    sim.place(VirtualCard(bytes.fromhex("DEADBEEF")))
    card = rc.poll()
    rc.authenticate(card, 4, KEY)
    sim.remove(card.uid)
    with pytest.raises(NoTag) as info:
        rc.read_block(4)
    assert NAME in str(info.value)
    sim.place(VirtualCard(bytes.fromhex("DEADBEEF")))
    card = rc.poll()
    sim.inject("leave_after_auth", times=1)
    with pytest.raises(NoTag):
        rc.read_card_number(card, 4, KEY)
    sim.place(VirtualCard(bytes.fromhex("DEADBEEF")))
    sim.inject("leave_after_select", times=1)
    card = rc.poll()
    with pytest.raises(DeviceStatusError):
        rc.authenticate(card, 4, KEY)


@pytest.mark.parametrize("fault", ["crc", "garble", "parity", "collision"])
def test_garbled_replies_are_frame_errors(sim, rc, fault):
    sim.place(VirtualCard(bytes.fromhex("DEADBEEF")))
    sim.inject(fault, times=1)
    with pytest.raises(FrameError) as info:
        rc.poll()
    assert NAME in str(info.value)
    assert rc.poll() is None  # the card fell back to IDLE; the next round finds it
    assert rc.poll() is not None


def test_garbled_block_is_a_frame_error(sim, rc):
    sim.place(VirtualCard(bytes.fromhex("DEADBEEF")))
    card = rc.poll()
    rc.authenticate(card, 4, KEY)
    sim.inject("crc", times=1)
    with pytest.raises(FrameError):
        rc.read_block(4)


def test_no_card_fault(sim, rc):
    sim.place(VirtualCard(bytes.fromhex("DEADBEEF")))
    sim.inject("no_card")
    assert rc.poll() is None
    sim.clear_faults()
    assert rc.poll() is not None
    with pytest.raises(ValueError):
        sim.inject("lightning")
    assert set(FAULTS) >= {"miso_low", "miso_high", "self_test"}


@pytest.mark.parametrize("fault", ["miso_low", "miso_high"])
def test_loose_wire_is_an_error_naming_the_device_never_a_hang(sim, fault):
    rc = reader(sim)
    sim.place(VirtualCard(bytes.fromhex("DEADBEEF")))
    sim.inject(fault)
    for action in (rc.poll, rc.init, rc.self_test, lambda: rc.crc_a(b"1")):
        started = time.monotonic()
        with pytest.raises(DeviceGone) as info:
            action()
        assert time.monotonic() - started < 1.0
        assert NAME in str(info.value) and "wiring" in str(info.value)


def test_powered_down_chip_fails_init():
    sim = SimulatedMFRC522()
    sim.nrstpd(False)
    with pytest.raises(DeviceGone):
        reader(sim)
    sim.nrstpd(True)
    assert reader(sim).version() == 0x92


def test_reset_line_pulses_through_gpiozero():
    factory = MockFactory()
    try:
        line = DigitalOutputDevice(25, pin_factory=factory, initial_value=True)
        sim = SimulatedMFRC522()
        reader(sim, reset=line)
        assert [s.state for s in line.pin.states] == [False, True, False, True]
        assert "SoftReset" not in [e.command for e in sim.log]  # the hard reset did it
        line.close()
    finally:
        factory.reset()


def test_close_is_idempotent_and_leaves_spi_open(sim):
    class Spi:
        closed = 0

        def xfer2(self, data):
            return sim.xfer2(data)

        def close(self):
            self.closed += 1

    spi = Spi()
    with MFRC522(spi, name=NAME) as rc:
        rc.init()
        assert sim.regs[0x14] & 0x03
    assert not sim.regs[0x14] & 0x03  # the field is off
    rc.close()
    assert spi.closed == 0
    assert "closed" in repr(rc)
    with pytest.raises(DeviceGone):
        rc.poll()


def test_arguments_are_checked(sim, rc):
    card = iso.Card(bytes.fromhex("DEADBEEF"), 0x08, b"\x04\x00")
    with pytest.raises(ValueError):
        rc.authenticate(card, 4, b"\xff" * 5)
    with pytest.raises(ValueError):
        rc.write_block(4, b"short")
    with pytest.raises(ValueError):
        rc.crc_a(bytes(65))
    with pytest.raises(ValueError):
        MFRC522(sim, timeout=0)


# -- properties and fuzz ----------------------------------------------------------------------

uids = st.sampled_from([4, 7]).flatmap(lambda n: st.binary(min_size=n, max_size=n)).filter(
    lambda u: u[0] != iso.CASCADE_TAG)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=uids, second=uids)
def test_random_uids_are_selected(first, second):
    sim = SimulatedMFRC522()
    rc = reader(sim)
    sim.place(VirtualCard(first))
    assert rc.poll().uid == first
    rc.halt()
    if second != first:
        sim.place(VirtualCard(second))
        assert rc.poll().uid == second


@settings(max_examples=40, deadline=None)
@given(data=st.binary(min_size=16, max_size=16), block=st.sampled_from([1, 4, 13, 62]))
def test_random_blocks_round_trip(data, block):
    sim = SimulatedMFRC522()
    rc = reader(sim)
    sim.place(VirtualCard(bytes.fromhex("04112233445566")))
    card = rc.poll()
    rc.authenticate(card, block, KEY)
    rc.write_block(block, data)
    assert rc.read_block(block) == data


class NoisySpi:
    """The simulator behind a bus that replaces MISO bytes with random ones."""

    def __init__(self, sim: SimulatedMFRC522, seed: int, rate: float) -> None:
        self.sim, self.rng, self.rate = sim, random.Random(seed), rate

    def xfer2(self, data: list[int]) -> list[int]:
        out = self.sim.xfer2(data)
        return [self.rng.randrange(256) if self.rng.random() < self.rate else b for b in out]


@settings(max_examples=5000 if SOAK else 500, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), rate=st.sampled_from([1.0, 0.2, 0.05, 0.01]))
def test_fuzz_random_register_bytes_only_driver_errors(seed, rate):
    sim = SimulatedMFRC522()
    sim.place(VirtualCard(bytes.fromhex("04112233445566")))
    rc = MFRC522(NoisySpi(sim, seed, rate), name=NAME, timeout=0.01)
    started = time.monotonic()
    for step in (rc.init, rc.poll, rc.self_test, lambda: rc.poll(wakeup=True)):
        try:
            card = step()
        except DriverError as exc:
            assert exc.device == NAME
            continue
        if isinstance(card, iso.Card):
            try:
                rc.write_card_number(card, 4, KEY, "123")
                rc.read_card_number(card, 4, KEY)
                rc.halt()
            except DriverError as exc:
                assert exc.device == NAME
    rc.close()
    assert time.monotonic() - started < 2.0


def test_simulator_register_semantics():
    sim = SimulatedMFRC522(version=0x91)

    def read(*regs):
        return sim.xfer2([0x80 | r << 1 for r in regs] + [0])

    assert read(0x37, 0x37) == [0, 0x91, 0x91]  # first MISO byte is don't-care
    sim.xfer2([0x0A << 1, 0x80])  # flush
    sim.xfer2([0x09 << 1, *range(70)])  # six bytes too many
    assert read(0x0A, 0x06) == [0, 64, 0x10]  # level 64, BufferOvfl
    sim.xfer2([0x0A << 1, 0x80])
    assert read(0x0A, 0x06) == [0, 0, 0]
    sim.xfer2([0x04 << 1, 0x7F])  # Set1 = 0: clear all
    assert read(0x04) == [0, 0]
    sim.xfer2([0x04 << 1, 0x81])  # Set1 = 1: set TimerIRq
    assert read(0x04) == [0, 0x01]
    sim.xfer2([0x2A << 1, 0x80])  # TAuto, prescaler 0: 13.56 MHz ticks
    sim.xfer2([0x2C << 1, 0x00])
    sim.xfer2([0x2D << 1, 0xFF])  # 256 ticks, about 19 us
    sim.xfer2([0x04 << 1, 0x7F])
    sim.xfer2([0x01 << 1, 0x0C])  # Transceive with an empty field...
    sim.xfer2([0x09 << 1, 0x26])
    sim.xfer2([0x0D << 1, 0x87])  # ...StartSend, 7 bits
    time.sleep(0.001)
    assert read(0x04)[1] & 0x41 == 0x41  # TxIRq, then TimerIRq: nobody answered
    assert sim.log[-1] == ("Transceive", b"\x26", 7)
    sim.xfer2([0x01 << 1, 0x0F])  # SoftReset
    assert read(0x01, 0x14, 0x2A) == [0, 0x20, 0x80, 0x00]
