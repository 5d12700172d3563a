"""The entrance door of a 24-hour reading space on GPIO: a latch, a door sensor, and an alarm
when the door stays open too long.

The latch output drives a relay (or MOSFET) that releases the door: for an electric strike or
a fail-secure lock the relay powers it, for a fail-safe maglock the relay's normally-closed
contact cuts its power. Either way "latch energised" means "door released" and the safe
state on shutdown is "not energised". A fail-safe maglock then holds the door, and it opens
when the power fails. Whatever the kiosk does, people inside must always be able to leave
by a mechanical handle or exit button that does not go through it (see
docs/wiring-lockers-door.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hardware.latch import (
    DOOR_MAX_PULSE_S,
    DoorSensor,
    Latch,
    LatchedDoor,
    check_pin,
    check_range,
    close_all,
)
from hardware.roles import Door, OpenResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DoorSpec:
    """The entrance door's GPIO wiring and timing (milliseconds, except ``left_open_after_s``).
    ``pulse_ms`` is capped at 10000: strikes and maglocks are rated for continuous duty, and
    slow walkers need the time. Polarities and ``simulated`` as in
    :class:`hardware.lockers.LockerSpec`. Invalid values raise ValueError naming the field."""

    latch_pin: int
    sensor_pin: int
    pulse_ms: int = 800
    open_timeout_ms: int = 8000
    left_open_after_s: float = 30.0
    debounce_ms: int = 30
    latch_active_high: bool = True
    sensor_open_when_high: bool = True
    simulated: bool = True

    def __post_init__(self) -> None:
        check_pin("latch_pin", self.latch_pin)
        check_pin("sensor_pin", self.sensor_pin)
        if self.sensor_pin == self.latch_pin:
            raise ValueError(f"sensor_pin: GPIO{self.sensor_pin} is also the latch_pin")
        check_range("pulse_ms", self.pulse_ms, 10, DOOR_MAX_PULSE_S * 1000)
        check_range("open_timeout_ms", self.open_timeout_ms, self.pulse_ms, 120_000)
        check_range("left_open_after_s", self.left_open_after_s, 0.1, 3600)
        check_range("debounce_ms", self.debounce_ms, 0, 1000)

    def pairs(self, name: str = "door") -> dict[str, tuple[int, int]]:
        """``{name: (latch_pin, sensor_pin)}``, as the simulator takes them."""
        return {name: (self.latch_pin, self.sensor_pin)}


ChangeListener = Callable[[str, bool], None]  # (name, is_open)
AlarmListener = Callable[[str, bool], None]  # (name, left_open)


class GpioDoor(Door):
    """The door of ``spec`` on gpiozero pins from ``factory`` (passed in, never global).

    :meth:`open` follows the locker rules (bounded pulse, watchdog, released as soon as the
    door opens, DoorNotOpened/DoorAlreadyOpen naming the pins). :attr:`left_open` becomes
    True once the debounced sensor has said "open" for ``left_open_after_s`` without a
    break, however the door was opened (by the latch, from inside, by force); it becomes
    False when the door closes. ``on_change(name, is_open)`` is called on each debounced
    change, ``on_alarm(name, left_open)`` once when the alarm starts and once when it ends;
    both from the door's own threads, and an exception in them is logged, never raised.
    """

    def __init__(self, spec: DoorSpec, factory: Any, *, name: str = "entrance door",
                 on_change: ChangeListener | None = None,
                 on_alarm: AlarmListener | None = None) -> None:
        self.name = name
        self.spec = spec
        self._factory = factory
        self._on_change = on_change
        self._on_alarm = on_alarm
        self._lock = threading.Lock()
        self._opened_at: float | None = None
        self._alarm = False
        self._timer: threading.Timer | None = None
        self._closed = False
        latch = Latch(spec.latch_pin, factory, active_high=spec.latch_active_high,
                      max_pulse_s=DOOR_MAX_PULSE_S, label=name)
        try:
            sensor = DoorSensor(spec.sensor_pin, factory,
                                open_when_high=spec.sensor_open_when_high,
                                debounce_s=spec.debounce_ms / 1000, label=name,
                                on_change=self._changed)
        except BaseException:
            latch.close()
            raise
        self._door = LatchedDoor(name, latch, sensor, pulse_s=spec.pulse_ms / 1000,
                                 open_timeout_s=spec.open_timeout_ms / 1000)
        with self._lock:
            if sensor.is_open and self._opened_at is None:
                # Open at start-up (or a cut wire): the alarm clock runs from now.
                self._arm(time.monotonic())

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("open" if self.is_open() else "shut")
        return (f"<GpioDoor {self.name}: latch GPIO{self.spec.latch_pin}, sensor "
                f"GPIO{self.spec.sensor_pin}, {state}>")

    @property
    def latched_door(self) -> LatchedDoor:
        """The latch and sensor (for self-tests and status)."""
        return self._door

    def open(self, timeout: float | None = None) -> OpenResult:
        """Release the latch and wait for the door to open; ``timeout`` defaults to
        ``open_timeout_ms``."""
        return self._door.open(timeout)

    def is_open(self) -> bool:
        return self._door.sensor.is_open

    def wait_closed(self, timeout: float) -> bool:
        return self._door.sensor.wait_for(False, timeout)

    @property
    def open_for_s(self) -> float:
        """How long the door has been open without a break; 0.0 while it is closed."""
        opened_at = self._opened_at
        return 0.0 if opened_at is None else max(time.monotonic() - opened_at, 0.0)

    @property
    def left_open(self) -> bool:
        with self._lock:
            return self._alarm

    def describe(self) -> dict[str, object]:
        return {
            "kind": "gpio door",
            "factory": type(self._factory).__name__,
            "latch_pin": self.spec.latch_pin,
            "sensor_pin": self.spec.sensor_pin,
            "open": self.is_open(),
            "open_for_s": round(self.open_for_s, 1),
            "left_open": self.left_open,
            "watchdog_releases": self._door.latch.watchdog_releases,
        }

    def close(self) -> None:
        """Latch released (locked), alarm timer stopped, lines freed; idempotent."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
        close_all([self._door.latch, self._door])

    # -- the left-open alarm ---------------------------------------------------------------

    def _arm(self, opened_at: float) -> None:
        self._opened_at = opened_at
        if self._timer is not None:
            self._timer.cancel()
        delay = max(opened_at + self.spec.left_open_after_s - time.monotonic(), 0.0)
        self._timer = threading.Timer(delay, self._expire, args=(opened_at,))
        self._timer.daemon = True
        self._timer.name = f"left-open {self.name}"
        self._timer.start()

    def _changed(self, is_open: bool, at: float) -> None:
        with self._lock:
            cleared = False
            if is_open:
                self._arm(at)
            else:
                self._opened_at = None
                if self._timer is not None:
                    self._timer.cancel()
                cleared, self._alarm = self._alarm, False
        self._notify(self._on_change, is_open)
        if cleared:
            self._notify(self._on_alarm, False)

    def _expire(self, opened_at: float) -> None:
        with self._lock:
            # A timer from an earlier opening (the door closed and opened again) is stale.
            if self._closed or self._alarm or self._opened_at != opened_at:
                return
            self._alarm = True
        log.warning("%s: open for %.0f s", self.name, self.spec.left_open_after_s)
        self._notify(self._on_alarm, True)

    def _notify(self, listener: Callable[[str, bool], None] | None, value: bool) -> None:
        if listener is None:
            return
        try:
            listener(self.name, value)
        except Exception:  # the daemon's hook must not stop the door
            log.exception("%s: listener failed", self.name)


__all__ = ["DoorSpec", "GpioDoor"]
