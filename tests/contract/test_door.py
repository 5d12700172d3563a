"""Contract of the Door role (the entrance door of a 24-hour space), on every backend here.

- ``sim``: :class:`GpioDoor` on gpiozero mock pins, the door played by :class:`SimulatedDoors`.
- ``real``: the door on a Pi, named by ``KIOSK_TEST_DOOR_PINS`` (``latch:18,sensor:23``), on
  the lgpio pin factory. Only what a technician can watch: the latch is released for 10 s
  and A PERSON MUST PUSH THE DOOR OPEN THEN, AND LET IT SHUT. Run with ``-s`` for the
  prompts.

The latch mechanics (bounded pulse, watchdog, release on an exception) are those of
:mod:`hardware.latch`, tested on the lockers in ``test_locker.py``; here what is the door's
own: its spec, its errors, and the alarm when it is left open.
"""

from __future__ import annotations

import os
import time

import pytest

from hardware import build
from hardware.door import DoorSpec, GpioDoor
from hardware.latch import DOOR_MAX_PULSE_S, DoorAlreadyOpen
from hardware.roles import DoorNotOpened, HardwareError
from hardware.sim.doors import SimulatedDoors
from hardware.specs import GpioFactory
from tests.contract.test_locker import SLACK, parse_pins, pulses, wait_until

REAL = os.environ.get("KIOSK_TEST_DOOR_PINS")
BACKENDS = ["sim", *(["real"] if REAL else [])]

NAME = "entrance door"
PULSE = 0.3
TIMEOUT = 0.6
LEFT_OPEN_AFTER = 0.5
OPEN_DELAY = 0.05
CLOSE_AFTER = 0.2
SIM_SPEC = DoorSpec(latch_pin=18, sensor_pin=23, pulse_ms=int(PULSE * 1000),
                    open_timeout_ms=int(TIMEOUT * 1000), left_open_after_s=LEFT_OPEN_AFTER)


class Rig:
    def __init__(self, spec: DoorSpec, sim: SimulatedDoors | None, factory) -> None:
        self.spec = spec
        self.sim = sim
        self.factory = factory
        self.changes: list[tuple[str, bool]] = []
        self.alarms: list[tuple[str, bool]] = []
        self.door = self.make_door()

    def needs_sim(self) -> None:
        if self.sim is None:
            pytest.skip("needs the simulator (breaks things or reads pin history)")

    @property
    def latch(self):
        return self.factory.pin(self.door.spec.latch_pin)

    @property
    def sensor(self):
        return self.factory.pin(self.door.spec.sensor_pin)

    def make_door(self) -> GpioDoor:
        return GpioDoor(self.spec, self.factory,
                        on_change=lambda *event: self.changes.append(event),
                        on_alarm=lambda *event: self.alarms.append(event))

    def prompt(self, text: str) -> None:
        if self.sim is None:
            print(f"\n>>> {text}", flush=True)


@pytest.fixture(params=BACKENDS)
def rig(request):
    if request.param == "sim":
        factory = build.pin_factory(GpioFactory.MOCK)
        sim = SimulatedDoors(factory, SIM_SPEC.pairs(NAME), open_delay=OPEN_DELAY,
                             close_after=CLOSE_AFTER)
        spec = SIM_SPEC
    else:
        pins = parse_pins(REAL)
        factory = build.pin_factory(GpioFactory.LGPIO)
        sim = None
        spec = DoorSpec(pins["latch"], pins["sensor"], pulse_ms=10_000, open_timeout_ms=30_000,
                        left_open_after_s=120, simulated=False)
    rig = Rig(spec, sim, factory)
    yield rig
    rig.door.close()
    if sim is not None:
        sim.stop()
    factory.close()


@pytest.mark.parametrize(("field", "changes"), [
    ("sensor_pin", {"sensor_pin": 18}),
    ("latch_pin", {"latch_pin": 28}),
    ("pulse_ms", {"pulse_ms": int(DOOR_MAX_PULSE_S * 1000) + 1}),
    ("open_timeout_ms", {"open_timeout_ms": 200}),
    ("left_open_after_s", {"left_open_after_s": 0}),
])
def test_spec_errors_name_the_field(field, changes):
    with pytest.raises(ValueError, match=field):
        DoorSpec(**{"latch_pin": 18, "sensor_pin": 23, "pulse_ms": 300, **changes})


def test_repr_and_describe_say_what_and_which_pins(rig):
    text = repr(rig.door)
    assert NAME in text and f"GPIO{rig.door.spec.latch_pin}" in text
    assert f"GPIO{rig.door.spec.sensor_pin}" in text
    described = rig.door.describe()
    assert described["sensor_pin"] == rig.door.spec.sensor_pin
    assert described["left_open"] is False


def test_open_returns_when_the_sensor_saw_the_door_open(rig):
    if rig.sim is not None:
        rig.latch.clear_states()
    assert not rig.door.is_open()
    rig.prompt("entrance door: released for 10 s from now: push the door open")
    result = rig.door.open()
    assert result.name == NAME
    assert rig.door.is_open()
    assert rig.door.open_for_s >= 0
    rig.prompt("entrance door: now let it shut")
    assert rig.door.wait_closed(5 if rig.sim else 60)
    assert rig.door.open_for_s == 0.0
    assert not rig.door.left_open
    if rig.sim is None:
        return
    assert OPEN_DELAY - 0.01 <= result.opened_after_s <= OPEN_DELAY + SLACK
    [(start, end)] = pulses(rig.latch)
    assert end is not None and end - start <= PULSE + 0.02
    assert rig.latch.state is False
    assert rig.alarms == []  # it was open for less than the limit


@pytest.mark.parametrize("fault", ["jammed", "nobody"])
def test_a_door_that_does_not_open_is_reported_within_the_timeout(rig, fault):
    rig.needs_sim()
    rig.sim.inject(NAME, fault)
    rig.latch.clear_states()
    start = time.monotonic()
    with pytest.raises(DoorNotOpened, match="never changed") as info:
        rig.door.open()
    assert TIMEOUT - 0.01 <= time.monotonic() - start <= TIMEOUT + SLACK
    assert info.value.device == NAME
    assert "GPIO18" in str(info.value) and "GPIO23" in str(info.value)
    [(begin, end)] = pulses(rig.latch)
    assert PULSE - 0.01 <= end - begin <= PULSE + 0.03
    assert rig.latch.state is False


def test_a_door_already_open_is_reported_clearly(rig):
    rig.needs_sim()
    rig.sim.open_by_hand(NAME)  # someone leaving by the inside handle
    assert wait_until(rig.door.is_open)
    with pytest.raises(DoorAlreadyOpen, match="already open"):
        rig.door.open()
    assert rig.latch.state is False


def test_a_cut_sensor_wire_is_an_error_then_an_alarm(rig):
    rig.needs_sim()
    rig.sim.inject(NAME, "wire_cut")
    assert wait_until(rig.door.is_open)
    with pytest.raises(DoorAlreadyOpen, match="sensor wire is cut"):
        rig.door.open()
    assert rig.latch.state is False
    # A cut wire looks like a door standing open: the alarm calls someone to look at it.
    assert wait_until(lambda: rig.door.left_open, LEFT_OPEN_AFTER + 1)
    rig.sim.clear(NAME)
    assert rig.door.wait_closed(1)
    assert wait_until(lambda: rig.alarms == [(NAME, True), (NAME, False)])


def test_contact_bounce_gives_one_event_each_way(rig):
    rig.needs_sim()
    rig.sensor.clear_states()
    rig.door.open()
    assert rig.door.wait_closed(2)
    assert rig.changes == [(NAME, True), (NAME, False)]
    assert len(rig.sensor.states) >= 1 + 2 * 7  # the raw pin did chatter


def test_a_door_left_open_raises_the_alarm_once_and_closing_clears_it(rig):
    rig.needs_sim()
    rig.sim.inject(NAME, "left_open")
    rig.door.open()
    opened = time.monotonic()
    assert not rig.door.left_open
    assert wait_until(lambda: rig.door.left_open, LEFT_OPEN_AFTER + 1)
    assert time.monotonic() - opened >= LEFT_OPEN_AFTER - OPEN_DELAY - 0.02
    assert rig.door.open_for_s >= LEFT_OPEN_AFTER
    time.sleep(0.1)  # no second alarm for the same opening
    assert rig.alarms == [(NAME, True)]
    assert rig.door.describe()["left_open"] is True
    rig.sim.close_by_hand(NAME)
    assert rig.door.wait_closed(1)
    assert wait_until(lambda: not rig.door.left_open)
    assert wait_until(lambda: rig.alarms == [(NAME, True), (NAME, False)])
    assert rig.changes == [(NAME, True), (NAME, False)]


def test_a_door_open_at_start_up_raises_the_alarm_too(rig):
    rig.needs_sim()
    rig.door.close()
    rig.sim.open_by_hand(NAME)
    rig.door = rig.make_door()
    assert rig.door.is_open()
    assert wait_until(lambda: rig.door.left_open, LEFT_OPEN_AFTER + 1)
    assert rig.alarms == [(NAME, True)]


def test_close_releases_the_latch_and_is_idempotent(rig):
    if rig.sim is not None:
        rig.sim.inject(NAME, "left_open")
        rig.door.open()
    rig.door.close()
    rig.door.close()
    assert "closed" in repr(rig.door)
    with pytest.raises(HardwareError, match="closed"):
        rig.door.open()
    if rig.sim is not None:
        assert rig.latch.state is False and rig.latch.function == "input"
        time.sleep(LEFT_OPEN_AFTER + 0.1)
        assert rig.alarms == []  # the closed door's alarm timer was stopped
