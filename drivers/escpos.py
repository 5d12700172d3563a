"""Driver for ESC/POS receipt printers (Epson TM-T20/T82 class, Xprinter, GAINSCHA, Rongta
and the like) over any pyserial-like port: a serial line, ``socket://host:9100``, or a USB
printer through the ``usblp://`` handler of the hardware layer.

The driver never opens a device: the caller opens the port and hands it in::

    port = serial.serial_for_url("/dev/kiosk-printer", baudrate=115200, timeout=2)
    with EscPosPrinter(port, name="receipt printer") as printer:
        printer.init()
        printer.print_document([Text("借书凭条", align="center", width=2, height=2),
                                QRCode("CN-431121-0002/123"), Cut()])

and stays responsible for closing it; :meth:`EscPosPrinter.close` closes nothing it did not
open. The document model, the encoder and the status parser are pure code in
:mod:`drivers.escpos_codec` and are re-exported here.

What a caller may rely on:

- :meth:`~EscPosPrinter.status` asks DLE EOT 1, 2, 3 and 4 in turn; each is answered at once
  with one byte, even in the middle of a job.
- :meth:`~EscPosPrinter.print_document` returns only when the printer has printed the whole
  document. It checks the status first and sends nothing to a printer that cannot print
  (:class:`PrinterNotReady`). With ``confirm_printed`` (the default) it ends the job with
  GS r 1, which the printer answers only when it gets to it, after printing everything
  before it; meanwhile it polls the real-time status, so paper running out, the cover
  opening or the cutter jamming mid-job raises :class:`PrintIncomplete`, never a silent
  success. After a receipt that was not confirmed, the next one first waits until the
  printer has answered everything it still owed (many printers finish a stopped receipt once
  paper is loaded), so a late answer never confirms the wrong receipt. Without
  ``confirm_printed`` (for printers that do not answer GS r) it can only check the status
  once the bytes have left, which may be before the paper moved.
- Errors name the printer: :class:`~drivers.errors.DeviceTimeout` when an answer does not
  come within ``timeout`` (or the job is not confirmed within ``print_timeout``),
  :class:`~drivers.errors.DeviceGone` when the port fails (unplugged),
  :class:`~drivers.errors.FrameError` for a byte that cannot be a status answer.
"""

from __future__ import annotations

import select
import threading
import time
from dataclasses import dataclass

from serial import SerialException, SerialTimeoutException

from drivers.errors import DeviceGone, DeviceStatusError, DeviceTimeout, FrameError
from drivers.escpos_codec import (
    ENCODINGS,
    INIT,
    PAPER_SENSOR_STATUS,
    REPLACEMENT,
    Cut,
    Encoded,
    Feed,
    Item,
    QRCode,
    Rule,
    Status,
    Text,
    encode,
    encode_document,
    is_paper_sensor_byte,
    parse_status,
    status_request,
)

try:  # pyserial lets termios.error through from reset_input_buffer() on a dead tty
    from termios import error as _TermiosError
except ImportError:  # pragma: no cover - not a POSIX system
    _TermiosError = OSError

PORT_ERRORS = (SerialException, OSError, _TermiosError)

__all__ = [
    "ENCODINGS", "REPLACEMENT", "Cut", "Encoded", "EscPosPrinter", "Feed", "Item",
    "PrintIncomplete", "PrintResult", "PrinterNotReady", "QRCode", "Rule", "Status", "Text",
    "encode", "encode_document", "parse_status",
]


class PrinterNotReady(DeviceStatusError):
    """The printer's status says it cannot print; nothing was sent. ``problems`` (also in
    ``params``) names what is wrong: paper_out, cover_open, cutter_error, ..."""

    message_key = "device.printer_problem"

    def __init__(self, device: str, detail: str, status: Status) -> None:
        super().__init__(device, detail, status.raw[1] if len(status.raw) > 1 else 0,
                         problems=status.problems, raw=status.raw.hex(" "))
        self.problems = status.problems
        self.printer_status = status


class PrintIncomplete(PrinterNotReady):
    """The printer stopped during the job (paper out, cover opened, cutter jammed): the
    receipt was printed in part or not at all."""


@dataclass(frozen=True)
class PrintResult:
    """A printed document: ``replaced`` lists the characters printed as ``〓``; ``confirmed``
    says the printer reported the end of the job (GS r); ``status`` is its state after."""

    bytes_sent: int
    replaced: tuple[str, ...]
    confirmed: bool
    status: Status


class EscPosPrinter:
    """One ESC/POS printer on an open port; see the module docstring.

    ``name`` names the printer in errors. ``timeout`` bounds each status answer,
    ``print_timeout`` a whole job (from the last byte sent to the printer's confirmation);
    ``poll_interval`` is how often the status is asked meanwhile. ``chars_per_line`` and
    ``encoding`` are the paper's and the font's (32 on 58 mm paper, 48 on 80 mm). Calls are
    serialised with a lock.
    """

    def __init__(self, port, *, name: str, timeout: float = 2.0, chars_per_line: int = 32,
                 encoding: str = "gb18030", confirm_printed: bool = True,
                 print_timeout: float = 20.0, poll_interval: float = 0.2) -> None:
        if timeout <= 0 or print_timeout <= 0 or poll_interval <= 0:
            raise ValueError("timeouts must be positive")
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}")
        self._port = port
        self.name = name
        self.timeout = timeout
        self.chars_per_line = chars_per_line
        self.encoding = encoding
        self.confirm_printed = confirm_printed
        self.print_timeout = print_timeout
        self.poll_interval = poll_interval
        self._lock = threading.Lock()
        self._closed = False
        # A job ended with GS r 1 whose answer has not come: that answer may still arrive
        # (a printer holding a stopped job finishes it once its paper is loaded).
        self._awaiting = False
        self._confirmed = False

    # -- identity and lifetime -------------------------------------------------------------

    @property
    def port_name(self) -> str:
        name = getattr(self._port, "name", None) or getattr(self._port, "port", None)
        return str(name) if name else type(self._port).__name__

    def __repr__(self) -> str:
        return f"<EscPosPrinter {self.name!r} on {self.port_name}>"

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop using the port. Idempotent; the port itself stays open (the caller owns it)."""
        self._closed = True

    def __enter__(self) -> EscPosPrinter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- commands ----------------------------------------------------------------------------

    def init(self) -> Status:
        """ESC @ (clear the buffer, default modes), then the status: proves it answers."""
        with self._lock:
            self._write(INIT)
            return self._status()

    def status(self) -> Status:
        """The printer's state now (DLE EOT 1-4)."""
        with self._lock:
            return self._status()

    def print_document(self, document: list[Item]) -> PrintResult:
        """Print ``document``; returns once printed, otherwise raises (module docstring)."""
        encoded = encode_document(document, chars_per_line=self.chars_per_line,
                                  encoding=self.encoding)
        with self._lock:
            before = self._status()
            if before.problems:
                raise PrinterNotReady(self.name, "cannot print: "
                                      + ", ".join(before.problems), before)
            if self._awaiting:
                self._settle()
            data = encoded.data + (PAPER_SENSOR_STATUS if self.confirm_printed else b"")
            self._confirmed = False
            self._awaiting = self.confirm_printed
            self._write(data)
            if self.confirm_printed:
                self._wait_printed()
            else:
                self._drain()
            after = self._status()
            if not self.confirm_printed and after.problems:
                raise PrintIncomplete(self.name, "the printer stopped during the job: "
                                      + ", ".join(after.problems), after)
            return PrintResult(len(data), encoded.replaced, self.confirm_printed, after)

    # -- internals ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise DeviceGone(self.name, "the driver was closed")

    def _write(self, data: bytes) -> None:
        self._check_open()
        try:
            self._port.write(data)
        except SerialTimeoutException as exc:
            raise DeviceTimeout(self.name, f"the printer did not take {len(data)} bytes in "
                                "time (busy, or its buffer is full)") from exc
        except PORT_ERRORS as exc:
            raise self._gone(exc) from exc

    def _drain(self) -> None:
        try:
            self._port.flush()
        except PORT_ERRORS as exc:
            raise self._gone(exc) from exc

    def _status(self) -> Status:
        self._check_open()
        try:
            self._port.reset_input_buffer()
        except PORT_ERRORS as exc:
            raise self._gone(exc) from exc
        return Status.from_bytes(bytes(self._ask(n) for n in range(1, 5)), self.name)

    def _ask(self, n: int) -> int:
        """The answer to DLE EOT ``n``. A GS r answer arriving meanwhile is noted."""
        self._write(status_request(n))
        deadline = time.monotonic() + self.timeout
        while True:
            byte = self._read_byte(deadline)
            if byte is None:
                raise DeviceTimeout(self.name, f"no answer to DLE EOT {n} within "
                                    f"{self.timeout:g} s", timeout=self.timeout)
            if self._awaiting and is_paper_sensor_byte(byte):
                self._confirmed, self._awaiting = True, False
                continue
            parse_status(n, byte, self.name)  # raises FrameError for an impossible byte
            return byte

    def _settle(self) -> None:
        """After a job that was never confirmed, the printer may still hold it (most finish
        a stopped job once paper is loaded) and answer its GS r late. Send a GS r of our own,
        wait for it, and take every answer until the line is quiet, so that a late answer is
        never taken for the next job's."""
        self._confirmed = False
        self._write(PAPER_SENSOR_STATUS)
        self._wait_printed(PrinterNotReady, "the printer stopped while finishing an "
                           "earlier receipt")
        while (byte := self._read_byte(time.monotonic() + self.poll_interval)) is not None:
            if not is_paper_sensor_byte(byte):
                raise FrameError(self.name, f"0x{byte:02X} while waiting for the end of an "
                                 "earlier job", received=f"{byte:02X}")

    def _wait_printed(self, failure: type[PrinterNotReady] = PrintIncomplete,
                      detail: str = "the printer stopped during the job") -> None:
        """Wait for the answer to the GS r 1 that ended the job, asking the status between
        waits; a status that says the printer stopped raises ``failure``."""
        deadline = time.monotonic() + self.print_timeout
        while True:
            poll_until = min(deadline, time.monotonic() + self.poll_interval)
            while not self._confirmed:
                byte = self._read_byte(poll_until)
                if byte is None:
                    break
                if not is_paper_sensor_byte(byte):
                    raise FrameError(self.name, f"0x{byte:02X} while waiting for the end of "
                                     "the job: neither a GS r nor an asked-for status answer",
                                     received=f"{byte:02X}")
                self._confirmed, self._awaiting = True, False
            if self._confirmed:
                return
            raw = bytes(self._ask(n) for n in range(1, 5))
            status = Status.from_bytes(raw, self.name)
            if status.problems:
                raise failure(self.name, f"{detail}: " + ", ".join(status.problems), status)
            if self._confirmed:
                return
            if time.monotonic() >= deadline:
                raise DeviceTimeout(self.name, f"the printer did not confirm the end of the "
                                    f"job within {self.print_timeout:g} s (does it answer "
                                    "GS r 1? if not, turn confirm_printed off)",
                                    timeout=self.print_timeout)

    def _read_byte(self, deadline: float) -> int | None:
        """One byte, or None when none came by ``deadline``.

        The port's own timeout is left alone: pyserial reconfigures the tty to change it,
        which some ttys refuse once open. A port with a file descriptor is waited on with
        select(); any other (``socket://``, ``loop://``) waits as long as its timeout says.
        """
        self._check_open()
        try:
            fd = self._fileno()
            if fd is None:
                data = self._port.read(1)
            else:
                ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
                # Readable with nothing waiting means the line hung up; read() then raises.
                data = self._port.read(1) if ready else b""
        except PORT_ERRORS as exc:
            raise self._gone(exc) from exc
        return data[0] if data else None

    def _fileno(self) -> int | None:
        try:
            return self._port.fileno()
        except (AttributeError, NotImplementedError, ValueError, OSError, SerialException):
            return None

    def _gone(self, exc: BaseException) -> DeviceGone:
        return DeviceGone(self.name, f"the port failed ({exc}); unplugged?",
                          error=type(exc).__name__)
