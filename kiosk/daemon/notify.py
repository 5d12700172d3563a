"""The systemd notify protocol, written directly: datagrams to ``$NOTIFY_SOCKET``.

``Type=notify`` units are told ``READY=1`` once the daemon serves patrons, ``STATUS=...``
whenever its state changes, ``WATCHDOG=1`` while it is healthy, and ``STOPPING=1`` when it
begins to shut down (see sd_notify(3)). A socket path starting with ``@`` is in the abstract
namespace. Without ``$NOTIFY_SOCKET`` (not started by systemd) every call does nothing.

Sending never raises and never blocks: a notify socket that went away must not stop the
kiosk. What a caller may rely on: :attr:`Notifier.enabled` says whether anything is sent,
and :attr:`Notifier.watchdog_interval` is the interval at which systemd expects
``WATCHDOG=1`` (None when no watchdog is configured for this process).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


def _address(path: str) -> str | bytes:
    if path.startswith("@"):
        return b"\0" + path[1:].encode()
    return path


class Notifier:
    """Talks to systemd through ``environ['NOTIFY_SOCKET']`` (the process environment by
    default). ``WATCHDOG_USEC`` gives the watchdog interval; a ``WATCHDOG_PID`` naming
    another process means the watchdog is not ours."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        self.address = _address(path) if path else None
        self.watchdog_interval: float | None = None
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_interval = int(usec) / 1e6
        self._sock: socket.socket | None = None
        self._complained = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: object) -> bool:
        """Send ``KEY=value`` lines (``send(READY=1, STATUS="ready")``); whether it went."""
        if self.address is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(message, self.address)
        except OSError as exc:
            if not self._complained:  # once: a missing socket would otherwise flood the log
                self._complained = True
                log.warning("cannot notify systemd at %s: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send(READY=1, STATUS=status, MAINPID=os.getpid())

    def status(self, status: str) -> bool:
        return self.send(STATUS=status)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def stopping(self, status: str = "stopping") -> bool:
        return self.send(STOPPING=1, STATUS=status)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
