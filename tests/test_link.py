"""Link: a lost device goes offline at once, comes back by itself within the backoff cap,
and a missing device never makes a caller wait."""

from __future__ import annotations

import threading
import time

import pytest

from drivers.errors import DeviceGone, DeviceTimeout
from hardware.link import TIMEOUTS_BEFORE_LOST, Link
from hardware.roles import DeviceOffline


class Socketish:
    """Stands for a USB device that can be present or not (the seam: what `connect` opens)."""

    def __init__(self) -> None:
        self.present = True
        self.opened = 0
        self.closed = 0
        self.answering = True

    def connect(self) -> Socketish:
        if not self.present:
            raise OSError("no such device")
        self.opened += 1
        return self

    def disconnect(self, _device) -> None:
        self.closed += 1

    def ask(self, _device) -> str:
        if not self.present:
            raise DeviceGone("dev0", "unplugged")
        if not self.answering:
            raise DeviceTimeout("dev0", "no answer")
        return "ok"


def wait_for(condition, timeout: float) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)
    return time.monotonic() - start


def test_unplug_goes_offline_and_replug_comes_back_within_the_cap():
    dev = Socketish()
    events: list[tuple[bool, str]] = []
    link = Link("dev0", dev.connect, dev.disconnect, backoff_initial=0.01, backoff_cap=0.2,
                on_change=lambda name, online, detail: events.append((online, detail)))
    assert link.start()
    assert link.call(dev.ask) == "ok"
    dev.present = False
    with pytest.raises(DeviceGone):
        link.call(dev.ask)
    assert not link.online and dev.closed == 1
    t0 = time.monotonic()
    with pytest.raises(DeviceOffline):
        link.call(dev.ask)
    assert time.monotonic() - t0 < 0.05  # no waiting on a missing device
    time.sleep(0.5)  # several failed attempts, backoff now at its cap
    dev.present = True
    took = wait_for(lambda: link.online, timeout=2)
    assert took < 0.2 + 0.1
    assert link.call(dev.ask) == "ok" and link.reconnects == 1
    assert [e[0] for e in events] == [True, False, True]
    link.close()


def test_repeated_timeouts_count_as_lost():
    dev = Socketish()
    link = Link("dev0", dev.connect, dev.disconnect, backoff_initial=0.01, backoff_cap=0.05)
    link.start()
    dev.answering = False
    for _ in range(TIMEOUTS_BEFORE_LOST - 1):
        with pytest.raises(DeviceTimeout):
            link.call(dev.ask)
        assert link.online
    with pytest.raises(DeviceTimeout):
        link.call(dev.ask)
    dev.answering = True
    wait_for(lambda: link.online and dev.opened == 2, timeout=2)
    link.close()


def test_a_device_missing_at_start_is_picked_up_later():
    dev = Socketish()
    dev.present = False
    link = Link("dev0", dev.connect, dev.disconnect, backoff_initial=0.01, backoff_cap=0.05)
    assert link.start() is False
    with pytest.raises(DeviceOffline) as info:
        link.call(dev.ask)
    assert "no such device" in str(info.value) and "dev0" in str(info.value)
    dev.present = True
    assert link.wait_online(2)
    link.close()


def test_close_stops_reconnecting_and_is_idempotent():
    dev = Socketish()
    dev.present = False
    link = Link("dev0", dev.connect, dev.disconnect, backoff_initial=0.01, backoff_cap=0.02)
    link.start()
    link.close()
    link.close()
    dev.present = True
    time.sleep(0.1)
    assert not link.online and dev.opened == 0
    assert not any(t.name == "reconnect dev0" for t in threading.enumerate())


def test_a_failing_listener_does_not_take_the_device_down():
    dev = Socketish()

    def bad_listener(*_):
        raise RuntimeError("listener bug")

    link = Link("dev0", dev.connect, dev.disconnect, on_change=bad_listener)
    assert link.start() and link.call(dev.ask) == "ok"
    link.close()
