"""Building the simulated kiosk's devices from the default (sim) config."""

from __future__ import annotations

from hardware import build
from hardware.specs import HardwareSpec, TagReaderSpec
from kiosk.config import load


def test_sim_profile_builds_online_devices_on_real_drivers(tmp_path):
    spec = load(None).hardware
    with build.build(spec, tmp_path) as devices:
        assert devices.tag_reader.link.online and devices.card_reader.link.online
        assert devices.tag_reader.url == str(devices.sims.tag_pad.path)
        assert devices.card_reader.describe()["version"] == "0x92"
        reset = devices.card_reader._reset
        assert reset.line.value == 1
    # Safe state on close: the chip held in power-down by its reset line, the pad stopped.
    assert reset.chip._powered is False
    assert not devices.sims.tag_pad.plugged


def test_a_missing_reader_does_not_stop_the_build(tmp_path):
    spec = HardwareSpec(tag_reader=TagReaderSpec(url=str(tmp_path / "no-such-tty")))
    with build.build(spec, tmp_path, wait=0.2) as devices:
        assert not devices.tag_reader.link.online
        assert "no-such-tty" in devices.tag_reader.link.last_error
        assert devices.card_reader.link.online


def test_an_unplugged_tag_reader_does_not_stop_the_card_reader(tmp_path):
    import time

    import pytest

    from drivers.errors import DriverError
    from hardware.roles import DeviceOffline
    from hardware.sim.mfrc522 import VirtualCard

    with build.build(load(None).hardware, tmp_path) as devices:
        devices.sims.card_chip.place(VirtualCard(bytes.fromhex("A1B2C3D4")))
        devices.sims.tag_pad.unplug()
        with pytest.raises((DriverError, DeviceOffline)):
            devices.tag_reader.inventory()
        while devices.tag_reader.link.online:
            with pytest.raises((DriverError, DeviceOffline)):
                devices.tag_reader.inventory()
        start = time.monotonic()
        for _ in range(20):
            assert devices.card_reader.poll().uid_hex == "A1B2C3D4"
            with pytest.raises(DeviceOffline):
                devices.tag_reader.inventory()
        assert time.monotonic() - start < 1.0
        devices.sims.tag_pad.replug()
        assert devices.tag_reader.link.wait_online(5)
        assert devices.tag_reader.inventory() == []


def test_every_configurable_driver_has_a_backend():
    from hardware.specs import TAG_READER_DRIVERS

    assert set(build.TAG_READERS) == set(TAG_READER_DRIVERS)


def test_sim_lockers_and_door_open_and_end_locked(tmp_path):
    with build.build(load(None).hardware, tmp_path) as devices:
        assert devices.lockers.slots == ["A01", "A02", "A03", "A04"]
        result = devices.lockers.open("A03")
        assert result.name.endswith("A03") and result.opened_after_s < 1.0
        assert devices.door.open().opened_after_s < 1.0
        pins = [factory.pin(n) for factory, n in zip(
            devices.extra_pins, [devices.lockers.spec.latch_pins[2], devices.door.spec.latch_pin],
            strict=True)]
        assert all(any(s.state for s in pin.states) for pin in pins)  # each was pulsed
    # Safe state: every latch released (locked) once the devices are closed.
    assert [pin.states[-1].state for pin in pins] == [False, False]


def test_every_configurable_printer_has_a_backend():
    from hardware.specs import PRINTER_DRIVERS

    assert set(build.PRINTERS) == set(PRINTER_DRIVERS)
