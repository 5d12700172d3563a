"""``usblp://`` URLs: a USB printer-class device (Linux ``usblp``, ``/dev/usb/lp0``) as a
pyserial port.

The kernel's usblp driver gives a USB printer a character device that is not a tty, so
pyserial's own ``Serial`` cannot open it (it would try to set a baud rate on it). This handler
opens it with ``os.open`` and offers what a driver needs: ``read`` (waiting up to the port's
``timeout``), ``write`` (up to ``write_timeout``), ``in_waiting``, ``reset_input_buffer``
and ``fileno`` (for select()). Line settings (baud rate, parity, DTR/RTS) mean nothing on
USB and are accepted and ignored. With ``exclusive=True`` the device is locked with flock()
as pyserial locks a tty; usblp itself also lets only one process open a device at a time.

URL: ``usblp://`` followed by the device path, e.g. ``usblp:///dev/usb/lp0`` or
``usblp:///dev/kiosk-printer`` (a udev symlink). Registered by adding ``hardware.transports``
to ``serial.protocol_handler_packages`` (pyserial's documented extension point).

When the printer is unplugged, reads and writes fail with ENODEV: a SerialException, as with
a USB serial adapter pulled out.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
from urllib.parse import urlsplit

from serial.serialutil import (
    PortNotOpenError,
    SerialBase,
    SerialException,
    SerialTimeoutException,
    Timeout,
)

_RETRY = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR)


def device_path(url: str) -> str:
    """The device path of a ``usblp://`` URL."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "usblp" or not parts.path or parts.netloc or parts.query:
        raise SerialException(f"expected usblp:///dev/usb/lpN (a device path), got {url!r}")
    return parts.path


class Serial(SerialBase):
    """A USB printer device opened from a ``usblp://`` URL; see the module docstring."""

    fd: int | None = None

    def open(self) -> None:
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        if self.is_open:
            raise SerialException("Port is already open.")
        path = device_path(self.portstr)
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise SerialException(exc.errno, f"could not open port {path}: {exc}") from exc
        if self._exclusive:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                raise SerialException(exc.errno, f"could not exclusively lock port {path}: "
                                      f"{exc}") from exc
        self.fd = fd
        self.is_open = True

    def close(self) -> None:
        if self.is_open and self.fd is not None:
            with contextlib.suppress(OSError):  # the device is gone already
                os.close(self.fd)
            self.fd = None
        self.is_open = False

    def _reconfigure_port(self, force_update: bool = False) -> None:
        """Nothing to configure on a USB printer."""

    def _update_dtr_state(self) -> None:
        """No modem lines on USB."""

    def _update_rts_state(self) -> None:
        """No modem lines on USB."""

    def _update_break_state(self) -> None:
        """No break condition on USB."""

    def fileno(self) -> int:
        if not self.is_open or self.fd is None:
            raise PortNotOpenError()
        return self.fd

    def _readable(self, wait: float | None) -> bool:
        ready, _, _ = select.select([self.fileno()], [], [], wait)
        return bool(ready)

    @property
    def in_waiting(self) -> int:
        """1 when at least one byte can be read now, else 0 (a USB printer cannot say how
        many bytes it has)."""
        return 1 if self._readable(0) else 0

    def read(self, size: int = 1) -> bytes:
        """Up to ``size`` bytes, waiting at most ``timeout`` for them (forever if None)."""
        fd = self.fileno()
        out = bytearray()
        timeout = Timeout(self._timeout)
        while len(out) < size:
            if not self._readable(timeout.time_left()):
                break
            try:
                chunk = os.read(fd, size - len(out))
            except OSError as exc:
                if exc.errno in _RETRY:
                    continue
                raise SerialException(exc.errno, f"read failed: {exc}") from exc
            if not chunk:
                raise SerialException("device reports readiness to read but returned no "
                                      "data (device disconnected?)")
            out += chunk
            if timeout.expired():
                break
        return bytes(out)

    def write(self, data: bytes) -> int:
        """Write all of ``data``; SerialTimeoutException when the printer does not take it
        within ``write_timeout`` (a printer that is offline stops taking data)."""
        fd = self.fileno()
        view = memoryview(bytes(data))
        timeout = Timeout(self._write_timeout)
        while view:
            _, ready, _ = select.select([], [fd], [], timeout.time_left())
            if not ready:
                raise SerialTimeoutException("Write timeout")
            try:
                view = view[os.write(fd, view):]
            except OSError as exc:
                if exc.errno in _RETRY:
                    continue
                raise SerialException(exc.errno, f"write failed: {exc}") from exc
            if view and timeout.expired():
                raise SerialTimeoutException("Write timeout")
        return len(data)

    def flush(self) -> None:
        """Writes go to the device at once; nothing is held here."""

    def reset_input_buffer(self) -> None:
        """Discard what the printer has sent and nobody read."""
        fd = self.fileno()
        while self._readable(0):
            try:
                if not os.read(fd, 4096):
                    return
            except OSError as exc:
                if exc.errno in _RETRY:
                    return
                raise SerialException(exc.errno, f"read failed: {exc}") from exc

    def reset_output_buffer(self) -> None:
        """Nothing is buffered on this side."""

    @property
    def cts(self) -> bool:
        return True

    @property
    def dsr(self) -> bool:
        return True

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return True
