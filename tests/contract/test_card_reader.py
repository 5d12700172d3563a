"""Contract of the CardReader role, run against every backend that can load here.

- ``sim``: the real MFRC522 driver on the simulated chip (SPI-register level), its reset
  line through gpiozero mock pins.
- ``real``: an MFRC522 on ``KIOSK_TEST_CARD_READER`` (``BUS.DEVICE``, e.g. ``0.0``), for a
  technician on a Pi, with a card on the reader when ``KIOSK_TEST_CARD=1``; it writes a card
  only with ``KIOSK_TEST_ALLOW_WRITES=1`` (use a blank card with transport keys).
"""

from __future__ import annotations

import os
import time

import pytest

from drivers.errors import DeviceStatusError, DriverError, NoTag, SelfTestFailed
from hardware import build
from hardware.roles import CardReader, DeviceOffline
from hardware.specs import CardReaderSpec, GpioFactory

REAL = os.environ.get("KIOSK_TEST_CARD_READER")
BACKENDS = ["sim", *(["real"] if REAL else [])]


class Rig:
    def __init__(self, reader: CardReader, chip) -> None:
        self.reader = reader
        self.chip = chip

    def needs_sim(self) -> None:
        if self.chip is None:
            pytest.skip("needs the simulator (places cards or breaks things)")

    def card(self, uid_hex: str, **kw):
        from hardware.sim.mfrc522 import VirtualCard

        return self.chip.place(VirtualCard(bytes.fromhex(uid_hex), **kw))


@pytest.fixture(params=BACKENDS)
def rig(request):
    if request.param == "sim":
        pins = build.pin_factory(GpioFactory.MOCK)
        reader, chip = build.card_reader(CardReaderSpec(), pins)
    else:
        pins = build.pin_factory(GpioFactory.LGPIO)
        reader, chip = build.card_reader(CardReaderSpec(spi=REAL), pins)
    assert reader.start(wait=2), reader.link.last_error
    yield Rig(reader, chip)
    reader.close()
    pins.close()


def test_describe_and_self_test(rig):
    assert rig.reader.describe()["version"] in {"0x91", "0x92", "0x88", "0x12", "0xB2"}
    assert rig.reader.self_test()["self_test"] == "passed"
    assert rig.reader.poll() is None or rig.chip is None  # still usable after the self-test


def test_failed_self_test_names_the_reader(rig):
    rig.needs_sim()
    rig.chip.inject("self_test", times=1)
    with pytest.raises(SelfTestFailed) as info:
        rig.reader.self_test()
    assert "card reader" in str(info.value)


def test_no_card_is_none(rig):
    if rig.chip is None and os.environ.get("KIOSK_TEST_CARD"):
        pytest.skip("a card is on the reader")
    assert rig.reader.poll() is None


@pytest.mark.parametrize("uid_hex", ["DEADBEEF", "04A1B2C3D4E5F6"])
def test_a_card_in_the_field_is_read_with_its_whole_uid(rig, uid_hex):
    rig.needs_sim()
    rig.card(uid_hex)
    card = rig.reader.poll()
    assert card is not None and card.uid_hex == uid_hex and card.sak == 0x08


def test_card_number_written_read_back_and_read_again(rig):
    if rig.chip is None and not os.environ.get("KIOSK_TEST_ALLOW_WRITES"):
        pytest.skip("writes a card: set KIOSK_TEST_ALLOW_WRITES=1 with a blank card")
    if rig.chip is not None:
        rig.card("11223344")
    card = rig.reader.poll()
    assert rig.reader.read_card_number(card) is None  # blank: its UID is its identity
    card = rig.reader.poll()
    rig.reader.write_card_number(card, "431100000017")
    card = rig.reader.poll()
    assert rig.reader.read_card_number(card) == "431100000017"


def test_wrong_key_is_a_clear_error(rig):
    rig.needs_sim()
    rig.card("11223344")
    rig.chip.inject("wrong_key", times=1)
    card = rig.reader.poll()
    with pytest.raises(DeviceStatusError) as info:
        rig.reader.read_card_number(card)
    assert "card reader" in str(info.value)


def test_card_leaving_mid_read_is_no_tag(rig):
    rig.needs_sim()
    rig.card("11223344")
    card = rig.reader.poll()
    rig.chip.inject("leave_after_auth", times=1)
    with pytest.raises(NoTag):
        rig.reader.read_card_number(card)


@pytest.mark.parametrize("fault", ["miso_low", "miso_high"])
def test_loose_wire_is_an_error_within_the_timeout_then_recovers(rig, fault):
    rig.needs_sim()
    rig.card("11223344")
    rig.chip.inject(fault)
    start = time.monotonic()
    for _ in range(4):
        with pytest.raises((DriverError, DeviceOffline)):
            rig.reader.poll()
    assert time.monotonic() - start < 1.0
    rig.chip.clear_faults()
    assert rig.reader.link.wait_online(5)
    assert rig.reader.poll().uid_hex == "11223344"
