"""The receipt-printer role on an ESC/POS printer, kept connected by a :class:`Link`.

The transport is opened here from the configured URL, with pyserial's exclusive lock so a
second process cannot print over the daemon: a serial port (``/dev/kiosk-printer``), a
network printer (``socket://192.168.1.50:9100``), or a USB printer-class device
(``usblp:///dev/usb/lp0``, through :mod:`hardware.transports.protocol_usblp`, which importing
this module registers with pyserial). The driver only ever gets the open port.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import serial

from drivers.escpos import EscPosPrinter, Item, PrinterNotReady, PrintIncomplete, PrintResult
from drivers.escpos import Status as DriverStatus
from hardware.link import Link, StateListener
from hardware.roles import PrinterProblem, PrinterStatus, ReceiptPrinter
from hardware.specs import PRINTER_DRIVERS, PrinterSpec

# pyserial's documented way to add URL schemes: a package searched for protocol_<scheme>.
if "hardware.transports" not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append("hardware.transports")

_PARITY = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}
T = TypeVar("T")


@dataclass(frozen=True)
class _Open:
    """A connected printer and the port this module opened for it."""

    printer: EscPosPrinter
    port: serial.SerialBase


def role_status(status: DriverStatus) -> PrinterStatus:
    """The driver's status as the role's :class:`PrinterStatus`."""
    return PrinterStatus(
        online=status.online, cover_open=status.cover_open,
        paper_near_end=status.paper_near_end, paper_out=status.paper_out,
        cutter_error=status.cutter_error, unrecoverable_error=status.unrecoverable_error,
        autorecoverable_error=status.autorecoverable_error, feed_button=status.feed_button)


class EscPosReceiptPrinter(ReceiptPrinter):
    """An ESC/POS printer at ``url`` (the simulator's path when the spec says ``sim``).

    ``start()`` connects (or keeps trying in the background); each call then runs on the
    printer through the link, so an unplugged printer fails fast with DeviceOffline and is
    initialised again by itself within about 2 s of coming back.
    """

    def __init__(self, spec: PrinterSpec, url: str, *,
                 on_change: StateListener | None = None) -> None:
        if spec.driver not in PRINTER_DRIVERS:
            raise ValueError(f"no printer driver {spec.driver!r}")
        self.spec = spec
        self.url = url
        self.name = f"receipt printer {url}"
        self.link: Link[_Open] = Link(self.name, self._connect, self._disconnect,
                                      on_change=on_change)

    def __repr__(self) -> str:
        return f"<EscPosReceiptPrinter {self.url} {'online' if self.link.online else 'offline'}>"

    def start(self, wait: float = 0.0) -> bool:
        return self.link.start(wait)

    def _connect(self) -> _Open:
        timeout = self.spec.timeout_ms / 1000
        port = serial.serial_for_url(
            self.url, baudrate=self.spec.baudrate, parity=_PARITY[self.spec.parity],
            bytesize=serial.EIGHTBITS, stopbits=serial.STOPBITS_ONE, timeout=timeout,
            # A printer that stops taking data (offline, buffer full) must not hang a write.
            write_timeout=self.spec.print_timeout_ms / 1000, exclusive=True,
        )
        try:
            printer = EscPosPrinter(
                port, name=self.name, timeout=timeout, chars_per_line=self.spec.chars_per_line,
                encoding=self.spec.encoding, confirm_printed=self.spec.confirm_printed,
                print_timeout=self.spec.print_timeout_ms / 1000)
            printer.init()  # proves it answers; a printer out of paper is still connected
        except BaseException:
            port.close()
            raise
        return _Open(printer, port)

    @staticmethod
    def _disconnect(device: _Open) -> None:
        try:
            device.printer.close()
        finally:
            device.port.close()

    def _call(self, action: Callable[[EscPosPrinter], T]) -> T:
        return self.link.call(lambda device: action(device.printer))

    def close(self) -> None:
        self.link.close()

    def describe(self) -> dict[str, object]:
        status = self._call(lambda p: p.status())
        return {"driver": "escpos", "url": self.url, "paper_dots": self.spec.paper_dots,
                "chars_per_line": self.spec.chars_per_line, "encoding": self.spec.encoding,
                "status_bytes": status.raw.hex(" "), "problems": status.problems}

    def status(self) -> PrinterStatus:
        return role_status(self._call(lambda p: p.status()))

    def print_receipt(self, document: list[Item]) -> PrintResult:
        """Print ``document``. Returns the driver's :class:`PrintResult` (which characters
        were printed as 〓) once the printer has printed it all; raises PrinterProblem when
        its status says it cannot print or stopped during the receipt (``params["printed"]``
        says "nothing" or "partly"), DeviceOffline while it is unplugged, and the driver's
        errors otherwise."""
        try:
            return self._call(lambda p: p.print_document(document))
        except PrinterNotReady as exc:
            printed = "partly" if isinstance(exc, PrintIncomplete) else "nothing"
            raise PrinterProblem(self.name, exc.detail, problems=exc.problems,
                                 printed=printed, status=exc.params["raw"]) from exc


def build_printer(spec: PrinterSpec, runtime_dir: Path, *,
                  on_change: StateListener | None = None) -> tuple[EscPosReceiptPrinter, Any]:
    """The printer of ``spec`` and its simulator (None for a real printer). Not started.
    The simulator draws its receipts into ``runtime_dir/receipts``."""
    simulator = None
    if spec.simulated:
        from hardware.sim.escpos_printer import EscPosSimulator

        simulator = EscPosSimulator(runtime_dir, out_dir=runtime_dir / "receipts",
                                    baud=spec.baudrate, paper_dots=spec.paper_dots,
                                    chars_per_line=spec.chars_per_line).start()
    url = str(simulator.path) if simulator is not None else spec.url
    return EscPosReceiptPrinter(spec, url, on_change=on_change), simulator
