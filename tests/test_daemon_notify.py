"""systemd's notify protocol, with a datagram socket of the test's own as ``$NOTIFY_SOCKET``:
READY once the devices were probed, WATCHDOG only while every worker makes progress,
STOPPING (and every actuator safe) on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest

from kiosk.control_client import ControlClient
from kiosk.daemon.notify import Notifier
from tests.daemon_helpers import (
    NotifySocket,
    kiosk_env,
    make_world,
    remove_tree,
    running,
    settings_for,
    short_dir,
    spawn,
    write_config,
)


@pytest.fixture
def folder():
    path = short_dir()
    make_world(path / "kiosk.db")
    yield path
    remove_tree(path)


@pytest.fixture
def notify(folder):
    sock = NotifySocket(folder)
    yield sock
    sock.close()


def test_notifier_sends_datagrams_and_does_nothing_without_a_socket(notify):
    assert not Notifier({}).enabled and Notifier({}).ready("x") is False
    n = Notifier({"NOTIFY_SOCKET": str(notify.path)})
    assert n.ready("ready") and n.watchdog() and n.stopping()
    assert notify.receive(1)["READY"] == "1"
    assert notify.receive(1) == {"WATCHDOG": "1"}
    assert notify.receive(1) == {"STOPPING": "1", "STATUS": "stopping"}
    n.close()


def test_abstract_namespace_socket():
    name = f"kiosk-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).status("hello")
        assert sock.recv(100) == b"STATUS=hello"
    finally:
        sock.close()


def test_watchdog_interval_is_ours_only():
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval == 30.0
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}).watchdog_interval is None
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
                    ).watchdog_interval == 30.0
    assert Notifier({"WATCHDOG_USEC": "nonsense"}).watchdog_interval is None


def test_a_vanished_notify_socket_never_stops_the_daemon(folder):
    n = Notifier({"NOTIFY_SOCKET": str(folder / "gone.sock")})
    assert n.ready("ready") is False and n.watchdog() is False


def test_ready_after_the_devices_were_probed_and_stopping_on_sigterm(folder, notify):
    config = write_config(folder, folder / "kiosk.db")
    child = spawn(config, env=kiosk_env(NOTIFY_SOCKET=str(notify.path)))
    try:
        ready = notify.wait_for("READY", timeout=20)
        assert ready["STATUS"] == "ready" and ready["MAINPID"] == str(child.pid)
        # At READY the devices are up and the control socket answers.
        with ControlClient.connect(folder / "control.sock") as client:
            status = client.request("status")
        assert status["state"] == "ready"
        assert all(d["online"] for d in status["devices"].values())
        child.send_signal(signal.SIGTERM)
        assert notify.wait_for("STOPPING", timeout=10)["STATUS"] == "stopping"
        assert child.wait(timeout=20) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert not (folder / "control.sock").exists()


def test_watchdog_stops_while_a_worker_is_stalled(folder, notify):
    settings = settings_for(write_config(folder, folder / "kiosk.db"), worker_stall_s=1)
    env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000"}
    with running(settings, environ=env) as k:
        notify.wait_for("READY", timeout=10)
        for _ in range(3):
            notify.wait_for("WATCHDOG", timeout=2)
        # The tag reader's worker hangs (a driver stuck in I/O would look the same).
        release = threading.Event()
        stuck = k.workers("tag_reader").submit(release.wait, 30)
        stalled = notify.wait_for("STATUS", timeout=5)
        assert stalled["STATUS"] == "stalled: tag_reader"
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 1.0:
            message = notify.receive(0.2)
            assert message is None or "WATCHDOG" not in message, message
        assert k.daemon.unhealthy() == ["tag_reader"]
        release.set()
        stuck.result(5)
        notify.wait_for("WATCHDOG", timeout=3)
        assert k.daemon.unhealthy() == []


def test_every_actuator_is_safe_after_stop(folder):
    config = write_config(folder, folder / "kiosk.db", doors=True)
    with running(settings_for(config)) as daemon:
        entrance, lockers = daemon.sims.entrance, daemon.sims.locker_doors
        entrance.inject("door", "nobody")  # the latch is released; nobody pushes the door
        opening = daemon.workers("doors").submit(daemon.devices.door.open)
        assert entrance.wait_for("door", "energised", 5)
    # The daemon stopped in the middle of the door's 3 s pulse: the latch is locked again
    # at once, not when the pulse would have ended.
    events = entrance.events["door"]
    energised = next(e.at for e in events if e.what == "energised")
    released = next(e.at for e in events if e.what == "released")
    assert released - energised < 1.5
    assert not entrance.energised("door")
    assert not any(lockers.energised(slot) for slot in lockers.names)
    assert opening.done()
