"""A serial device on a pseudo-terminal, for simulators that speak a real wire protocol.

:class:`PtyDevice` opens a pty in raw mode and runs a device model on the master side in a
thread; programs open the slave side through a stable symlink, as they would open
``/dev/serial/by-id/...``. It behaves like a USB serial device where it matters:

- bytes travel at the configured line speed: the model sees a request only when its last byte
  would have arrived (``bits_per_byte`` / ``baud`` seconds a byte; 8E1 is 11 bits), and each
  byte it sends becomes readable when its stop bit would have passed;
- :meth:`PtyDevice.unplug` closes the master and removes the symlink: a program reading the
  slave gets an error from pyserial, exactly as when a USB adapter is pulled, and opening the
  path fails; :meth:`PtyDevice.replug` makes a new pty and points the symlink at it.

The model is a callable ``handler(data, device)`` run in the device thread with each chunk of
received bytes; it answers with :meth:`PtyDevice.send` and waits with :meth:`PtyDevice.sleep`,
both of which return False once the device is being unplugged or stopped.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path

Handler = Callable[[bytes, "PtyDevice"], None]


class PtyDevice:
    """A pty "serial device" served by ``handler``; see the module docstring.

    ``link_dir``/``link_name`` give the stable path (:attr:`path`). ``pace=False`` delivers
    bytes as fast as the pty moves them (for tests that do not care about timing).
    """

    def __init__(self, handler: Handler, *, baud: int = 38400, bits_per_byte: int = 11,
                 link_dir: str | os.PathLike[str], link_name: str = "ttySIM0",
                 pace: bool = True) -> None:
        if baud <= 0 or bits_per_byte <= 0:
            raise ValueError("baud and bits_per_byte must be positive")
        self.handler = handler
        self.baud = baud
        self.bits_per_byte = bits_per_byte
        self.pace = pace
        self.path = Path(link_dir) / link_name
        self.bytes_in = 0
        self.bytes_out = 0
        self.errors: list[BaseException] = []  # exceptions the handler raised (model bugs)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._master = self._slave = self._wake_r = self._wake_w = -1
        self._leaving = threading.Event()  # set while unplugging or stopping
        self._pts: str | None = None
        self._tx_free = 0.0  # monotonic time when the line back to the host is free

    @property
    def byte_time(self) -> float:
        """Seconds one byte occupies the line."""
        return self.bits_per_byte / self.baud

    @property
    def plugged(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def pts(self) -> str | None:
        """The current /dev/pts/N behind :attr:`path`, None while unplugged."""
        return self._pts

    def __repr__(self) -> str:
        state = f"-> {self._pts}" if self.plugged else "unplugged"
        return f"<PtyDevice {self.path} {state}>"

    # -- plugging ----------------------------------------------------------------------------

    def start(self) -> PtyDevice:
        """Plug in: a new pty, the symlink pointing at it, the device thread running."""
        with self._lock:
            if self.plugged:
                return self
            self._leaving.clear()
            self._master, self._slave = os.openpty()
            # Raw on both ends before anyone opens the slave: no echo, no line editing, so
            # nothing the host writes comes back before its serial library sets raw mode too.
            tty.setraw(self._master)
            tty.setraw(self._slave)
            self._wake_r, self._wake_w = os.pipe()
            self._pts = os.ttyname(self._slave)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self._pts)
            os.replace(tmp, self.path)  # atomic, like udev moving a by-id link
            self._tx_free = 0.0
            self._thread = threading.Thread(target=self._run, name=f"pty {self.path.name}",
                                            daemon=True)
            self._thread.start()
        return self

    def unplug(self, timeout: float = 2.0) -> None:
        """Pull the plug: the host's port fails, the path disappears. Safe from any thread,
        the device thread included (then the unplug completes when the handler returns)."""
        thread = self._thread
        if thread is None:
            return
        self._leaving.set()
        with self._lock:  # the device thread closes the pipe under the same lock
            if self._wake_w >= 0:
                with contextlib.suppress(OSError):
                    os.write(self._wake_w, b"x")
        if threading.current_thread() is not thread:
            thread.join(timeout)

    def replug(self) -> PtyDevice:
        """Unplug if needed, then plug in again on a new pty behind the same path."""
        self.unplug()
        return self.start()

    def stop(self) -> None:
        self.unplug()

    def __enter__(self) -> PtyDevice:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- used by the handler, in the device thread --------------------------------------------

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` (the model is busy); False if the device is being unplugged."""
        if seconds > 0:
            return not self._leaving.wait(seconds)
        return not self._leaving.is_set()

    def send(self, data: bytes) -> bool:
        """Send ``data`` to the host at line speed; returns when the last byte has arrived,
        False if the device was unplugged meanwhile (the rest is lost, as on a real cable)."""
        if not data:
            return True
        bt = self.byte_time if self.pace else 0.0
        start = max(time.monotonic(), self._tx_free)
        sent = 0
        # Each byte becomes readable at start + (i + 1) * bt; release them in batches of
        # about 2 ms so sleeping does not dominate, never before they are due.
        batch = max(1, int(0.002 / bt)) if bt else len(data)
        while sent < len(data):
            if bt:
                due = min(len(data), int((time.monotonic() - start) / bt))
                if due <= sent:
                    target = min(len(data), sent + batch)
                    if not self.sleep(start + target * bt - time.monotonic()):
                        return False
                    continue
            else:
                due = len(data)
            if self._leaving.is_set():
                return False
            # Counted before the write: the reader may have the bytes (and a test may read
            # the count) before this thread runs again.
            self.bytes_out += due - sent
            try:
                os.write(self._master, data[sent:due])
            except OSError:
                self.bytes_out -= due - sent
                return False
            sent = due
        self._tx_free = start + len(data) * bt
        return True

    # -- the device thread -------------------------------------------------------------------

    def _run(self) -> None:
        rx_done = 0.0  # when the bytes received so far have completely arrived
        try:
            while not self._leaving.is_set():
                ready, _, _ = select.select([self._master, self._wake_r], [], [], 0.5)
                if self._wake_r in ready or self._master not in ready:
                    continue
                try:
                    data = os.read(self._master, 4096)
                except OSError:
                    continue  # nobody has the slave open at this instant
                if not data:
                    continue
                self.bytes_in += len(data)
                if self.pace:
                    rx_done = max(rx_done, time.monotonic()) + len(data) * self.byte_time
                    if not self.sleep(rx_done - time.monotonic()):
                        break
                try:
                    self.handler(data, self)
                except Exception as exc:  # a model bug must not look like an unplug
                    self.errors.append(exc)
        finally:
            self._close_fds()

    def _close_fds(self) -> None:
        with self._lock:
            # Remove the path first, as the kernel does with a by-id link on unplug.
            with contextlib.suppress(FileNotFoundError):
                if self.path.is_symlink() and os.readlink(self.path) == self._pts:
                    self.path.unlink()
            for fd in (self._master, self._slave, self._wake_r, self._wake_w):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._master = self._slave = self._wake_r = self._wake_w = -1
            self._pts = None
