"""Simulated locker doors and entrance doors behind gpiozero mock pins.

For each door, :class:`SimulatedDoors` owns two pins of a ``MockFactory``: the latch pin (an
output the kiosk drives) and the sensor pin (an input the simulated reed switch drives).
The model, per door:

- The latch is energised when its pin is an output at the active level (``latch_active_high``);
  a released line (an input again after ``close()``) counts as not energised, as on a relay
  board with its own bias resistor.
- ``open_delay`` seconds after the latch is energised, a person pushes the door. It opens
  only if the latch is still energised then (a strike or solenoid holds again once its power
  goes). It closes again ``close_after`` seconds later (None: only by :meth:`close_by_hand`).
- The reed switch is closed while the door is shut. With ``sensor_open_when_high`` True it
  goes to ground (the kiosk's pull-up makes "open" high); otherwise to 3.3 V with a
  pull-down. An open switch reads whatever the pin's pull makes it. Each movement of the
  door bounces the contact ``bounce`` extra times within ``bounce_span`` seconds, so the
  kiosk's debouncing is exercised.

Faults (:data:`FAULTS`, :meth:`SimulatedDoors.inject`): ``jammed``, ``nobody``,
``left_open`` and ``wire_cut``. A cut sensor wire leaves the pin to its pull resistor, which
with either wiring reads "open": the kiosk sees an open door, never a falsely closed one.

The latch pin's changes are seen through a hook in the pin itself, so the pins must be
created here, before the kiosk's devices claim them: build :class:`SimulatedDoors` first.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gpiozero.pins.mock import MockPin

log = logging.getLogger(__name__)

FAULTS = {
    "jammed": "the latch is energised but the lock does not move: the door stays shut",
    "nobody": "the latch works but nobody pushes the door",
    "left_open": "the door opens and is never closed again (until close_by_hand)",
    "wire_cut": "the sensor wire is cut: the pin reads its pull resistor, i.e. 'open'",
}


class _LatchCoil(MockPin):
    """A mock output pin that tells the simulator whenever its level or function changes."""

    listener: Callable[[], None] | None = None

    def _change_state(self, value: bool) -> bool:
        changed = super()._change_state(value)
        if changed and self.listener is not None:
            self.listener()
        return changed

    def _set_function(self, value: str) -> None:
        super()._set_function(value)
        if self.listener is not None:
            self.listener()

    def output_with_state(self, state: bool) -> None:
        # The mock switches to output and then sets the level; a real line is claimed as an
        # output with its level in one step. Look only at the result, so an active-low latch
        # does not "blip" on at start-up in the simulation when it would not on a Pi.
        listener, self.listener = self.listener, None
        try:
            super().output_with_state(state)
        finally:
            self.listener = listener
        if listener is not None:
            listener()


class _ReedContact(MockPin):
    """A mock input pin with a switch on it: closed, the switch's level wins over the pull;
    open (or cut), the pull decides, as on the copper."""

    circuit_closed = False
    switch_level = False

    def _set_pull(self, value: str) -> None:
        super()._set_pull(value)
        self.apply()

    def apply(self) -> None:
        if self._function != "input":
            return
        level = self.switch_level if self.circuit_closed else self._pull == "up"
        if level:
            self.drive_high()
        else:
            self.drive_low()


@dataclass(frozen=True)
class DoorEvent:
    """Something that happened to a simulated door, at a monotonic time."""

    at: float
    what: str


@dataclass
class _Door:
    name: str
    coil: _LatchCoil
    contact: _ReedContact
    energised: bool = False
    is_open: bool = False
    faults: set[str] = field(default_factory=set)
    events: list[DoorEvent] = field(default_factory=list)
    moves: int = 0  # numbers door movements, so a stale bounce or close is skipped


class SimulatedDoors:
    """Simulated doors on ``factory`` (a gpiozero ``MockFactory``), one per entry of ``pairs``
    (``{name: (latch_pin, sensor_pin)}``). All doors start shut. Thread-safe; its own thread
    plays the scheduled movements. Raises ValueError when a pin is already in use."""

    def __init__(self, factory: Any, pairs: dict[str, tuple[int, int]], *,
                 open_delay: float = 0.15, close_after: float | None = 2.0,
                 latch_active_high: bool = True, sensor_open_when_high: bool = True,
                 bounce: int = 3, bounce_span: float = 0.004) -> None:
        self.open_delay = open_delay
        self.close_after = close_after
        self.latch_active_high = latch_active_high
        self.bounce = bounce
        self.bounce_span = bounce_span
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._stopped = False
        self._doors: dict[str, _Door] = {}
        for name, (latch_pin, sensor_pin) in pairs.items():
            coil = self._claim(factory, latch_pin, _LatchCoil)
            contact = self._claim(factory, sensor_pin, _ReedContact)
            contact.switch_level = not sensor_open_when_high
            contact.circuit_closed = True
            door = self._doors[name] = _Door(name, coil, contact)
            coil.listener = lambda door=door: self._coil_changed(door)
            contact.apply()
        self._thread = threading.Thread(target=self._run, name="simulated doors", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<SimulatedDoors {', '.join(self._doors)}>"

    @staticmethod
    def _claim(factory: Any, pin: int, kind: type[MockPin]) -> Any:
        made = factory.pin(pin, pin_class=kind)
        if type(made) is not kind:
            raise ValueError(f"GPIO{pin} is already in use: create SimulatedDoors before the "
                             f"devices on its pins")
        return made

    # -- what a test, the demo or `kiosk sim` may do ----------------------------------------

    @property
    def names(self) -> list[str]:
        return list(self._doors)

    @property
    def events(self) -> dict[str, list[DoorEvent]]:
        """Each door's history so far (copies)."""
        with self._lock:
            return {name: list(door.events) for name, door in self._doors.items()}

    def is_open(self, name: str) -> bool:
        """Whether the door is physically open (whatever its sensor says)."""
        return self._door(name).is_open

    def energised(self, name: str) -> bool:
        return self._door(name).energised

    def inject(self, name: str, fault: str) -> None:
        """Give door ``name`` a fault of :data:`FAULTS` until :meth:`clear`."""
        if fault not in FAULTS:
            raise ValueError(f"no fault {fault!r}; faults are {', '.join(FAULTS)}")
        with self._lock:
            door = self._door(name)
            door.faults.add(fault)
            self._log(door, f"fault {fault}")
            if fault == "wire_cut":
                self._set_contact(door)

    def clear(self, name: str) -> None:
        """Remove every fault of ``name`` (a cut wire is mended; a jammed lock works again)."""
        with self._lock:
            door = self._door(name)
            door.faults.clear()
            self._log(door, "faults cleared")
            self._set_contact(door)

    def open_by_hand(self, name: str) -> None:
        """Someone opens the door without the latch (from inside, with a key, by force). It
        stays open until :meth:`close_by_hand`."""
        with self._lock:
            self._move(self._door(name), True, "opened by hand")

    def close_by_hand(self, name: str) -> None:
        """Someone pushes the door shut."""
        with self._lock:
            self._move(self._door(name), False, "closed by hand")

    def wait_for(self, name: str, what: str, timeout: float) -> bool:
        """Wait until door ``name`` has an event ``what``; whether it had one in time."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not any(e.what == what for e in self._door(name).events):
                left = deadline - time.monotonic()
                if left <= 0 or self._stopped:
                    return False
                self._wake.wait(min(left, 0.05))
            return True

    def stop(self) -> None:
        """Stop the simulation (scheduled movements are dropped); idempotent."""
        with self._lock:
            self._stopped = True
            self._queue.clear()
            for door in self._doors.values():
                door.coil.listener = None
            self._wake.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)

    # -- the physics ------------------------------------------------------------------------

    def _door(self, name: str) -> _Door:
        try:
            return self._doors[name]
        except KeyError:
            raise ValueError(f"no simulated door {name!r}") from None

    def _log(self, door: _Door, what: str) -> None:
        door.events.append(DoorEvent(time.monotonic(), what))
        self._wake.notify_all()

    def _coil_changed(self, door: _Door) -> None:
        pin = door.coil
        energised = pin.function == "output" and bool(pin.state) == self.latch_active_high
        with self._lock:
            if energised == door.energised:
                return
            door.energised = energised
            self._log(door, "energised" if energised else "released")
            if not energised or door.is_open:
                return
            if "jammed" in door.faults:
                self._log(door, "jammed")
            elif "nobody" in door.faults:
                self._log(door, "nobody came")
            else:
                self._after(self.open_delay, lambda: self._push(door))

    def _push(self, door: _Door) -> None:
        if door.is_open:
            return
        if not door.energised:
            self._log(door, "pushed too late: locked again")
            return
        self._move(door, True, "opened")
        if self.close_after is not None and "left_open" not in door.faults:
            moves = door.moves
            self._after(self.close_after,
                        lambda: door.moves == moves and self._move(door, False, "closed"))

    def _move(self, door: _Door, to_open: bool, what: str) -> None:
        if door.is_open == to_open:
            return
        door.is_open = to_open
        door.moves += 1
        self._log(door, what)
        # A reed contact chatters as the magnet passes: it touches, lets go and touches again
        # a few times within a few milliseconds, then settles in the new state. The flips are
        # played here in one go, so that under load they still fall inside the debounce time.
        step = self.bounce_span / (2 * self.bounce) if self.bounce else 0.0
        for _ in range(self.bounce):
            self._contact(door, closed=not to_open)
            time.sleep(step)
            self._contact(door, closed=to_open)
            time.sleep(step)
        self._set_contact(door)

    def _set_contact(self, door: _Door) -> None:
        self._contact(door, closed=not door.is_open)

    def _contact(self, door: _Door, closed: bool) -> None:
        door.contact.circuit_closed = closed and "wire_cut" not in door.faults
        door.contact.apply()

    def _after(self, delay: float, action: Callable[[], object]) -> None:
        heapq.heappush(self._queue, (time.monotonic() + delay, next(self._order), action))
        self._wake.notify_all()

    def _run(self) -> None:
        with self._lock:
            while not self._stopped:
                if not self._queue:
                    self._wake.wait()
                    continue
                when, _, action = self._queue[0]
                left = when - time.monotonic()
                if left > 0:
                    self._wake.wait(left)
                    continue
                heapq.heappop(self._queue)
                try:
                    action()
                except Exception:  # one bad movement must not stop every simulated door
                    log.exception("simulated doors: a scheduled movement failed")


__all__ = ["FAULTS", "DoorEvent", "SimulatedDoors"]
