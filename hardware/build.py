"""Building the kiosk's devices from their specs, simulators included.

For a spec that says ``sim``, the simulator is started here (a FEIG reader on a
pseudo-terminal, an MFRC522 chip behind an SPI object) and the REAL driver is connected to
it exactly as it would be to the hardware; :class:`Devices` keeps the simulators so the
daemon's ``kiosk sim ...`` commands and the tests can act on them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hardware.card_reader import Mfrc522CardReader, spidev_opener
from hardware.door import GpioDoor
from hardware.link import StateListener
from hardware.lockers import GpioLockers
from hardware.printer import build_printer
from hardware.roles import CardReader, Door, Locker, ReceiptPrinter, TagReader
from hardware.specs import (
    CARD_READER_DRIVERS,
    CardReaderSpec,
    DoorSpec,
    GpioFactory,
    HardwareSpec,
    LockerSpec,
    TagReaderSpec,
)
from hardware.tag_reader import FeigTagReader


def pin_factory(kind: GpioFactory) -> Any:
    """A gpiozero pin factory. Passed to each device, never set process-wide."""
    if kind is GpioFactory.MOCK:
        from gpiozero.pins.mock import MockFactory

        return MockFactory()
    if kind is GpioFactory.LGPIO:
        from gpiozero.pins.lgpio import LGPIOFactory

        return LGPIOFactory()
    from gpiozero.pins.rpigpio import RPiGPIOFactory

    return RPiGPIOFactory()


@dataclass
class Simulators:
    """The simulated devices behind a simulated kiosk (None where a real device is used)."""

    tag_pad: Any = None
    card_chip: Any = None
    printer: Any = None
    locker_doors: Any = None
    entrance: Any = None
    entrance_chip: Any = None  # the entrance card reader's simulated MFRC522

    def stop(self) -> None:
        for sim in (self.tag_pad, self.printer, self.locker_doors, self.entrance):
            if sim is not None:
                with contextlib.suppress(Exception):
                    sim.stop()


@dataclass
class Devices:
    tag_reader: TagReader
    card_reader: CardReader
    sims: Simulators = field(default_factory=Simulators)
    pins: Any = None
    printer: ReceiptPrinter | None = None
    lockers: Locker | None = None
    door: Door | None = None
    entrance_reader: CardReader | None = None
    extra_pins: list[Any] = field(default_factory=list)

    def close(self) -> None:
        """Every device to its safe state (latches locked, readers' fields off) and closed,
        then the simulators stopped and the pins released. Each step runs even if an earlier
        one fails."""
        steps = [d.close for d in (self.lockers, self.door, self.printer) if d is not None]
        steps += [self.card_reader.close, self.tag_reader.close]
        if self.entrance_reader is not None:
            steps.append(self.entrance_reader.close)
        steps.append(self.sims.stop)
        steps += [p.close for p in (self.pins, *self.extra_pins) if p is not None]
        for step in steps:
            with contextlib.suppress(Exception):
                step()

    def __enter__(self) -> Devices:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _feig_simulator(spec: TagReaderSpec, runtime_dir: Path) -> Any:
    from hardware.sim.feig import FeigSimulator

    return FeigSimulator(runtime_dir, baud=spec.baudrate, address=spec.address).start()


# Backends by the driver name a config gives: (role class, simulator factory).
TAG_READERS: dict[str, tuple[type, Callable[[TagReaderSpec, Path], Any]]] = {
    "feig": (FeigTagReader, _feig_simulator),
}


def tag_reader(spec: TagReaderSpec, runtime_dir: Path, *,
               on_change: StateListener | None = None) -> tuple[FeigTagReader, Any]:
    """The tag reader of ``spec`` and its simulator (None for a real reader). Not started."""
    role, simulate = TAG_READERS[spec.driver]
    simulator = simulate(spec, runtime_dir) if spec.simulated else None
    url = str(simulator.path) if simulator is not None else spec.url
    return role(spec, url, on_change=on_change), simulator


def card_reader(spec: CardReaderSpec, pins: Any, *, on_change: StateListener | None = None,
                label: str = "card reader") -> tuple[Mfrc522CardReader, Any]:
    """The card reader of ``spec`` and its simulated chip (None for a real one). Not started.
    ``label`` names it (see :class:`~hardware.card_reader.Mfrc522CardReader`)."""
    from gpiozero import DigitalOutputDevice

    if spec.driver not in CARD_READER_DRIVERS:
        raise ValueError(f"no card reader driver {spec.driver!r}")
    line = DigitalOutputDevice(spec.reset_pin, pin_factory=pins, initial_value=True)
    if spec.simulated:
        from hardware.sim.mfrc522 import SimulatedMFRC522
        from hardware.sim.wire import ResetWire

        chip = SimulatedMFRC522()
        reader = Mfrc522CardReader(spec, lambda: (chip, lambda: None), where="sim",
                                   reset=ResetWire(line, chip), on_change=on_change,
                                   label=label)
        return reader, chip
    return (Mfrc522CardReader(spec, spidev_opener(spec), where=f"spi{spec.spi}",
                              reset=line, on_change=on_change, label=label), None)


# Receipt printers by driver name: a builder returning (role, simulator or None).
PRINTERS: dict[str, tuple[Callable[..., tuple[Any, Any]], str]] = {
    "escpos": (build_printer, "ESC/POS over serial, usblp:// or socket://"),
}


def _own_pins(simulated: bool, pins: Any, devices: Devices) -> Any:
    """A simulated latch device gets its own mock pins, so a real Pi may run with simulated
    lockers (and the other way round) without the two sharing a pin factory."""
    if not simulated:
        return pins
    mock = pin_factory(GpioFactory.MOCK)
    devices.extra_pins.append(mock)
    return mock


def lockers(spec: LockerSpec, pins: Any) -> tuple[GpioLockers, Any]:
    """Hold lockers on ``pins``; for a simulated spec, the simulated doors first (they must
    own the latch pins before the lockers open them)."""
    sim = None
    if spec.simulated:
        from hardware.sim.doors import SimulatedDoors

        sim = SimulatedDoors(pins, spec.pairs(), latch_active_high=spec.latch_active_high,
                             sensor_open_when_high=spec.sensor_open_when_high)
    return GpioLockers(spec, pins), sim


def door(spec: DoorSpec, pins: Any) -> tuple[GpioDoor, Any]:
    sim = None
    if spec.simulated:
        from hardware.sim.doors import SimulatedDoors

        sim = SimulatedDoors(pins, spec.pairs(), latch_active_high=spec.latch_active_high,
                             sensor_open_when_high=spec.sensor_open_when_high)
    return GpioDoor(spec, pins), sim


def build(spec: HardwareSpec, runtime_dir: Path, *, on_change: StateListener | None = None,
          wait: float = 2.0) -> Devices:
    """Every device of ``spec``, started (each waits up to ``wait`` s for its device and
    otherwise keeps connecting in the background: a missing reader never stops the kiosk)."""
    runtime_dir.mkdir(parents=True, exist_ok=True)
    pins = pin_factory(spec.gpio.factory)
    tags, pad = tag_reader(spec.tag_reader, runtime_dir, on_change=on_change)
    cards, chip = card_reader(spec.card_reader, pins, on_change=on_change)
    devices = Devices(tags, cards, Simulators(pad, chip), pins)
    try:
        make_printer, _ = PRINTERS[spec.printer.driver]
        devices.printer, devices.sims.printer = make_printer(spec.printer, runtime_dir,
                                                             on_change=on_change)
        if spec.lockers is not None:
            devices.lockers, devices.sims.locker_doors = lockers(
                spec.lockers, _own_pins(spec.lockers.simulated, pins, devices))
        if spec.door is not None:
            devices.door, devices.sims.entrance = door(
                spec.door, _own_pins(spec.door.simulated, pins, devices))
        if spec.entrance_reader is not None:
            devices.entrance_reader, devices.sims.entrance_chip = card_reader(
                spec.entrance_reader, pins, on_change=on_change, label="entrance card reader")
    except BaseException:
        devices.close()
        raise
    for device in (tags, cards, devices.printer, devices.entrance_reader):
        if device is not None:
            device.start(wait=wait)
    return devices
