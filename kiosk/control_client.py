"""The ``kiosk`` command's side of the control socket (protocol: :mod:`kiosk.daemon.control`).

Commands decide here, in one place, whether to go through the running daemon or to work
directly on the database and the devices: :func:`daemon_for` gives a connected
:class:`ControlClient` when a daemon answers on the configured socket (and owns the database
the command would use), else None. A daemon that runs but refuses us is an error, never a
reason to go round it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kiosk import exitcodes

CONNECT_TIMEOUT_S = 2.0
REQUEST_TIMEOUT_S = 60.0


class NotRunning(Exception):
    """Nothing answers on the control socket: no daemon runs (with this config)."""


class DaemonError(Exception):
    """The daemon answered ``ok: false`` (or refused us): ``code`` for scripts,
    ``message_key`` and ``params`` for people."""

    def __init__(self, code: str, message_key: str, params: dict[str, Any] | None = None):
        super().__init__(f"{code}: {params or {}}")
        self.code = code
        self.message_key = message_key
        self.params = params or {}

    @property
    def exit_code(self) -> int:
        """The ``kiosk`` exit code that fits the refusal."""
        if self.code == "no_hub":
            return exitcodes.CONFIG
        if self.code == "database":
            return exitcodes.DATA
        if self.code in ("bad_arguments", "bad_request", "unknown_command"):
            return exitcodes.USAGE
        return exitcodes.REFUSED


class ControlClient:
    """One connection to the daemon; requests are answered in order. A context manager."""

    def __init__(self, sock: socket.socket, path: Path) -> None:
        self.path = path
        self._sock = sock
        self._file = sock.makefile("rwb")
        self._ids = itertools.count(1)

    @classmethod
    def connect(cls, path: Path, timeout: float = CONNECT_TIMEOUT_S) -> ControlClient:
        """Connect to the daemon at ``path``. Raises :class:`NotRunning` when nothing
        listens there, :class:`DaemonError` (``not_allowed``) when the socket's permissions
        keep us out."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as exc:
            sock.close()
            raise NotRunning(str(path)) from exc
        except PermissionError as exc:
            sock.close()
            raise DaemonError("not_allowed", "daemon.control.not_allowed",
                              {"uid": os.getuid(), "detail": str(exc)}) from exc
        except OSError as exc:
            sock.close()
            raise NotRunning(f"{path}: {exc}") from exc
        return cls(sock, path)

    def request(self, cmd: str, *, timeout: float = REQUEST_TIMEOUT_S, **args: Any) -> Any:
        """Send ``cmd`` with ``args``; the ``result`` of a good answer, else raise
        :class:`DaemonError`."""
        ident = next(self._ids)
        self._send({"id": ident, "cmd": cmd, "args": args}, timeout)
        return _result(self._read(timeout))

    def watch(self, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Every event the daemon publishes from now on (ends when the daemon stops)."""
        self._send({"id": next(self._ids), "cmd": "watch"}, REQUEST_TIMEOUT_S)
        _result(self._read(REQUEST_TIMEOUT_S))
        while True:
            try:
                answer = self._read(timeout)
            except DaemonError as exc:
                if exc.code == "gone":
                    return
                raise
            if "event" in answer:
                yield answer["event"]

    def _send(self, message: dict[str, Any], timeout: float) -> None:
        self._sock.settimeout(timeout)
        try:
            self._file.write(json.dumps(message, ensure_ascii=False).encode() + b"\n")
            self._file.flush()
        except OSError as exc:
            # The daemon may have answered and hung up first (a refusal): say what it said.
            try:
                answer = self._read(1.0)
            except (DaemonError, ValueError):
                answer = None
            if answer is not None:
                _result(answer)
            raise DaemonError("gone", "daemon.control.gone", {"detail": str(exc)}) from exc

    def _read(self, timeout: float | None) -> dict[str, Any]:
        self._sock.settimeout(timeout)
        try:
            line = self._file.readline()
        except TimeoutError as exc:
            raise DaemonError("timeout", "daemon.control.timeout",
                              {"seconds": int(timeout or 0)}) from exc
        except OSError as exc:
            raise DaemonError("gone", "daemon.control.gone", {"detail": str(exc)}) from exc
        if not line:
            raise DaemonError("gone", "daemon.control.gone", {"detail": "connection closed"})
        return json.loads(line)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        self._sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _result(answer: dict[str, Any]) -> Any:
    if answer.get("ok"):
        return answer.get("result")
    error = answer.get("error") or {}
    raise DaemonError(str(error.get("code", "error")),
                      str(error.get("message_key", "daemon.control.internal_error")),
                      dict(error.get("params") or {}))


def daemon_for(app: Any, *, db: bool = True, say: bool = True) -> ControlClient | None:
    """A client of the daemon serving this command's config, or None when none runs.

    With ``say`` the command tells its reader which it is (:meth:`kiosk.app.App.note_route`);
    commands that say it in their own words pass False.

    With ``db``, a command given ``--db FILE`` for another database than the daemon's works
    on that file directly (an offline copy, a backup); the daemon's own database always goes
    through the daemon, which owns it.
    """
    client = _daemon_for(app, db)
    if say and hasattr(app, "note_route"):
        app.note_route(client is not None)
    return client


def note_daemon(app: Any) -> bool:
    """For a command that works on its own whether or not the daemon runs (``db check``,
    ``db backup``, ``config show``, ``logs``): whether a daemon answers on the configured
    control socket, said to the reader as :func:`daemon_for` says its route. A daemon that
    refuses us still runs."""
    try:
        socket_path = app.settings().daemon.control_socket
    except Exception:  # only a note: a config that does not build is the command's business
        return False
    try:
        ControlClient.connect(socket_path).close()
    except NotRunning:
        running = False
    except DaemonError:
        running = True
    else:
        running = True
    if hasattr(app, "note_route"):
        app.note_route(running, alongside=True)
    return running


def _daemon_for(app: Any, db: bool) -> ControlClient | None:
    path = app.settings().daemon.control_socket
    explicit = getattr(app.args, "db", None) if db else None
    try:
        client = ControlClient.connect(path)
    except NotRunning:
        return None
    except DaemonError as exc:
        # A daemon we may not control cannot be serving a database named explicitly that
        # we can open ourselves (its files belong to its user): work on that file directly.
        if explicit and exc.code == "not_allowed":
            return None
        raise
    if explicit:
        try:
            hello = client.request("hello")
        except DaemonError as exc:
            client.close()
            if exc.code == "not_allowed":
                return None
            raise
        if Path(explicit).resolve() != Path(hello["db"]).resolve():
            client.close()
            return None
    return client
