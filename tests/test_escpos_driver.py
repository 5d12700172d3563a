"""The ESC/POS driver on scripted ports (a printer reduced to its answers) and on the
simulator: what it sends, when it gives up, and that it never reports an unprinted receipt
as printed."""

from __future__ import annotations

import pytest
import serial

from drivers.errors import DeviceGone, DeviceTimeout, FrameError
from drivers.escpos import (
    Cut,
    EscPosPrinter,
    PrinterNotReady,
    PrintIncomplete,
    Text,
    encode,
)
from drivers.escpos_codec import status_request
from hardware.sim.escpos_printer import EscPosSimulator


class ScriptedPort:
    """A printer reduced to its answers: DLE EOT n gets ``answers[n - 1]``; GS r 1 gets 0x00
    when ``confirms``. No fileno(), so the driver reads with read(1) as on socket://."""

    name = "scripted"

    def __init__(self, answers: bytes = b"\x12\x12\x12\x12", confirms: bool = True) -> None:
        self.answers = answers
        self.confirms = confirms
        self.written = bytearray()
        self.inbox = bytearray()

    def write(self, data: bytes) -> int:
        self.written += data
        if data[:2] == b"\x10\x04":
            self.inbox.append(self.answers[data[2] - 1])
        elif data.endswith(b"\x1dr\x01") and self.confirms:
            self.inbox.append(0x00)
        return len(data)

    def read(self, size: int = 1) -> bytes:
        out, self.inbox = bytes(self.inbox[:size]), self.inbox[size:]
        return out

    def reset_input_buffer(self) -> None:
        self.inbox.clear()

    def flush(self) -> None:
        pass

    def close(self) -> None:  # pragma: no cover - the driver must never call it
        raise AssertionError("the driver closed a port it did not open")


def driver(port, **kw) -> EscPosPrinter:
    return EscPosPrinter(port, name="test printer", timeout=0.2, **kw)


def test_driver_prints_and_confirms_with_gs_r():
    port = ScriptedPort()
    result = driver(port).print_document([Text("借书"), Cut()])
    assert result.confirmed and result.status.ready and result.replaced == ()
    job = encode([Text("借书"), Cut()]) + b"\x1dr\x01"
    assert bytes(port.written) == b"\x10\x04\x01\x10\x04\x02\x10\x04\x03\x10\x04\x04" + job \
        + b"\x10\x04\x01\x10\x04\x02\x10\x04\x03\x10\x04\x04"
    assert result.bytes_sent == len(job)


def test_driver_sends_nothing_to_a_printer_that_cannot_print():
    port = ScriptedPort(answers=bytes([0x1A, 0x32, 0x12, 0x7E]))
    with pytest.raises(PrinterNotReady) as info:
        driver(port).print_document([Text("x"), Cut()])
    assert info.value.problems == ["paper_out"] and "test printer" in str(info.value)
    assert info.value.params["raw"] == "1a 32 12 7e"
    assert bytes(port.written) == b"".join(status_request(n) for n in range(1, 5))


def test_driver_times_out_when_the_job_is_never_confirmed():
    port = ScriptedPort(confirms=False)
    printer = driver(port, print_timeout=0.3, poll_interval=0.05)
    with pytest.raises(DeviceTimeout, match="GS r"):
        printer.print_document([Text("x")])


def test_driver_without_confirmation_checks_the_status_after_sending():
    port = ScriptedPort(confirms=False)
    result = driver(port, confirm_printed=False).print_document([Text("x")])
    assert not result.confirmed and b"\x1dr\x01" not in port.written


def test_driver_silent_printer_is_a_timeout_naming_it():
    port = ScriptedPort()
    port.write = lambda data: len(data)  # hears nothing, says nothing
    with pytest.raises(DeviceTimeout, match=r"test printer.*DLE EOT 1"):
        driver(port).status()


def test_driver_a_stray_byte_is_a_frame_error():
    port = ScriptedPort(answers=b"\x00\x12\x12\x12")
    with pytest.raises(FrameError, match="0x00 cannot answer DLE EOT 1"):
        driver(port).status()


def test_driver_on_loop_url_reads_its_own_echo_as_a_frame_error():
    port = serial.serial_for_url("loop://", timeout=0.2)
    with pytest.raises(FrameError, match="0x10"):
        driver(port).status()


def test_driver_close_is_idempotent_and_leaves_the_port_open():
    port = ScriptedPort()
    printer = driver(port)
    assert repr(printer) == "<EscPosPrinter 'test printer' on scripted>"
    with printer:
        pass
    printer.close()
    assert printer.closed
    with pytest.raises(DeviceGone):
        printer.status()


def test_driver_without_confirmation_still_sees_paper_run_out_on_the_simulator(tmp_path):
    with EscPosSimulator(tmp_path) as sim:
        port = serial.serial_for_url(str(sim.path), baudrate=115200, timeout=0.5)
        try:
            printer = driver(port, confirm_printed=False)
            sim.paper_runs_out_after(2)
            with pytest.raises(PrintIncomplete) as info:
                printer.print_document([Text(f"line {n}") for n in range(6)] + [Cut()])
            assert info.value.problems == ["paper_out"]
            assert sim.jobs[0].lines == ["line 0", "line 1"] and sim.jobs[0].lost
        finally:
            port.close()


class HoldingPort(ScriptedPort):
    """A printer that keeps a job stopped by paper end, finishes it once paper is loaded,
    and only then answers that job's GS r: late, when the next bytes arrive."""

    def __init__(self) -> None:
        super().__init__()
        self.held = False  # a stopped job's GS r is still to be answered
        self.stop_next_job = False

    def write(self, data: bytes) -> int:
        if data.endswith(b"\x1dr\x01"):  # a job, or a GS r 1 on its own
            self.written += data
            if self.held:
                self.inbox.append(0x00)  # the old job, finished now that there is paper
                self.held = False
            if data != b"\x1dr\x01" and self.stop_next_job:
                self.answers, self.held, self.stop_next_job = b"\x1a\x32\x12\x7e", True, False
            else:
                self.inbox.append(0x00)
            return len(data)
        return super().write(data)


def test_a_late_answer_for_a_stopped_job_never_confirms_the_next_one():
    port = HoldingPort()
    printer = driver(port, poll_interval=0.05)
    port.stop_next_job = True
    with pytest.raises(PrintIncomplete):
        printer.print_document([Text("first")])
    port.answers, port.stop_next_job = b"\x12\x12\x12\x12", True  # paper loaded; runs out again
    with pytest.raises(PrintIncomplete):
        printer.print_document([Text("second")])
    port.answers = b"\x12\x12\x12\x12"
    assert printer.print_document([Text("third")]).confirmed
