"""Contract of the Locker role, run against every backend that can load here.

- ``sim``: :class:`GpioLockers` on gpiozero mock pins, the doors played by
  :class:`SimulatedDoors` (someone opens a door shortly after its latch is released, and
  shuts it again; faults on demand). Two banks of two slots: A01 A02 B01 B02.
- ``real``: one slot on a Pi, named by ``KIOSK_TEST_LOCKER_PINS`` (``latch:5,sensor:12``),
  on the lgpio pin factory. It does only what a technician can watch: the latch is released
  for 2 s and A PERSON MUST PULL THE DOOR OPEN THEN, AND SHUT IT WHEN ASKED. Run with ``-s``
  to see the prompts. Everything that breaks things or reads the pins' history runs on the
  simulator.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from hardware import build
from hardware.latch import LOCKER_MAX_PULSE_S, WATCHDOG_MARGIN_S, DoorAlreadyOpen, Latch, LatchBusy
from hardware.lockers import GpioLockers, LockerSpec, slot_names
from hardware.roles import DoorNotOpened, HardwareError, Locker
from hardware.sim.doors import SimulatedDoors
from hardware.specs import GpioFactory

REAL = os.environ.get("KIOSK_TEST_LOCKER_PINS")
BACKENDS = ["sim", *(["real"] if REAL else [])]

PULSE = 0.2
TIMEOUT = 0.6
OPEN_DELAY = 0.05
CLOSE_AFTER = 0.3
SLACK = 0.15  # scheduling jitter on a loaded CI machine
SIM_SPEC = LockerSpec(latch_pins=(17, 27, 22, 23), sensor_pins=(5, 6, 12, 13), bank_size=2,
                      pulse_ms=int(PULSE * 1000), open_timeout_ms=int(TIMEOUT * 1000))


def parse_pins(text: str) -> dict[str, int]:
    """``latch:5,sensor:12`` as ``{"latch": 5, "sensor": 12}``."""
    return {key.strip(): int(value) for key, value in
            (part.split(":") for part in text.split(","))}


def wait_until(condition, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def pulses(pin, active: bool = True) -> list[tuple[float, float | None]]:
    """Each active period of a mock pin as (start, end) in seconds since its history was
    cleared (MockPin.states holds each state with the time since the previous change);
    ``end`` is None when the pin is still active."""
    found, start, now = [], None, 0.0
    for state in pin.states:
        now += state.timestamp
        if bool(state.state) == active and start is None:
            start = now
        elif bool(state.state) != active and start is not None:
            found.append((start, now))
            start = None
    if start is not None:
        found.append((start, None))
    return found


def overlap(a: tuple[float, float | None], b: tuple[float, float | None]) -> bool:
    end_a = a[1] if a[1] is not None else float("inf")
    end_b = b[1] if b[1] is not None else float("inf")
    # The two histories were cleared a few microseconds apart.
    return a[0] < end_b - 0.001 and b[0] < end_a - 0.001


class Rig:
    def __init__(self, lockers: GpioLockers, sim: SimulatedDoors | None, factory) -> None:
        self.lockers = lockers
        self.sim = sim
        self.factory = factory
        self.changes: list[tuple[str, bool]] = []

    @property
    def slot(self) -> str:
        return self.lockers.slots[0]

    def needs_sim(self) -> None:
        if self.sim is None:
            pytest.skip("needs the simulator (breaks things or reads pin history)")

    def latch(self, slot: str):
        return self.factory.pin(self.lockers.slot(slot).latch.pin)

    def sensor(self, slot: str):
        return self.factory.pin(self.lockers.slot(slot).sensor.pin)

    def clear_history(self) -> None:
        for slot in self.lockers.slots:
            self.latch(slot).clear_states()
            self.sensor(slot).clear_states()

    def prompt(self, text: str) -> None:
        if self.sim is None:
            print(f"\n>>> {text}", flush=True)


@pytest.fixture(params=BACKENDS)
def rig(request):
    if request.param == "sim":
        factory = build.pin_factory(GpioFactory.MOCK)
        sim = SimulatedDoors(factory, SIM_SPEC.pairs(), open_delay=OPEN_DELAY,
                             close_after=CLOSE_AFTER)
        spec = SIM_SPEC
    else:
        pins = parse_pins(REAL)
        factory = build.pin_factory(GpioFactory.LGPIO)
        sim = None
        spec = LockerSpec((pins["latch"],), (pins["sensor"],), pulse_ms=2000,
                          open_timeout_ms=30_000, simulated=False)
    changes: list[tuple[str, bool]] = []
    lockers = GpioLockers(spec, factory, on_change=lambda slot, is_open:
                          changes.append((slot, is_open)))
    rig = Rig(lockers, sim, factory)
    rig.changes = changes
    yield rig
    rig.lockers.close()
    if sim is not None:
        sim.stop()
    factory.close()


def open_in_thread(lockers: Locker, slot: str, results: dict, **kw) -> threading.Thread:
    def run() -> None:
        try:
            results[slot] = lockers.open(slot, **kw)
        except Exception as exc:
            results[slot] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


# -- naming, specs, description ---------------------------------------------------------------

def test_slots_are_named_by_bank_letter_and_number():
    assert slot_names(6, 4) == ["A01", "A02", "A03", "A04", "B01", "B02"]
    spec = LockerSpec((5, 6, 13, 19, 26, 16), (4, 12, 17, 18, 20, 21))
    assert spec.slots == ["A01", "A02", "A03", "A04", "B01", "B02"]
    assert spec.pairs()["B02"] == (16, 21)


@pytest.mark.parametrize(("field", "changes"), [
    ("sensor_pins", {"sensor_pins": (5, 6, 12)}),
    ("sensor_pins", {"sensor_pins": (5, 6, 12, 17)}),
    ("latch_pins", {"latch_pins": (17, 27, 22, 40)}),
    ("latch_pins", {"latch_pins": ()}),
    ("pulse_ms", {"pulse_ms": 5000}),
    ("open_timeout_ms", {"open_timeout_ms": 100}),
    ("max_energised", {"max_energised": 3}),
    ("debounce_ms", {"debounce_ms": -1}),
])
def test_spec_errors_name_the_field(field, changes):
    values = {"latch_pins": SIM_SPEC.latch_pins, "sensor_pins": SIM_SPEC.sensor_pins,
              "bank_size": 2, "pulse_ms": 200, "open_timeout_ms": 600, **changes}
    with pytest.raises(ValueError, match=field):
        LockerSpec(**values)


def test_repr_and_describe_say_what_and_which_pins(rig):
    door = rig.lockers.slot(rig.slot)
    assert f"GPIO{door.latch.pin}" in repr(rig.lockers)
    assert f"{door.sensor.pin}" in repr(rig.lockers)
    described = rig.lockers.describe()
    assert described["slots"][rig.slot]["latch_pin"] == door.latch.pin
    with pytest.raises(ValueError, match="no slot 'Z99'"):
        rig.lockers.open("Z99")


# -- opening ----------------------------------------------------------------------------------

def test_open_returns_when_the_sensor_saw_the_door_open(rig):
    if rig.sim is not None:
        rig.clear_history()
    assert not rig.lockers.is_open(rig.slot)
    rig.prompt(f"locker {rig.slot}: the latch is released for 2 s from now: pull the door "
               "open (a spring-loaded lock pops it open by itself)")
    result = rig.lockers.open(rig.slot)
    assert result.name == rig.slot
    assert rig.lockers.is_open(rig.slot)
    rig.prompt(f"locker {rig.slot}: now shut the door")
    assert rig.lockers.wait_closed(rig.slot, 5 if rig.sim else 60)
    assert not rig.lockers.is_open(rig.slot)
    if rig.sim is None:
        assert 0 <= result.opened_after_s <= 30
        return
    assert OPEN_DELAY - 0.01 <= result.opened_after_s <= OPEN_DELAY + SLACK
    [(start, end)] = pulses(rig.latch(rig.slot))
    assert end is not None and end - start <= PULSE + 0.02
    # Released as soon as the door was seen open, not after the whole pulse.
    assert end - start <= result.opened_after_s + SIM_SPEC.debounce_ms / 1000 + SLACK
    assert rig.latch(rig.slot).state is False


@pytest.mark.parametrize("fault", ["jammed", "nobody"])
def test_a_door_that_does_not_open_is_reported_within_the_timeout(rig, fault):
    rig.needs_sim()
    rig.sim.inject("A01", fault)
    rig.clear_history()
    start = time.monotonic()
    with pytest.raises(DoorNotOpened) as info:
        rig.lockers.open("A01")
    took = time.monotonic() - start
    assert TIMEOUT - 0.01 <= took <= TIMEOUT + SLACK
    assert not isinstance(info.value, DoorAlreadyOpen)
    text = str(info.value)
    assert "locker A01" in text and "GPIO17" in text and "GPIO5" in text
    assert "never changed" in text
    assert info.value.params["reported"] == "never_changed"
    [(begin, end)] = pulses(rig.latch("A01"))
    assert PULSE - 0.01 <= end - begin <= PULSE + 0.03
    assert rig.latch("A01").state is False


def test_a_door_already_open_is_reported_clearly(rig):
    rig.needs_sim()
    rig.sim.open_by_hand("A02")
    assert wait_until(lambda: rig.lockers.is_open("A02"))
    start = time.monotonic()
    with pytest.raises(DoorAlreadyOpen) as info:
        rig.lockers.open("A02")
    assert time.monotonic() - start <= PULSE + SLACK  # not the whole open timeout
    assert "already open" in str(info.value) and "GPIO6" in str(info.value)
    assert info.value.params["reported"] == "already_open"
    assert not info.value.params["never_seen_closed"]
    assert rig.latch("A02").state is False


def test_a_cut_sensor_wire_is_a_clear_error_and_the_latch_is_released(rig):
    rig.needs_sim()
    rig.sim.inject("B01", "wire_cut")
    assert wait_until(lambda: rig.lockers.is_open("B01"))  # the pull-up reads "open"
    with pytest.raises(DoorAlreadyOpen, match="sensor wire is cut"):
        rig.lockers.open("B01")
    assert rig.latch("B01").state is False
    # Cut before the kiosk started: the sensor has never read "closed", and says so.
    rig.lockers.close()
    rig.lockers = GpioLockers(SIM_SPEC, rig.factory)
    with pytest.raises(DoorAlreadyOpen, match="not read closed since start-up") as info:
        rig.lockers.open("B01")
    assert info.value.params["never_seen_closed"]
    rig.sim.clear("B01")
    assert rig.lockers.wait_closed("B01", 1)


def test_contact_bounce_gives_one_event_each_way(rig):
    rig.needs_sim()
    rig.clear_history()
    rig.lockers.open("B02")
    assert rig.lockers.wait_closed("B02", 2)
    assert [c for c in rig.changes if c[0] == "B02"] == [("B02", True), ("B02", False)]
    assert len(rig.sensor("B02").states) >= 1 + 2 * 7  # the raw pin did chatter


def test_active_low_latches_and_pulled_down_sensors():
    spec = LockerSpec((17,), (5,), pulse_ms=200, open_timeout_ms=600, latch_active_high=False,
                      sensor_open_when_high=False)
    factory = build.pin_factory(GpioFactory.MOCK)
    sim = SimulatedDoors(factory, spec.pairs(), open_delay=OPEN_DELAY, close_after=CLOSE_AFTER,
                         latch_active_high=False, sensor_open_when_high=False)
    try:
        with GpioLockers(spec, factory) as lockers:
            assert factory.pin(17).state is True  # released: high
            assert factory.pin(5).state is True  # closed: the switch to 3.3 V
            factory.pin(17).clear_states()
            assert lockers.open("A01").opened_after_s < OPEN_DELAY + SLACK
            assert len(pulses(factory.pin(17), active=False)) == 1
            assert lockers.wait_closed("A01", 2)
            assert factory.pin(17).state is True
    finally:
        sim.stop()
        factory.close()


# -- one latch per bank -----------------------------------------------------------------------

def test_one_bank_never_has_two_latches_energised(rig):
    rig.needs_sim()
    rig.clear_history()
    results: dict = {}
    threads = [open_in_thread(rig.lockers, slot, results) for slot in ("A01", "A02")]
    for thread in threads:
        thread.join(5)
    assert all(not isinstance(r, Exception) for r in results.values()), results
    [a] = pulses(rig.latch("A01"))
    [b] = pulses(rig.latch("A02"))
    assert not overlap(a, b), (a, b)


def test_slots_of_different_banks_may_pulse_together(rig):
    rig.needs_sim()
    for slot in ("A01", "B01"):
        rig.sim.inject(slot, "nobody")
    rig.clear_history()
    results: dict = {}
    threads = [open_in_thread(rig.lockers, slot, results) for slot in ("A01", "B01")]
    for thread in threads:
        thread.join(5)
    assert all(isinstance(r, DoorNotOpened) for r in results.values()), results
    [a] = pulses(rig.latch("A01"))
    [b] = pulses(rig.latch("B01"))
    assert overlap(a, b), (a, b)


def test_a_caller_waits_its_turn_within_its_timeout(rig):
    rig.needs_sim()
    rig.sim.inject("A01", "nobody")
    rig.clear_history()
    results: dict = {}
    first = open_in_thread(rig.lockers, "A01", results)
    assert wait_until(lambda: rig.latch("A01").state)
    with pytest.raises(LatchBusy, match="bank"):
        rig.lockers.open("A02", timeout=0.05)
    assert pulses(rig.latch("A02")) == []
    assert rig.lockers.open("A02").name == "A02"  # waits for A01's pulse, then opens
    first.join(5)
    [a] = pulses(rig.latch("A01"))
    [b] = pulses(rig.latch("A02"))
    assert not overlap(a, b)


# -- the latch is released whatever happens ---------------------------------------------------

class Interrupted(Exception):
    pass


def test_an_exception_in_the_wait_still_releases_the_latch(rig):
    rig.needs_sim()
    rig.sim.inject("A01", "nobody")

    def interrupt(signum, frame):
        raise Interrupted  # as a SIGTERM handler or Ctrl-C would, in the waiting thread

    def send_when_energised() -> None:
        if wait_until(lambda: rig.latch("A01").state):
            signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)

    old = signal.signal(signal.SIGUSR1, interrupt)
    try:
        sender = threading.Thread(target=send_when_energised)
        sender.start()
        with pytest.raises(Interrupted):
            rig.lockers.open("A01")
        sender.join()
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert rig.latch("A01").state is False
    start = time.monotonic()
    assert rig.lockers.open("A02").name == "A02"  # the bank's turn was given back
    assert time.monotonic() - start < PULSE


def test_a_hung_caller_is_cut_off_by_the_watchdog(rig, monkeypatch):
    rig.needs_sim()
    slot = rig.lockers.slot("A01")

    calls = []

    def hung(after: int, timeout: float) -> None:
        calls.append(after)
        if len(calls) == 1:
            time.sleep(0.5)  # the caller stops responding while the latch is energised

    monkeypatch.setattr(slot.sensor, "wait_opened", hung)
    rig.clear_history()
    results: dict = {}
    thread = open_in_thread(rig.lockers, "A01", results)
    assert wait_until(lambda: rig.latch("A01").state)
    assert wait_until(lambda: not rig.latch("A01").state, PULSE + WATCHDOG_MARGIN_S + SLACK)
    assert thread.is_alive()  # still hung, yet the latch is released
    assert slot.latch.watchdog_releases == 1
    assert rig.lockers.open("A02").name == "A02"  # and its bank is free again
    thread.join(5)
    assert isinstance(results["A01"], DoorNotOpened)
    assert "watchdog" in str(results["A01"])
    [(start, end)] = pulses(rig.latch("A01"))
    assert end - start <= PULSE + WATCHDOG_MARGIN_S + 0.05


def test_no_pulse_is_longer_than_the_hard_limit():
    factory = build.pin_factory(GpioFactory.MOCK)
    latch = Latch(4, factory, max_pulse_s=LOCKER_MAX_PULSE_S, label="test latch")
    try:
        pulse = latch.start_pulse(60.0)
        assert pulse.seconds == LOCKER_MAX_PULSE_S
        assert latch.energised
        with pytest.raises(HardwareError, match="already pulsing"):
            latch.start_pulse(0.1)
        pulse.end()
        pulse.end()
        assert not latch.energised
    finally:
        latch.close()
        latch.close()
        factory.close()


def test_close_releases_every_latch_and_is_idempotent(rig):
    if rig.sim is not None:
        rig.sim.inject("A01", "nobody")
        results: dict = {}
        thread = open_in_thread(rig.lockers, "A01", results)
        assert wait_until(lambda: rig.latch("A01").state)
        rig.lockers.close()
        assert rig.latch("A01").state is False
        thread.join(5)
        assert isinstance(results["A01"], HardwareError)
        for slot in rig.lockers.slots:
            assert rig.latch(slot).function == "input"  # the lines are free
            assert not pulses(rig.latch(slot)) or pulses(rig.latch(slot))[-1][1] is not None
    rig.lockers.close()
    rig.lockers.close()
    assert "closed" in repr(rig.lockers)
    with pytest.raises(HardwareError, match="closed"):
        rig.lockers.open(rig.slot)
