"""Latches and door sensors on GPIO: the mechanics a locker slot and the entrance door share.

A :class:`Latch` is an output (through a relay or MOSFET board) that releases a lock while it
is energised. It is energised only inside a :class:`Pulse`, which ends when its owner ends
it, when an exception unwinds through the owner's ``finally``, or at the latest when the
pulse's watchdog timer fires, whichever comes first. So neither an exception nor a hung
caller can leave a coil energised (a solenoid that stays powered overheats, and its door
stays unlocked).

A :class:`DoorSensor` is a reed switch (or microswitch) on an input with the pull resistor
that matches its wiring. It is debounced here, in software, by one rule on every pin factory:
a level counts once it has been stable for ``debounce_s``. gpiozero's ``bounce_time`` is not
used because it means different things per factory (RPi.GPIO ignores edges for a while after
one and can miss the level the contact settles on; lgpio filters glitches; the mock factory
ignores it), and the simulator's contact bounce must be filtered the same way a real one is.

A :class:`LatchedDoor` pairs the two and implements "open": pulse the latch, and report the
door as opened only when the debounced sensor saw it open after the pulse began.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from hardware.roles import DoorNotOpened, HardwareError, OpenResult

log = logging.getLogger(__name__)

# Locker locks are small solenoids rated for short duty: a pulse never lasts longer than this,
# whatever a config asks. An entrance door's strike or maglock is rated for continuous duty,
# and a patron with a walker needs time to push the door, so the door's bound is longer.
LOCKER_MAX_PULSE_S = 2.0
DOOR_MAX_PULSE_S = 10.0
# The watchdog fires this long after the pulse should have ended: long enough that it never
# races the owner's own release, short enough that a hung caller cannot hold a coil on.
WATCHDOG_MARGIN_S = 0.05
# A missed edge (an interrupt lost under load on a real Pi) is noticed within this time.
RESYNC_S = 0.25
BCM_PINS = range(28)  # the GPIOs on the 40-pin header

SensorListener = Callable[[bool, float], None]


class LatchBusy(HardwareError, TimeoutError):
    """The latch was not released: its bank already had as many latches energised as allowed
    (or another open of the same door was running) for the whole timeout. Nothing moved;
    trying again later is safe."""

    message_key = "device.latch_busy"


class DoorAlreadyOpen(DoorNotOpened):
    """The sensor said "open" before the latch was released, and the door did not open anew:
    it was left ajar, or the sensor wire is cut (a cut wire reads "open" through the pull
    resistor). The latch was pulsed anyway, so a patron is never locked out of a slot by a
    broken sensor; ``params['never_seen_closed']`` is True when the sensor has not read
    "closed" since start-up, which points to the wire."""

    message_key = "device.door_already_open"


def check_pin(field: str, pin: object) -> int:
    """``pin`` as a BCM GPIO number of the 40-pin header, or ValueError naming ``field``."""
    if isinstance(pin, bool) or not isinstance(pin, int) or pin not in BCM_PINS:
        raise ValueError(f"{field}: {pin!r} is not a BCM GPIO number 0-27")
    return pin


def check_range(field: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"{field}: {value!r} is not between {low:g} and {high:g}")


class Pulse:
    """One energising of a latch. ``end()`` is idempotent and thread-safe; whoever ends the
    pulse first (owner, ``finally`` or watchdog) de-energises the coil and runs ``on_end``
    exactly once (it gives the bank's turn back)."""

    def __init__(self, latch: Latch, seconds: float, on_end: Callable[[], None] | None) -> None:
        self.latch = latch
        self.seconds = seconds
        self.started = 0.0
        self.ended: float | None = None
        self.by_watchdog = False
        self._on_end = on_end
        self._lock = threading.Lock()
        self._watchdog = threading.Timer(seconds + WATCHDOG_MARGIN_S, self._expire)
        self._watchdog.daemon = True
        self._watchdog.name = f"watchdog {latch.label}"

    @property
    def duration(self) -> float:
        return (self.ended if self.ended is not None else time.monotonic()) - self.started

    def end(self) -> None:
        with self._lock:
            if self.ended is not None:
                return
            self.ended = time.monotonic()
        try:
            self.latch.device.off()
        finally:
            self._watchdog.cancel()
            self.latch._pulse_ended(self)
            if self._on_end is not None:
                self._on_end()

    def _begin(self) -> None:
        # The watchdog is armed before the coil is energised, never after; and the coil is
        # switched on under the lock, so an end() racing with it switches it off afterwards.
        self._watchdog.start()
        try:
            with self._lock:
                self.started = time.monotonic()
                if self.ended is None:
                    self.latch.device.on()
        except BaseException:
            self.end()
            raise

    def _expire(self) -> None:
        with self._lock:
            if self.ended is not None:
                return
            self.by_watchdog = True
        log.warning("%s: released by its watchdog after %.2f s (the caller did not end the "
                    "pulse)", self.latch.label, self.seconds + WATCHDOG_MARGIN_S)
        self.latch.watchdog_releases += 1
        self.end()


class Latch:
    """A latch output, released (locked) except during a :class:`Pulse`.

    ``active_high`` says which level energises the coil (relay and MOSFET boards differ).
    Pulses are bounded by ``max_pulse_s`` whatever length is asked for.
    """

    def __init__(self, pin: int, factory: Any, *, active_high: bool = True,
                 max_pulse_s: float = LOCKER_MAX_PULSE_S, label: str = "latch") -> None:
        from gpiozero import DigitalOutputDevice

        self.pin = pin
        self.label = label
        self.max_pulse_s = max_pulse_s
        self.watchdog_releases = 0
        self._pulse: Pulse | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.device = DigitalOutputDevice(pin, active_high=active_high, initial_value=False,
                                          pin_factory=factory)

    def __repr__(self) -> str:
        return f"<Latch {self.label} GPIO{self.pin}>"

    @property
    def energised(self) -> bool:
        return not self._closed and bool(self.device.value)

    def start_pulse(self, seconds: float, on_end: Callable[[], None] | None = None) -> Pulse:
        """Energise the latch for at most ``min(seconds, max_pulse_s)``. The caller ends the
        pulse in a ``finally`` (``pulse.end()``); the watchdog ends it otherwise. Raises
        HardwareError if the latch is closed or already pulsing (``on_end`` then not run)."""
        pulse = Pulse(self, min(max(seconds, 0.0), self.max_pulse_s), on_end)
        with self._lock:
            if self._closed or self._pulse is not None:
                raise HardwareError(self.label, "closed" if self._closed else "already pulsing")
            self._pulse = pulse
        pulse._begin()
        return pulse

    def release(self) -> None:
        """De-energise now (the safe state: locked), ending any pulse."""
        pulse = self._pulse
        if pulse is not None:
            pulse.end()
        if not self.device.closed:
            self.device.off()

    def close(self) -> None:
        """Release, then free the GPIO line; idempotent. No pulse starts once it is called."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.release()
        finally:
            self.device.close()

    def _pulse_ended(self, pulse: Pulse) -> None:
        with self._lock:
            if self._pulse is pulse:
                self._pulse = None


class DoorSensor:
    """A debounced door contact. ``open_when_high`` True: the switch goes to ground and the
    pull-up makes "open" high; False: the switch goes to 3.3 V with a pull-down. With either
    wiring a cut wire reads "open" (the pull wins), so a broken sensor never looks like a
    closed, locked door.

    ``on_change(is_open, at)`` is called from the sensor's own thread once per debounced
    change; ``at`` is the monotonic time of the first edge of the burst that settled.
    """

    def __init__(self, pin: int, factory: Any, *, open_when_high: bool = True,
                 debounce_s: float = 0.03, label: str = "sensor",
                 on_change: SensorListener | None = None) -> None:
        from gpiozero import DigitalInputDevice

        self.pin = pin
        self.label = label
        self.debounce_s = debounce_s
        self._on_change = on_change
        self._cond = threading.Condition()
        self._closed = False
        self._edge_at: float | None = None
        self._burst_start: float | None = None
        self._opens = 0
        self._open_times: deque[tuple[int, float]] = deque(maxlen=16)
        self.device = DigitalInputDevice(pin, pull_up=open_when_high, bounce_time=None,
                                         pin_factory=factory)
        try:
            # With the pull matching the wiring, gpiozero's "active" is the closed circuit.
            self.device.when_activated = self._edge
            self.device.when_deactivated = self._edge
            with self._cond:
                self._open = self._read()
                self.seen_closed = not self._open
            self._thread = threading.Thread(target=self._run, name=f"debounce {label}",
                                            daemon=True)
            self._thread.start()
        except BaseException:
            self.device.close()
            raise

    def __repr__(self) -> str:
        return f"<DoorSensor {self.label} GPIO{self.pin} {'open' if self.is_open else 'closed'}>"

    @property
    def is_open(self) -> bool:
        with self._cond:
            return self._open

    @property
    def opens(self) -> int:
        """How many times the debounced sensor has gone to "open" since start-up."""
        with self._cond:
            return self._opens

    def wait_opened(self, after: int, timeout: float) -> float | None:
        """Wait until the sensor goes "open" for a time numbered above ``after`` (a value of
        :attr:`opens` read earlier); the monotonic time it did, or None on timeout/close."""
        with self._cond:
            self._cond.wait_for(lambda: self._opens > after or self._closed, max(timeout, 0))
            return next((at for n, at in self._open_times if n > after), None)

    def wait_for(self, is_open: bool, timeout: float) -> bool:
        """Wait until the debounced state is ``is_open``; whether it is."""
        with self._cond:
            return self._cond.wait_for(lambda: self._open == is_open or self._closed,
                                       max(timeout, 0)) and self._open == is_open

    def close(self) -> None:
        """Stop watching and free the line; idempotent. Waiters return at once."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
        self.device.close()

    def _read(self) -> bool:
        return not self.device.is_active

    def _edge(self) -> None:
        # Runs in whatever thread saw the edge (lgpio's callback thread, or the simulator's):
        # note it and leave; the debounce thread decides.
        with self._cond:
            now = time.monotonic()
            if self._burst_start is None:
                self._burst_start = now
            self._edge_at = now
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                if self._edge_at is None:
                    if not self._cond.wait(RESYNC_S) and self._read() != self._open:
                        self._edge_at = self._burst_start = time.monotonic()
                    continue
                quiet = self._edge_at + self.debounce_s - time.monotonic()
                if quiet > 0:
                    self._cond.wait(quiet)
                    continue
                burst_start = self._burst_start or self._edge_at
                self._edge_at = self._burst_start = None
                level = self._read()
                if level == self._open:
                    continue  # a glitch that settled where it started
                self._open = level
                if level:
                    self._opens += 1
                    self._open_times.append((self._opens, burst_start))
                else:
                    self.seen_closed = True
                self._cond.notify_all()
            if self._on_change is not None:
                try:
                    self._on_change(level, burst_start)
                except Exception:  # a listener must never stop the sensor
                    log.exception("%s: on_change listener failed", self.label)


class LatchedDoor:
    """One latch and its door sensor: a locker slot or the entrance door, named ``name``."""

    def __init__(self, name: str, latch: Latch, sensor: DoorSensor, *, pulse_s: float,
                 open_timeout_s: float) -> None:
        self.name = name
        self.latch = latch
        self.sensor = sensor
        self.pulse_s = min(pulse_s, latch.max_pulse_s)
        self.open_timeout_s = open_timeout_s
        self._turn = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"<LatchedDoor {self.name} latch GPIO{self.latch.pin} sensor GPIO{self.sensor.pin}>"

    def open(self, timeout: float | None = None,
             bank: threading.Semaphore | None = None) -> OpenResult:
        """Pulse the latch (waiting for a turn of ``bank``, bounded) and wait for the sensor.

        The latch is energised for at most ``pulse_s`` and released as soon as the sensor
        sees the door open. Returns when the door opened after the pulse began, within
        ``timeout`` (default ``open_timeout_s``) of the call. Raises :class:`LatchBusy` (no
        turn in time), :class:`DoorAlreadyOpen`, :class:`DoorNotOpened`, or HardwareError
        when closed meanwhile.
        """
        limit = self.open_timeout_s if timeout is None else timeout
        if limit <= 0:
            raise ValueError(f"{self.name}: timeout must be positive, not {limit!r}")
        deadline = time.monotonic() + limit
        self._check_open()
        if not self._turn.acquire(timeout=limit):
            raise LatchBusy(self.name, f"another open of {self.name} still running after "
                            f"{limit:.1f} s", **self._pins())
        try:
            return self._open(deadline, limit, bank)
        finally:
            self._turn.release()

    def close(self) -> None:
        """Latch released, lines freed; idempotent. Each step runs even if one fails."""
        self._closed = True
        try:
            self.latch.close()
        finally:
            self.sensor.close()

    def _open(self, deadline: float, limit: float, bank: threading.Semaphore | None
              ) -> OpenResult:
        before = self.sensor.opens
        was_open = self.sensor.is_open
        busy = LatchBusy(self.name, f"latch GPIO{self.latch.pin} not released: its bank kept "
                         f"the most latches allowed energised for {limit:.1f} s", **self._pins())
        if bank is not None and not bank.acquire(timeout=max(deadline - time.monotonic(), 0)):
            raise busy
        try:
            left = deadline - time.monotonic()
            if left <= 0:  # the turn came, but too late for a pulse
                raise busy
            pulse = self.latch.start_pulse(min(self.pulse_s, left),
                                           on_end=bank.release if bank is not None else None)
        except BaseException:
            if bank is not None:
                bank.release()
            raise
        try:
            opened_at = self.sensor.wait_opened(before, pulse.seconds)
        finally:
            pulse.end()
        if opened_at is None and not was_open:
            opened_at = self.sensor.wait_opened(before, deadline - time.monotonic())
        self._check_open()
        if opened_at is None:
            raise self._not_opened(pulse, was_open, limit)
        return OpenResult(self.name, max(opened_at - pulse.started, 0.0))

    def _check_open(self) -> None:
        if self._closed:
            raise HardwareError(self.name, "closed")

    def _pins(self) -> dict[str, object]:
        return {"latch_pin": self.latch.pin, "sensor_pin": self.sensor.pin}

    def _not_opened(self, pulse: Pulse, was_open: bool, limit: float) -> DoorNotOpened:
        latch, sensor = f"GPIO{self.latch.pin}", f"GPIO{self.sensor.pin}"
        pulsed = f"latch {latch} pulsed {pulse.duration:.2f} s"
        if pulse.by_watchdog:
            pulsed += " (ended by its watchdog)"
        if was_open:
            hint = "; it has not read closed since start-up" if not self.sensor.seen_closed else ""
            return DoorAlreadyOpen(
                self.name, f"sensor {sensor} said open before the latch was released (was "
                f"already open: the door was left ajar, or the sensor wire is cut{hint}); "
                f"{pulsed} anyway", reported="already_open",
                never_seen_closed=not self.sensor.seen_closed, **self._pins())
        return DoorNotOpened(
            self.name, f"{pulsed}; sensor {sensor} never changed within {limit:.1f} s (a "
            f"jammed latch, or nobody pushed the door)", reported="never_changed",
            timeout_s=round(limit, 3), **self._pins())


def close_all(parts: list[Any]) -> None:
    """Close each part; every one is tried even if some fail, and the first error is raised
    after the rest were closed."""
    first: BaseException | None = None
    for part in parts:
        try:
            part.close()
        except Exception as exc:
            first = first or exc
            log.exception("closing %r failed", part)
    if first is not None:
        raise first

