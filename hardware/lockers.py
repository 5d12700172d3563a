"""Reserved-book lockers on GPIO: banks of slots, each a latch and a door sensor.

Slots are named by bank letter and number within the bank: with ``bank_size=4`` the latch
pins ``(5, 6, 13, 19, 26, 16)`` are the slots A01 A02 A03 A04 B01 B02. A bank is the group of
latches that share one supply (one relay board, one 12 V adapter): at most ``max_energised``
of them are energised at once, so the supply never browns out and the Pi's 5 V rail is not
disturbed. A caller whose slot's bank is busy waits its turn, within its timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hardware.latch import (
    LOCKER_MAX_PULSE_S,
    DoorSensor,
    Latch,
    LatchedDoor,
    check_pin,
    check_range,
    close_all,
)
from hardware.roles import Locker, OpenResult

MAX_BANKS = 26  # one letter each


def slot_names(count: int, bank_size: int) -> list[str]:
    """``count`` slot names, ``bank_size`` to a bank: A01 A02 ... B01 ..."""
    return [f"{chr(ord('A') + i // bank_size)}{i % bank_size + 1:02d}" for i in range(count)]


@dataclass(frozen=True)
class LockerSpec:
    """The lockers' GPIO wiring and timing. ``latch_pins[i]`` and ``sensor_pins[i]`` belong to
    slot ``slot_names[i]``. Times in milliseconds; ``pulse_ms`` is capped at 2000 (the
    solenoids' duty). ``latch_active_high`` False is for boards that switch on a low input;
    ``sensor_open_when_high`` True is a switch to ground with the pull-up (the usual wiring),
    False a switch to 3.3 V with the pull-down. ``left_open_after_s``: a slot's door open
    longer than this is "left open" (the daemon raises an alarm). ``simulated``: the pins are
    mock pins driven by :class:`hardware.sim.doors.SimulatedDoors`. Invalid values raise
    ValueError naming the field."""

    latch_pins: tuple[int, ...]
    sensor_pins: tuple[int, ...]
    bank_size: int = 4
    max_energised: int = 1
    pulse_ms: int = 500
    open_timeout_ms: int = 5000
    debounce_ms: int = 30
    latch_active_high: bool = True
    sensor_open_when_high: bool = True
    left_open_after_s: float = 60.0
    simulated: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "latch_pins", tuple(self.latch_pins))
        object.__setattr__(self, "sensor_pins", tuple(self.sensor_pins))
        if not self.latch_pins:
            raise ValueError("latch_pins: at least one slot is needed")
        for field in ("latch_pins", "sensor_pins"):
            for pin in getattr(self, field):
                check_pin(field, pin)
        if len(self.sensor_pins) != len(self.latch_pins):
            raise ValueError(f"sensor_pins: {len(self.sensor_pins)} pins for "
                             f"{len(self.latch_pins)} latch_pins; each slot needs one of each")
        pins = self.latch_pins + self.sensor_pins
        if len(set(pins)) != len(pins):
            twice = sorted({p for p in pins if pins.count(p) > 1})
            raise ValueError(f"sensor_pins: GPIO {twice} used more than once")
        check_range("bank_size", self.bank_size, 1, 99)
        check_range("latch_pins", len(self.latch_pins), 1, MAX_BANKS * self.bank_size)
        check_range("max_energised", self.max_energised, 1, self.bank_size)
        check_range("pulse_ms", self.pulse_ms, 10, LOCKER_MAX_PULSE_S * 1000)
        check_range("open_timeout_ms", self.open_timeout_ms, self.pulse_ms, 120_000)
        check_range("debounce_ms", self.debounce_ms, 0, 1000)
        check_range("left_open_after_s", self.left_open_after_s, 0.1, 3600)

    @property
    def slots(self) -> list[str]:
        return slot_names(len(self.latch_pins), self.bank_size)

    def pairs(self) -> dict[str, tuple[int, int]]:
        """``{slot: (latch_pin, sensor_pin)}``, as the simulator takes them."""
        return dict(zip(self.slots, zip(self.latch_pins, self.sensor_pins, strict=True),
                        strict=True))


SlotListener = Callable[[str, bool], None]  # (slot, is_open)


class GpioLockers(Locker):
    """The lockers of ``spec`` on gpiozero pins from ``factory`` (passed in, never global).

    A caller may rely on: every latch is released (locked) except during a pulse of at most
    ``pulse_ms`` (and never over 2 s, a watchdog enforces it even for a hung caller); no
    bank has more than ``max_energised`` latches energised at once; :meth:`open` returns
    only when the slot's debounced sensor saw its door open after the pulse began, and
    otherwise raises :class:`~hardware.roles.DoorNotOpened` (``DoorAlreadyOpen`` when it was
    open before) or :class:`~hardware.latch.LatchBusy`, each naming the slot and its pins.
    ``on_change(slot, is_open)`` is called from the sensors' threads on every debounced
    change. ``close()`` leaves every latch locked and frees the pins; it is idempotent.
    """

    def __init__(self, spec: LockerSpec, factory: Any, *, name: str = "lockers",
                 on_change: SlotListener | None = None) -> None:
        self.name = name
        self.spec = spec
        self._factory = factory
        self._on_change = on_change
        self._closed = False
        bank_count = -(-len(spec.latch_pins) // spec.bank_size)
        self._banks = [threading.BoundedSemaphore(spec.max_energised) for _ in range(bank_count)]
        self._slots: dict[str, LatchedDoor] = {}
        self._parts: list[Any] = []
        try:
            for slot, (latch_pin, sensor_pin) in spec.pairs().items():
                self._slots[slot] = self._slot(slot, latch_pin, sensor_pin)
        except BaseException:
            close_all(self._parts)
            raise

    def _slot(self, slot: str, latch_pin: int, sensor_pin: int) -> LatchedDoor:
        spec = self.spec
        label = f"locker {slot}"
        latch = Latch(latch_pin, self._factory, active_high=spec.latch_active_high,
                      max_pulse_s=LOCKER_MAX_PULSE_S, label=label)
        self._parts.append(latch)

        def changed(is_open: bool, at: float) -> None:
            if self._on_change is not None:
                self._on_change(slot, is_open)

        sensor = DoorSensor(sensor_pin, self._factory, open_when_high=spec.sensor_open_when_high,
                            debounce_s=spec.debounce_ms / 1000, label=label, on_change=changed)
        self._parts.append(sensor)
        return LatchedDoor(label, latch, sensor, pulse_s=spec.pulse_ms / 1000,
                           open_timeout_s=spec.open_timeout_ms / 1000)

    def __repr__(self) -> str:
        slots = self.slots
        return (f"<GpioLockers {self.name}: {len(slots)} slots {slots[0]}-{slots[-1]}, latches "
                f"GPIO{','.join(map(str, self.spec.latch_pins))}, sensors "
                f"GPIO{','.join(map(str, self.spec.sensor_pins))}"
                f"{' closed' if self._closed else ''}>")

    @property
    def slots(self) -> list[str]:
        return list(self._slots)

    def slot(self, slot: str) -> LatchedDoor:
        """The latch and sensor of ``slot`` (for self-tests and status); ValueError if none."""
        try:
            return self._slots[slot]
        except KeyError:
            raise ValueError(f"{self.name}: no slot {slot!r} (there are "
                             f"{self.slots[0]}-{self.slots[-1]})") from None

    def bank_of(self, slot: str) -> int:
        """The slot's bank, 0 for A."""
        self.slot(slot)
        return self.slots.index(slot) // self.spec.bank_size

    def open(self, slot: str, timeout: float | None = None) -> OpenResult:
        """Release ``slot``'s latch and wait for its door to open (see the class docstring);
        ``timeout`` defaults to ``open_timeout_ms`` and includes waiting for the bank."""
        door = self.slot(slot)
        result = door.open(timeout, bank=self._banks[self.bank_of(slot)])
        return OpenResult(slot, result.opened_after_s)

    def is_open(self, slot: str) -> bool:
        return self.slot(slot).sensor.is_open

    def wait_closed(self, slot: str, timeout: float) -> bool:
        return self.slot(slot).sensor.wait_for(False, timeout)

    def describe(self) -> dict[str, object]:
        return {
            "kind": "gpio lockers",
            "factory": type(self._factory).__name__,
            "slots": {slot: {"latch_pin": door.latch.pin, "sensor_pin": door.sensor.pin,
                             "open": door.sensor.is_open}
                      for slot, door in self._slots.items()},
            "bank_size": self.spec.bank_size,
            "max_energised": self.spec.max_energised,
            "pulse_ms": self.spec.pulse_ms,
            "watchdog_releases": sum(d.latch.watchdog_releases for d in self._slots.values()),
        }

    def close(self) -> None:
        """Every latch released (locked), then every line freed; idempotent."""
        if self._closed:
            return
        self._closed = True
        # Latches first: whatever happens to the sensors, no coil is left energised.
        close_all([door.latch for door in self._slots.values()]
                  + list(self._slots.values()))


__all__ = ["GpioLockers", "LockerSpec", "slot_names"]
