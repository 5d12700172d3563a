"""The patron-card reader role on an MFRC522, kept connected by a :class:`Link`.

The SPI device and the reset GPIO are opened here (``spidev`` on a Pi, the simulated chip
for ``spi = "sim"``); the driver gets them open. ``spidev`` is imported only when a real
SPI device is configured, so the kiosk loads on any machine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from drivers.errors import DriverError, NoTag
from drivers.iso14443a import Card
from drivers.mfrc522 import MFRC522
from hardware.link import Link, StateListener
from hardware.roles import CardInField, CardReader
from hardware.specs import CardReaderSpec

T = TypeVar("T")

# Opens what the chip hangs off: returns (an object with xfer2, a close callable).
SpiOpener = Callable[[], tuple[Any, Callable[[], None]]]


def spidev_opener(spec: CardReaderSpec) -> SpiOpener:
    """Open ``/dev/spidevB.D`` with the spec's clock, SPI mode 0 (as the MFRC522 wants)."""
    bus, device = (int(part) for part in spec.spi.split("."))

    def open_spi() -> tuple[Any, Callable[[], None]]:
        import spidev  # only on a Pi: the `pi` extra installs it

        spi = spidev.SpiDev()
        spi.open(bus, device)
        spi.max_speed_hz = spec.spi_hz
        spi.mode = 0
        return spi, spi.close

    return open_spi


@dataclass(frozen=True)
class _Open:
    chip: MFRC522
    close_spi: Callable[[], None]


class Mfrc522CardReader(CardReader):
    """An MFRC522 on an SPI device (or the simulated chip), with an optional reset line
    (gpiozero DigitalOutputDevice). ``card_block``/``key`` say where the library-card number
    lives on a MIFARE Classic card. ``label`` tells two readers of one kiosk apart in logs
    and status (the one at the entrance is ``entrance card reader``)."""

    def __init__(self, spec: CardReaderSpec, open_spi: SpiOpener, *, where: str,
                 reset: Any = None, on_change: StateListener | None = None,
                 label: str = "card reader") -> None:
        self.spec = spec
        self.name = f"{label} {where}"
        self._open_spi = open_spi
        self._reset = reset
        self.link: Link[_Open] = Link(self.name, self._connect, self._disconnect,
                                      on_change=on_change)

    def __repr__(self) -> str:
        return f"<Mfrc522CardReader {self.name} {'online' if self.link.online else 'offline'}>"

    def start(self, wait: float = 0.0) -> bool:
        return self.link.start(wait)

    def _connect(self) -> _Open:
        spi, close_spi = self._open_spi()
        try:
            chip = MFRC522(spi, reset=self._reset, name=self.name)
            chip.init()
        except BaseException:
            close_spi()
            raise
        return _Open(chip, close_spi)

    @staticmethod
    def _disconnect(device: _Open) -> None:
        try:
            device.chip.close()
        finally:
            device.close_spi()

    def _call(self, action: Callable[[MFRC522], T]) -> T:
        return self.link.call(lambda device: action(device.chip))

    def close(self) -> None:
        self.link.close()
        if self._reset is not None:
            # Safe state: the chip held in power-down.
            self._reset.off()
            self._reset.close()

    def describe(self) -> dict[str, object]:
        version = self._call(lambda chip: chip.version())
        return {"driver": "mfrc522", "where": self.name, "version": f"0x{version:02X}"}

    # A card resting on the reader must be seen at every poll, but an ACTIVE card ignores
    # REQA and WUPA alike: every operation here ends by halting the card, and polls wake
    # halted cards (WUPA), so the next poll finds it again.

    @staticmethod
    def _rest(chip: MFRC522) -> None:
        with contextlib.suppress(DriverError):
            chip.halt()

    def poll(self) -> CardInField | None:
        def run(chip: MFRC522) -> CardInField | None:
            card = chip.poll(wakeup=True)
            if card is None:
                return None
            self._rest(chip)
            return CardInField(card.uid, card.sak, card.atqa)

        return self._call(run)

    def _on_card(self, card: CardInField, action: Callable[[MFRC522, Card], T]) -> T:
        """Wake and select ``card`` again, run ``action`` on it, halt it."""
        def run(chip: MFRC522) -> T:
            found = chip.poll(wakeup=True)
            if found is None or found.uid != card.uid:
                raise NoTag(self.name, f"card {card.uid_hex} is no longer on the reader",
                            status=0)
            try:
                return action(chip, found)
            finally:
                self._rest(chip)

        return self._call(run)

    def read_card_number(self, card: CardInField) -> str | None:
        spec = self.spec
        return self._on_card(card, lambda chip, found: chip.read_card_number(
            found, spec.card_block, spec.key_bytes, spec.key_type))

    def write_card_number(self, card: CardInField, number: str) -> None:
        spec = self.spec
        self._on_card(card, lambda chip, found: chip.write_card_number(
            found, spec.card_block, spec.key_bytes, number, spec.key_type))

    def self_test(self) -> dict[str, object]:
        def run(chip: MFRC522) -> dict[str, object]:
            version = chip.version()
            chip.self_test()
            chip.init()  # the self-test leaves the chip reset; make it usable again
            return {"version": f"0x{version:02X}", "self_test": "passed"}

        return self._call(run)
