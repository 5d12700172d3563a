"""The ``usblp://`` pyserial handler, with stand-ins for /dev/usb/lp0: a FIFO (which reads
back what was written to it) and a pty slave (whose master plays the printer)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import tty

import pytest
import serial

import hardware.printer  # noqa: F401 - registers hardware.transports with pyserial
from drivers.errors import DeviceGone
from drivers.escpos import EscPosPrinter, Text
from hardware.transports.protocol_usblp import device_path


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "lp0"
    os.mkfifo(path)
    return path


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    yield master, os.ttyname(slave)
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


def test_url_gives_the_device_path():
    assert device_path("usblp:///dev/usb/lp0") == "/dev/usb/lp0"
    for bad in ("usblp://dev/usb/lp0", "usblp://", "socket:///dev/usb/lp0",
                "usblp:///dev/usb/lp0?x=1"):
        with pytest.raises(serial.SerialException):
            device_path(bad)


def test_it_opens_through_serial_for_url_and_moves_bytes(fifo):
    port = serial.serial_for_url(f"usblp://{fifo}", baudrate=9600, timeout=0.2)
    try:
        assert port.is_open and port.fileno() >= 0
        assert port.write(b"\x1b@hello") == 7
        assert port.in_waiting == 1
        assert port.read(7) == b"\x1b@hello"
        start = time.monotonic()
        assert port.read(1) == b""  # nothing more: returns after the timeout
        assert 0.15 < time.monotonic() - start < 1
        port.baudrate = 19200  # meaningless on USB, and harmless
        port.write(b"stale")
        port.reset_input_buffer()
        assert port.in_waiting == 0
    finally:
        port.close()
        port.close()  # idempotent
    assert not port.is_open


def test_exclusive_lock_keeps_a_second_opener_out(fifo):
    first = serial.serial_for_url(f"usblp://{fifo}", exclusive=True)
    try:
        with pytest.raises(serial.SerialException, match="exclusively"):
            serial.serial_for_url(f"usblp://{fifo}", exclusive=True)
    finally:
        first.close()
    serial.serial_for_url(f"usblp://{fifo}", exclusive=True).close()


def test_a_missing_device_cannot_be_opened(tmp_path):
    with pytest.raises(serial.SerialException, match="could not open"):
        serial.serial_for_url(f"usblp://{tmp_path}/lp9")


def test_the_driver_runs_on_it_and_an_unplug_is_device_gone(pty_pair):
    master, slave_path = pty_pair
    asked: list[bytes] = []

    def printer_side() -> None:  # answers DLE EOT 1-4: ready, paper near its end
        for _ in range(4):
            request = os.read(master, 3)
            asked.append(request)
            os.write(master, b"\x1e" if request == b"\x10\x04\x04" else b"\x12")

    port = serial.serial_for_url(f"usblp://{slave_path}", timeout=0.5, exclusive=True)
    printer = EscPosPrinter(port, name="usb printer", timeout=0.5)
    try:
        side = threading.Thread(target=printer_side)
        side.start()
        status = printer.status()
        side.join(2)
        assert asked == [bytes([0x10, 0x04, n]) for n in range(1, 5)]
        assert status.ready and status.paper_near_end
        os.close(master)  # the cable is pulled
        with pytest.raises(DeviceGone) as info:
            printer.print_document([Text("x")])
        assert "usb printer" in str(info.value)
    finally:
        port.close()
