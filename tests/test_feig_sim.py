"""The real FEIG driver against the simulated reader over a real pseudo-terminal: commands,
tags coming and going, and every fault the simulator can inject."""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest
import serial

from drivers.errors import (
    DeviceGone,
    DeviceStatusError,
    DeviceTimeout,
    FrameError,
    NoTag,
    TagWriteError,
)
from drivers.feig import BlockOrder, FeigReader
from hardware.sim import iso15693 as air
from hardware.sim.feig import FeigSimulator
from hardware.sim.iso15693 import VirtualTag, make_uid

TIMEOUT = 0.4
BOOK = bytes(range(1, 33))  # 32 bytes, a stand-in for ISO 28560-3 data


def book(n: int, afi: int = 0x07, data: bytes = BOOK, **kwargs) -> VirtualTag:
    # serials 17 apart give different low nibbles, 16 apart the same (a collision)
    return VirtualTag.from_iso28560(make_uid(0x5000 + n * 17), data, afi=afi, **kwargs)


def open_port(sim: FeigSimulator) -> serial.Serial:
    return serial.serial_for_url(str(sim.path), baudrate=38400, parity=serial.PARITY_EVEN,
                                 timeout=1)


@pytest.fixture
def sim(tmp_path):
    with FeigSimulator(tmp_path / "dev", seed=7) as simulator:
        yield simulator
        assert simulator.errors == []


@pytest.fixture
def reader(sim):
    port = open_port(sim)
    with FeigReader(port, timeout=TIMEOUT) as feig:
        yield feig
    port.close()


# -- commands ----------------------------------------------------------------------------------

@pytest.mark.parametrize("count", [0, 1, 2, 10])
def test_inventory_finds_every_tag_once(sim, reader, count):
    placed = {sim.place(book(n)).uid for n in range(count)}
    found = reader.inventory()
    assert {t.uid for t in found} == placed and len(found) == count
    assert all(t.tr_type == 0x03 and t.dsfid == 0 for t in found)


def test_inventory_collects_the_rest_after_more_data(sim, reader):
    sim.inventory_page = 3
    placed = {sim.place(book(n)).uid for n in range(10)}
    sim.reset_stats()
    assert {t.uid for t in reader.inventory()} == placed
    assert sim.stats.commands == 4  # 3 + 3 + 3 + 1 records


def test_inventory_filters_by_afi(sim, reader):
    on_loan = {sim.place(book(n, afi=0xC2)).uid for n in range(3)}
    shelf = {sim.place(book(n, afi=0x07)).uid for n in range(3, 5)}
    assert {t.uid for t in reader.inventory(afi=0xC2)} == on_loan
    assert {t.uid for t in reader.inventory(afi=0x07)} == shelf


def test_colliding_tags_are_all_found(sim, reader):
    uids = {sim.place(VirtualTag(make_uid(0x30 + 16 * n), bytes(16))).uid for n in range(4)}
    assert {t.uid for t in reader.inventory()} == uids


def test_write_and_read_blocks_in_tag_byte_order(sim, reader):
    tag = sim.place(book(1))
    assert reader.read_blocks(tag.uid, 0, 8) == BOOK
    new = bytes(range(0x40, 0x60))
    reader.write_blocks(tag.uid, 2, new)
    assert bytes(tag.memory[8:40]) == new  # the tag itself holds byte 0 first
    assert reader.read_blocks(tag.uid, 2, 8) == new
    assert reader.read_blocks(tag.uid, 0, 2) == BOOK[:8]


def test_block_order_must_match_the_reader_configuration(tmp_path):
    with FeigSimulator(tmp_path, block_order=BlockOrder.AS_STORED) as sim:
        tag = sim.place(book(1))
        port = open_port(sim)
        assert FeigReader(port).read_blocks(tag.uid, 0, 1) == BOOK[3::-1]
        assert FeigReader(port, block_order=BlockOrder.AS_STORED).read_blocks(
            tag.uid, 0, 1) == BOOK[:4]
        port.close()


def test_write_afi_and_read_it_back(sim, reader):
    tag = sim.place(book(1))
    reader.write_afi(tag.uid, 0xC2)
    info = reader.system_info(tag.uid)
    assert (info.uid, info.afi, info.block_size, info.block_count) == (tag.uid, 0xC2, 4, 28)
    assert tag.afi == 0xC2


def test_eas_set_alarm_and_reset(sim, reader):
    tag = sim.place(book(1))
    assert reader.eas_alarm(tag.uid) is False
    reader.set_eas(tag.uid, True)
    assert tag.eas and reader.eas_alarm(tag.uid) is True
    reader.set_eas(tag.uid, False)
    assert not tag.eas and reader.eas_alarm(tag.uid) is False


def test_reader_commands_and_rf_field(sim, reader):
    tag = sim.place(book(1))
    assert reader.software_version().firmware == "3.3.0"
    reader.ping()
    reader.rf_on(False)
    assert reader.inventory() == []
    with pytest.raises(NoTag):
        reader.read_blocks(tag.uid, 0, 1)
    reader.rf_on(True)
    reader.stay_quiet(tag.uid)
    assert reader.inventory() == []
    reader.rf_reset()  # every tag back to ready
    assert [t.uid for t in reader.inventory()] == [tag.uid]
    reader.select(tag.uid)
    reader.stay_quiet(tag.uid)
    reader.reset_to_ready(tag.uid)
    assert [t.uid for t in reader.inventory()] == [tag.uid]


def test_tags_placed_and_removed_while_running(sim, reader):
    """A worker inventories without pause while books are put down and taken away."""
    results: list[frozenset[bytes]] = []
    stop = threading.Event()

    def scan():
        while not stop.is_set():
            results.append(frozenset(t.uid for t in reader.inventory()))

    def seen(*uids: bytes) -> bool:
        mark, deadline = len(results), time.monotonic() + 3
        while time.monotonic() < deadline:
            if frozenset(uids) in results[mark:]:
                return True
            time.sleep(0.005)
        return False

    worker = threading.Thread(target=scan)
    worker.start()
    first, second = book(1), book(2)
    try:
        sim.place(first)
        assert seen(first.uid)
        sim.place(second)
        assert seen(first.uid, second.uid)
        sim.remove(first.uid)
        assert seen(second.uid)
    finally:
        stop.set()
        worker.join()
    with pytest.raises(NoTag):
        reader.read_blocks(first.uid, 0, 1)


def test_locked_block_refuses_a_write(sim, reader):
    tag = sim.place(book(1, locked_blocks={1}))
    assert reader.block_security(tag.uid, 0, 3) == [0, 1, 0]
    with pytest.raises(TagWriteError, match="0x12") as err:
        reader.write_blocks(tag.uid, 0, bytes(8))
    assert err.value.params["iso_error"] == "0x12" and err.value.params["failed_block"] == 1
    assert bytes(tag.memory[:8]) == bytes(4) + BOOK[4:8]  # block 0 written, block 1 not


def test_bus_address_and_advanced_frames(sim):
    sim.place(book(1))
    port = open_port(sim)
    assert len(FeigReader(port, address=0x00, advanced=True).inventory()) == 1
    with pytest.raises(DeviceTimeout, match="addr 0x05"):
        FeigReader(port, address=0x05, timeout=0.2).ping()  # another reader's address
    port.close()


def test_serial_time_is_paced_at_line_speed(sim, reader):
    sim.reset_stats()
    start = time.monotonic()
    reader.software_version()
    elapsed = time.monotonic() - start
    stats = sim.stats
    assert (stats.bytes_in, stats.bytes_out, stats.commands) == (5, 13, 1)
    assert elapsed >= stats.serial_seconds == pytest.approx(18 * 11 / 38400)


def test_close_is_idempotent_and_leaves_the_port_open(sim):
    port = open_port(sim)
    feig = FeigReader(port, address=0x00)
    assert repr(feig) == f"<FeigReader {sim.path} addr 0x00>"
    feig.close()
    feig.close()
    assert feig.closed and port.is_open
    with pytest.raises(DeviceGone, match="closed"):
        feig.ping()
    port.close()


def test_a_network_reader_over_socket_url():
    """socket:// ports (LAN readers) take the same path; a dropped connection is DeviceGone."""
    server = socket.create_server(("127.0.0.1", 0))
    reply = bytes.fromhex("0D 00 65 00 03 03 00 44 53 0D 30 33 09")  # a published [0x65] reply

    def lan_reader():
        conn, _ = server.accept()
        with conn:
            assert conn.recv(64) == bytes.fromhex("05 FF 65 E5 CB")
            conn.sendall(reply[:4])
            time.sleep(0.02)
            conn.sendall(reply[4:])
            conn.recv(64)  # the next request: hang up instead of answering

    worker = threading.Thread(target=lan_reader)
    worker.start()
    port = serial.serial_for_url(f"socket://127.0.0.1:{server.getsockname()[1]}", timeout=1)
    feig = FeigReader(port, timeout=TIMEOUT)
    assert feig.software_version().sw_type == 0x53
    with pytest.raises(DeviceGone, match=re.escape("socket://127.0.0.1")):
        feig.ping()
    worker.join()
    port.close()
    server.close()


# -- faults ------------------------------------------------------------------------------------

def test_unplug_during_a_call_is_device_gone_naming_the_port(sim, reader):
    tag = sim.place(book(1))
    sim.inject("unplug")
    start = time.monotonic()
    with pytest.raises(DeviceGone, match=re.escape(str(sim.path))):
        reader.read_blocks(tag.uid, 0, 8)
    assert time.monotonic() - start < TIMEOUT
    assert not sim.path.exists()
    with pytest.raises(DeviceGone):
        reader.ping()  # the old port stays dead
    sim.replug()
    port = open_port(sim)
    assert FeigReader(port).read_blocks(tag.uid, 0, 8) == BOOK
    port.close()


def test_unplug_from_outside_while_a_call_runs(sim):
    tag = sim.place(book(1))
    sim.processing_time = 2.0  # a reader that takes its time: the unplug lands mid-call
    port = open_port(sim)
    threading.Timer(0.02, sim.unplug).start()
    start = time.monotonic()
    with pytest.raises(DeviceGone):
        FeigReader(port, timeout=3.0).read_blocks(tag.uid, 0, 8)
    assert time.monotonic() - start < 1.0
    port.close()


def test_garbled_reply_is_a_frame_error_and_the_next_call_works(sim, reader):
    tag = sim.place(book(1))
    sim.inject("garble")
    with pytest.raises(FrameError, match="bad CRC"):
        reader.read_blocks(tag.uid, 0, 8)
    assert reader.read_blocks(tag.uid, 0, 8) == BOOK


def test_truncated_reply_is_a_frame_error_before_the_timeout(sim, reader):
    tag = sim.place(book(1))
    sim.inject("truncate")
    start = time.monotonic()
    with pytest.raises(FrameError, match="truncated"):
        reader.read_blocks(tag.uid, 0, 8)
    assert time.monotonic() - start < TIMEOUT
    assert reader.read_blocks(tag.uid, 0, 8) == BOOK


def test_no_reply_is_a_timeout_and_the_next_call_works(sim, reader):
    tag = sim.place(book(1))
    sim.inject("no_reply")
    start = time.monotonic()
    with pytest.raises(DeviceTimeout, match=re.escape(str(sim.path))):
        reader.system_info(tag.uid)
    assert TIMEOUT <= time.monotonic() - start < TIMEOUT + 0.2
    assert reader.system_info(tag.uid).afi == 0x07


def test_a_late_reply_is_never_taken_for_the_next_commands_answer(sim, reader):
    late, other = sim.place(book(1)), sim.place(book(2, data=bytes(32)))
    sim.late_by = TIMEOUT + 0.2
    sim.inject("late_reply")
    with pytest.raises(DeviceTimeout):
        reader.read_blocks(late.uid, 0, 8)
    # Same command, same length: only resynchronising tells the late reply from this one's.
    assert reader.read_blocks(other.uid, 0, 8) == bytes(32)
    assert reader.read_blocks(late.uid, 0, 8) == BOOK


def test_afi_write_that_does_not_stick_shows_on_read_back(sim, reader):
    tag = sim.place(book(1))
    sim.inject("afi_not_stick")
    reader.write_afi(tag.uid, 0xC2)  # the tag says OK ...
    assert reader.system_info(tag.uid).afi == 0x07  # ... but reading back tells the truth


def test_afi_write_that_fails_is_a_tag_write_error(sim, reader):
    tag = sim.place(book(1))
    sim.inject("afi_write_fails")
    with pytest.raises(TagWriteError, match="not successfully programmed"):
        reader.write_afi(tag.uid, 0xC2)
    assert tag.afi == 0x07 and sim.pending_faults == []


def test_tag_leaving_mid_read_is_no_tag(sim, reader):
    tag = sim.place(book(1))
    sim.inject("tag_leaves")
    reader.inventory()  # not addressed: the fault waits for an addressed command
    with pytest.raises(NoTag, match=tag.uid.hex()):
        reader.read_blocks(tag.uid, 0, 8)
    assert sim.tags == []


def test_rf_noise_is_a_reader_status_error(sim, reader):
    tag = sim.place(book(1))
    sim.inject("rf_noise", on="write_afi")
    assert reader.read_blocks(tag.uid, 0, 1) == BOOK[:4]  # not a Write AFI: unaffected
    with pytest.raises(DeviceStatusError, match="RF communication error") as err:
        reader.write_afi(tag.uid, 0xC2)
    assert err.value.status == 0x83 and not isinstance(err.value, (NoTag, TagWriteError))
    assert tag.afi == 0x07


# -- the driver on a scripted port (no simulator, no file descriptor) -------------------------

class ScriptedPort:
    """A pyserial-like port that answers each write with the next scripted bytes."""

    name = "scripted://reader"

    def __init__(self, *replies: str) -> None:
        self.replies = [bytes.fromhex(r) for r in replies]
        self.buffer = b""
        self.written: list[bytes] = []

    def reset_input_buffer(self) -> None:
        self.buffer = b""

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))
        if self.replies:
            self.buffer += self.replies.pop(0)

    def read(self, size: int) -> bytes:
        if not self.buffer:
            time.sleep(0.01)  # a port's own read timeout
        out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out


UID = bytes.fromhex("E0 04 01 00 00 12 34 56")
SYSINFO_REPLY = "13 00 B0 00 00 E0 04 01 00 00 12 34 56 07 03 1B 01 38 BC"
PING = "06 FF 52 00 0F 6E"


def test_an_acknowledgement_with_data_is_a_stale_reply():
    port = ScriptedPort(SYSINFO_REPLY)
    with pytest.raises(FrameError, match="acknowledgement carrying 13 data bytes"):
        FeigReader(port, timeout=0.2).write_afi(UID, 0xC2)


def test_a_reply_to_another_command_is_refused_then_the_line_resynchronises():
    port = ScriptedPort("0D 00 65 00 03 03 00 44 53 0D 30 33 09",  # a [0x65] reply
                        "0F 1E" + " 06 00 52 00 FC A8",  # the tail of a late frame, then [0x52]
                        SYSINFO_REPLY)
    feig = FeigReader(port, timeout=0.2)
    with pytest.raises(FrameError, match="does not answer command 0xB0"):
        feig.system_info(UID)
    assert feig.system_info(UID).afi == 0x07
    assert port.written[1] == bytes.fromhex(PING)  # the resynchronising round trip


# -- the air-time model ------------------------------------------------------------------------

def test_air_time_of_one_tag_inventory():
    run = air.inventory_time([make_uid(1)])
    expected = (air.vcd_frame(5) + air.T1 + air.vicc_frame(12) + air.T2
                + 15 * air.T3_EMPTY + 15 * air.VCD_EOF)
    assert run.seconds == pytest.approx(expected)
    assert (run.rounds, run.collisions, run.empty_slots) == (1, 0, 15)
    # the standard's rounded figures: 302.08 us a byte, 151.04 us a tag SOF
    assert pytest.approx(302.08e-6, rel=1e-4) == air.VCD_BYTE == air.VICC_BYTE
    assert pytest.approx(151.04e-6, rel=1e-4) == air.VICC_SOF


def test_colliding_tags_cost_another_round():
    apart = air.inventory_time([make_uid(0x01), make_uid(0x02)])
    together = air.inventory_time([make_uid(0x01), make_uid(0x11)])  # same low nibble
    assert (apart.rounds, apart.collisions) == (1, 0)
    assert (together.rounds, together.collisions) == (2, 1)
    assert together.seconds > apart.seconds


def test_afi_matching_follows_iso15693():
    assert air.afi_matches(0x00, 0xC2)
    assert air.afi_matches(0xC2, 0xC2) and not air.afi_matches(0xC2, 0x07)
    assert air.afi_matches(0xC0, 0xC2) and air.afi_matches(0x02, 0xC2)
    assert not air.afi_matches(0x07, 0xC2)
