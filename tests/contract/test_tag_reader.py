"""Contract of the TagReader role, run against every backend that can load here.

- ``sim``: the real FEIG driver, over a real pseudo-terminal, to the simulated reader.
- ``real``: a FEIG reader named by ``KIOSK_TEST_TAG_READER`` (a device path or pyserial URL),
  for a technician on a Pi; put at least one library tag on the pad and set
  ``KIOSK_TEST_TAGS`` to how many. Tests that must place, remove or break things run on the
  simulator only. Writes go only to the AFI (restored afterwards); data blocks are written on
  a real tag only with ``KIOSK_TEST_ALLOW_WRITES=1``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from drivers.errors import DeviceGone, DeviceTimeout, DriverError, FrameError, NoTag
from hardware import build
from hardware.roles import DeviceOffline, SecurityNotSet, TagReader
from hardware.security import SecurityPolicy, read_flag, set_flag
from hardware.specs import TagReaderSpec

REAL = os.environ.get("KIOSK_TEST_TAG_READER")
BACKENDS = ["sim", *(["real"] if REAL else [])]
POLICY = SecurityPolicy()


def uid(n: int) -> bytes:
    return bytes.fromhex(f"E0040100{n:08X}")


class Rig:
    def __init__(self, reader: TagReader, pad) -> None:
        self.reader = reader
        self.pad = pad

    def place(self, n: int, data: bytes = b"", **kw):
        from hardware.sim.iso15693 import VirtualTag

        return self.pad.place(VirtualTag.from_iso28560(uid(n), data or bytes(range(32)), **kw))

    def needs_sim(self) -> None:
        if self.pad is None:
            pytest.skip("needs the simulator (places, removes or breaks things)")


@pytest.fixture(params=BACKENDS)
def rig(request, tmp_path: Path):
    if request.param == "sim":
        spec = TagReaderSpec(timeout_ms=300)
        reader, pad = build.tag_reader(spec, tmp_path)
    else:
        spec = TagReaderSpec(url=REAL)
        reader, pad = build.tag_reader(spec, tmp_path)
    assert reader.start(wait=5), reader.link.last_error
    yield Rig(reader, pad)
    reader.close()
    if pad is not None:
        assert pad.errors == []
        pad.stop()


def test_describe_names_the_firmware(rig):
    info = rig.reader.describe()
    assert info["driver"] == "feig" and info["firmware"].count(".") == 2


def test_inventory_sees_what_is_on_the_pad(rig):
    if rig.pad is None:
        found = rig.reader.inventory()
        assert len(found) == int(os.environ.get("KIOSK_TEST_TAGS", "1"))
        assert all(len(t.uid) == 8 and t.uid[0] == 0xE0 for t in found)
        return
    assert rig.reader.inventory() == []
    for n in range(10):
        rig.place(n)
    found = rig.reader.inventory()
    assert sorted(t.uid for t in found) == [uid(n) for n in range(10)]
    rig.pad.remove(uid(3))
    assert uid(3) not in {t.uid for t in rig.reader.inventory()}


def test_read_blocks_in_the_tags_byte_order(rig):
    if rig.pad is not None:
        rig.place(1, bytes(range(32)))
    first = rig.reader.inventory()[0].uid
    data = rig.reader.read_blocks(first, 0, 8)
    assert len(data) == 32
    if rig.pad is not None:
        assert data == bytes(range(32))


def test_write_blocks_reads_back(rig):
    if rig.pad is None and not os.environ.get("KIOSK_TEST_ALLOW_WRITES"):
        pytest.skip("writes data blocks: set KIOSK_TEST_ALLOW_WRITES=1 for a scratch tag")
    if rig.pad is not None:
        rig.place(1)
    tag = rig.reader.inventory()[0].uid
    info = rig.reader.system_info(tag)
    last = info.block_count - 1
    before = rig.reader.read_blocks(tag, last, 1)
    rig.reader.write_blocks(tag, last, b"\xA5\x5A\x01\x02")
    assert rig.reader.read_blocks(tag, last, 1) == b"\xA5\x5A\x01\x02"
    rig.reader.write_blocks(tag, last, before)


def test_security_flag_round_trip_and_restore(rig):
    if rig.pad is not None:
        rig.place(1, afi=POLICY.afi_on_shelf)
    tag = rig.reader.inventory()[0].uid
    was = read_flag(rig.reader, tag, POLICY)
    try:
        assert set_flag(rig.reader, tag, True, POLICY).afi == POLICY.afi_on_loan
        assert read_flag(rig.reader, tag, POLICY).on_loan
        assert set_flag(rig.reader, tag, False, POLICY).afi == POLICY.afi_on_shelf
        assert rig.reader.system_info(tag).afi == POLICY.afi_on_shelf
    finally:
        set_flag(rig.reader, tag, was.on_loan, POLICY)


def test_eas_mode(rig):
    rig.needs_sim()
    policy = SecurityPolicy(mode="eas")
    rig.place(1, eas=True)
    assert set_flag(rig.reader, uid(1), True, policy).eas is False
    assert rig.pad.tag(uid(1)).eas is False
    assert set_flag(rig.reader, uid(1), False, policy).eas is True


def test_afi_that_does_not_stick_is_caught(rig):
    rig.needs_sim()
    rig.place(1)
    rig.pad.inject("afi_not_stick")
    with pytest.raises(SecurityNotSet) as info:
        set_flag(rig.reader, uid(1), True, POLICY)
    assert "E004010000000001" in str(info.value)
    assert rig.pad.tag(uid(1)).afi == POLICY.afi_on_shelf


def test_failed_afi_write_is_an_error_not_a_loan(rig):
    rig.needs_sim()
    rig.place(1)
    rig.pad.inject("afi_write_fails")
    with pytest.raises(DriverError):
        set_flag(rig.reader, uid(1), True, POLICY)
    assert set_flag(rig.reader, uid(1), True, POLICY).on_loan  # next try works


@pytest.mark.parametrize("fault", ["garble", "truncate"])
def test_garbled_or_short_frame_is_an_error_naming_the_reader_then_recovers(rig, fault):
    rig.needs_sim()
    rig.place(1)
    rig.pad.inject(fault)
    with pytest.raises(FrameError) as info:
        rig.reader.read_blocks(uid(1), 0, 8)
    assert rig.reader.url in str(info.value)
    assert rig.reader.read_blocks(uid(1), 0, 8) == bytes(range(32))


def test_no_reply_times_out_within_the_timeout(rig):
    rig.needs_sim()
    rig.pad.inject("no_reply")
    start = time.monotonic()
    with pytest.raises(DeviceTimeout):
        rig.reader.inventory()
    assert time.monotonic() - start < 0.3 + 0.5
    assert rig.reader.inventory() == []


def test_tag_leaving_mid_read_is_an_error_not_a_hang(rig):
    rig.needs_sim()
    rig.place(1)
    rig.pad.inject("tag_leaves")
    with pytest.raises((NoTag, DeviceTimeout, FrameError)):
        rig.reader.read_blocks(uid(1), 0, 8)
    assert rig.reader.inventory() == []


def test_unplug_goes_offline_and_replug_is_back_within_5_s(rig):
    rig.needs_sim()
    rig.place(1)
    events = []
    rig.reader.link._on_change = lambda name, online, detail: events.append(online)
    rig.pad.unplug()
    with pytest.raises((DeviceGone, DeviceTimeout, DeviceOffline)):
        rig.reader.inventory()
    deadline = time.monotonic() + 2
    while rig.reader.link.online and time.monotonic() < deadline:
        with pytest.raises((DeviceGone, DeviceTimeout, DeviceOffline)):
            rig.reader.inventory()
    assert not rig.reader.link.online
    start = time.monotonic()
    with pytest.raises(DeviceOffline):
        rig.reader.inventory()
    assert time.monotonic() - start < 0.05  # offline fails fast
    time.sleep(2.5)  # long enough for the backoff to reach its cap
    rig.pad.replug()
    replugged = time.monotonic()
    assert rig.reader.link.wait_online(5)
    assert time.monotonic() - replugged < 5
    assert [t.uid for t in rig.reader.inventory()] == [uid(1)]
    assert events[0] is False and events[-1] is True
