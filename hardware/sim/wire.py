"""Wires between simulated parts: what a soldered connection does on a real board."""

from __future__ import annotations

from typing import Any


class ResetWire:
    """A GPIO output (gpiozero DigitalOutputDevice, on mock pins) wired to a simulated
    MFRC522's NRSTPD pin: driving the line drives the chip, as the copper would.

    Offers the ``on()``/``off()``/``close()`` of the line it wraps, so the driver gets what it
    would get on a Pi.
    """

    def __init__(self, line: Any, chip: Any) -> None:
        self.line = line
        self.chip = chip
        chip.nrstpd(bool(line.value))

    def on(self) -> None:
        self.line.on()
        self.chip.nrstpd(True)

    def off(self) -> None:
        self.line.off()
        self.chip.nrstpd(False)

    def close(self) -> None:
        self.line.close()

    def __repr__(self) -> str:
        return f"<ResetWire {self.line!r} -> {self.chip!r}>"
