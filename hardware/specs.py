"""What the hardware layer needs to know to build each device, as plain data.

The kiosk's config turns its ``[tag_reader]``, ``[card_reader]``, ``[gpio]`` and
``[security]`` tables into these; the hardware layer never reads the config file itself.
``"sim"`` as a tag reader's ``url`` or a card reader's ``spi`` means the built-in simulator,
driven by the real driver over the real wire protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from hardware.door import DoorSpec
from hardware.lockers import LockerSpec
from hardware.security import SecurityMode, SecurityPolicy

SIMULATED = "sim"

# Driver names a config may give; hardware.build maps each to its backend.
TAG_READER_DRIVERS = ("feig",)
CARD_READER_DRIVERS = ("mfrc522",)
PRINTER_DRIVERS = ("escpos",)


class GpioFactory(StrEnum):
    """gpiozero pin factories: lgpio works on every Pi (5 included); rpigpio for old
    installs; mock for the simulated kiosk and the tests."""

    LGPIO = "lgpio"
    RPIGPIO = "rpigpio"
    MOCK = "mock"


@dataclass(frozen=True)
class TagReaderSpec:
    driver: str = "feig"
    url: str = SIMULATED
    baudrate: int = 38400
    parity: str = "E"
    address: int = 0xFF
    timeout_ms: int = 1000

    @property
    def simulated(self) -> bool:
        return self.url == SIMULATED


@dataclass(frozen=True)
class CardReaderSpec:
    driver: str = "mfrc522"
    spi: str = SIMULATED
    spi_hz: int = 1_000_000
    reset_pin: int = 25
    card_block: int = 4
    key: str = "FFFFFFFFFFFF"
    key_type: str = "A"

    @property
    def simulated(self) -> bool:
        return self.spi == SIMULATED

    @property
    def key_bytes(self) -> bytes:
        return bytes.fromhex(self.key)


@dataclass(frozen=True)
class PrinterSpec:
    """What the hardware layer needs to build a receipt printer (``[printer]`` in the config).

    ``paper_dots``: 384 for 58 mm paper, 576 for 80 mm; ``chars_per_line`` 32 and 48 with
    the usual 12-dot font. ``encoding``: the printer's Chinese font, "gb18030" (two-byte
    area, GBK and more), "gbk", or "gb2312" for printers that only have GB2312.
    ``confirm_printed``: end each receipt with GS r 1 and wait for its answer (turn off for
    a printer that never answers it). ``baudrate`` and ``parity`` matter on serial lines only.
    """

    driver: str = "escpos"
    url: str = SIMULATED
    baudrate: int = 115200
    parity: str = "N"
    paper_dots: int = 384
    chars_per_line: int = 32
    timeout_ms: int = 2000
    encoding: str = "gb18030"
    confirm_printed: bool = True
    print_timeout_ms: int = 20000

    @property
    def simulated(self) -> bool:
        return self.url == SIMULATED


@dataclass(frozen=True)
class GpioSpec:
    factory: GpioFactory = GpioFactory.MOCK


# The simulated 24-hour space: four hold lockers and the entrance door, on pins that are
# pulled down while a Pi boots (see docs/wiring-lockers-door.md).
SIM_LOCKERS = LockerSpec(latch_pins=(17, 27, 22, 23), sensor_pins=(5, 6, 12, 13))
SIM_DOOR = DoorSpec(latch_pin=16, sensor_pin=26, pulse_ms=3000)
# The card reader outside the entrance of a 24-hour space (night entry): a second MFRC522 on
# SPI0 CE1, its reset line on GPIO4 (free beside the lockers and the door).
ENTRANCE_READER_SPI = "0.1"
SIM_ENTRANCE_READER = CardReaderSpec(reset_pin=4)


@dataclass(frozen=True)
class HardwareSpec:
    """Every device of a kiosk; ``lockers``/``door``/``entrance_reader`` are None where there
    are none (a van)."""

    tag_reader: TagReaderSpec = field(default_factory=TagReaderSpec)
    card_reader: CardReaderSpec = field(default_factory=CardReaderSpec)
    gpio: GpioSpec = field(default_factory=GpioSpec)
    security: SecurityPolicy = field(default_factory=SecurityPolicy)
    printer: PrinterSpec = field(default_factory=PrinterSpec)
    lockers: LockerSpec | None = SIM_LOCKERS
    door: DoorSpec | None = SIM_DOOR
    entrance_reader: CardReaderSpec | None = SIM_ENTRANCE_READER


__all__ = [
    "CARD_READER_DRIVERS", "ENTRANCE_READER_SPI", "PRINTER_DRIVERS", "SIMULATED", "SIM_DOOR",
    "SIM_ENTRANCE_READER", "SIM_LOCKERS", "TAG_READER_DRIVERS",
    "CardReaderSpec", "DoorSpec", "GpioFactory", "GpioSpec", "HardwareSpec", "LockerSpec",
    "PrinterSpec", "SecurityMode", "SecurityPolicy", "TagReaderSpec",
]
