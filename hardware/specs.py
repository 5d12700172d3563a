"""What the hardware layer needs to know to build each device, as plain data.

The kiosk's config turns its ``[tag_reader]``, ``[card_reader]``, ``[gpio]`` and
``[security]`` tables into these; the hardware layer never reads the config file itself.
``"sim"`` as a tag reader's ``url`` or a card reader's ``spi`` means the built-in simulator,
driven by the real driver over the real wire protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from hardware.security import SecurityMode, SecurityPolicy

SIMULATED = "sim"

# Driver names a config may give; hardware.build maps each to its backend.
TAG_READER_DRIVERS = ("feig",)
CARD_READER_DRIVERS = ("mfrc522",)


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
class GpioSpec:
    factory: GpioFactory = GpioFactory.MOCK


@dataclass(frozen=True)
class HardwareSpec:
    tag_reader: TagReaderSpec = field(default_factory=TagReaderSpec)
    card_reader: CardReaderSpec = field(default_factory=CardReaderSpec)
    gpio: GpioSpec = field(default_factory=GpioSpec)
    security: SecurityPolicy = field(default_factory=SecurityPolicy)


__all__ = [
    "CARD_READER_DRIVERS", "SIMULATED", "TAG_READER_DRIVERS", "CardReaderSpec", "GpioFactory",
    "GpioSpec", "HardwareSpec", "SecurityMode", "SecurityPolicy", "TagReaderSpec",
]
