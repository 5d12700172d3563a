"""Keeping a device connected through unplugs, replugs and power cuts of the device.

A :class:`Link` owns one device: it opens it with a ``connect`` callable (open the
transport, build the driver, initialise it), runs calls on it one at a time, and when the
device is lost (the transport fails, or it stops answering several calls in a row) closes it
and reconnects in a background thread with capped exponential backoff. While it is
offline, calls fail at once with :class:`~hardware.roles.DeviceOffline`: nothing waits on a
missing device, and nothing else in the process stops.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from drivers.errors import DeviceGone, DeviceTimeout
from hardware.roles import DeviceOffline

D = TypeVar("D")
T = TypeVar("T")

# With the cap at 2 s a device that comes back is in use again within about 2 s plus the
# time to open and initialise it (DESIGN: under 5 s).
BACKOFF_INITIAL = 0.1
BACKOFF_CAP = 2.0
# A reader that is still enumerated but no longer answers (its power supply failed, a
# USB-serial adapter whose far end is unplugged) shows up as timeouts, not as a failed port.
TIMEOUTS_BEFORE_LOST = 3

StateListener = Callable[[str, bool, str], None]


class Link(Generic[D]):
    """One device, kept connected. Thread-safe: calls are serialised.

    ``connect()`` must return a ready device or raise; ``disconnect(device)`` must release it
    and not raise for a device that is already gone. ``on_change(name, online, detail)`` is
    called from the link's threads whenever the device goes offline or comes back.
    """

    def __init__(
        self,
        name: str,
        connect: Callable[[], D],
        disconnect: Callable[[D], None],
        *,
        on_change: StateListener | None = None,
        backoff_initial: float = BACKOFF_INITIAL,
        backoff_cap: float = BACKOFF_CAP,
    ) -> None:
        self.name = name
        self._connect = connect
        self._disconnect = disconnect
        self._on_change = on_change
        self._backoff_initial = backoff_initial
        self._backoff_cap = backoff_cap
        self._lock = threading.RLock()
        self._device: D | None = None
        self._timeouts = 0
        self._closed = threading.Event()
        self._reconnector: threading.Thread | None = None
        self.last_error = "not connected yet"
        self.reconnects = 0

    def __repr__(self) -> str:
        return f"<Link {self.name} {'online' if self.online else 'offline'}>"

    @property
    def online(self) -> bool:
        return self._device is not None

    def start(self, wait: float = 0.0) -> bool:
        """Try to connect now; if that fails, keep trying in the background. With ``wait``,
        wait up to that many seconds for the device. Returns whether it is online."""
        if not self._try_connect():
            self._ensure_reconnector()
        if wait and not self.online:
            self.wait_online(wait)
        return self.online

    def wait_online(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.online and time.monotonic() < deadline and not self._closed.is_set():
            time.sleep(0.01)
        return self.online

    def call(self, action: Callable[[D], T]) -> T:
        """Run ``action(device)``. Raises DeviceOffline while the device is missing, and the
        driver's own error when the call fails (after which the link may go offline)."""
        with self._lock:
            device = self._device
            if device is None:
                raise DeviceOffline(self.name, self.last_error)
            try:
                result = action(device)
            except DeviceGone as exc:
                self._lost(device, str(exc))
                raise
            except DeviceTimeout as exc:
                self._timeouts += 1
                if self._timeouts >= TIMEOUTS_BEFORE_LOST:
                    self._lost(device, f"{self._timeouts} calls without an answer: {exc}")
                raise
            self._timeouts = 0
            return result

    def close(self) -> None:
        """Disconnect and stop reconnecting; idempotent."""
        self._closed.set()
        with self._lock:
            device, self._device = self._device, None
        if device is not None:
            self._safe_disconnect(device)
        thread = self._reconnector
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self._backoff_cap + 5)

    # -- internals -------------------------------------------------------------------------

    def _notify(self, online: bool, detail: str) -> None:
        if self._on_change is not None:
            # A listener must never take the device down.
            with contextlib.suppress(Exception):
                self._on_change(self.name, online, detail)

    def _safe_disconnect(self, device: D) -> None:
        # The device is gone already; releasing it is best effort.
        with contextlib.suppress(Exception):
            self._disconnect(device)

    def _lost(self, device: D, detail: str) -> None:
        with self._lock:
            if self._device is device:
                self._device = None
        self.last_error = detail
        self._timeouts = 0
        self._safe_disconnect(device)
        self._notify(False, detail)
        self._ensure_reconnector()

    def _try_connect(self) -> bool:
        if self._closed.is_set():
            return False
        try:
            device = self._connect()
        except Exception as exc:  # any failure to open means "not there yet"
            self.last_error = str(exc) or type(exc).__name__
            return False
        with self._lock:
            if self._closed.is_set():
                self._safe_disconnect(device)
                return False
            self._device = device
            self._timeouts = 0
        self._notify(True, "connected")
        return True

    def _ensure_reconnector(self) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            if self._reconnector is not None and self._reconnector.is_alive():
                return
            self._reconnector = threading.Thread(
                target=self._reconnect_loop, name=f"reconnect {self.name}", daemon=True)
            self._reconnector.start()

    def _reconnect_loop(self) -> None:
        delay = self._backoff_initial
        while not self._closed.is_set() and not self.online:
            if self._closed.wait(delay):
                return
            if self._try_connect():
                self.reconnects += 1
                return
            delay = min(delay * 2, self._backoff_cap)
