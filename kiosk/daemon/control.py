"""The control socket: how the ``kiosk`` command talks to the running daemon.

A Unix stream socket (mode 0660) speaking JSON lines. Each request is one line::

    {"id": 1, "cmd": "status", "args": {}}

and gets one line back, with the same ``id``::

    {"id": 1, "ok": true, "result": {...}}
    {"id": 1, "ok": false, "error": {"code": "unknown_command", "message_key": "...",
                                     "params": {...}}}

A connection may carry any number of requests, one after the other. ``watch`` is the one
request answered with many lines: ``{"id": ..., "ok": true, "event": {...}}`` for every event
the daemon publishes, until the client hangs up. A line that is not JSON, not an object, too
long (over 64 KiB) or names no known command gets an error answer; the daemon carries on
(a line too long also ends that connection, as the rest of it cannot be trusted).

Only the daemon's own user, members of its group, and root may talk to it: the socket's
mode keeps others out, and each connection's peer credentials (``SO_PEERCRED``) are checked
as well, so a socket left with the wrong mode still refuses strangers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LINE_LIMIT = 64 * 1024
SOCKET_MODE = 0o660
REFUSE_WAIT_S = 2.0


class ControlError(Exception):
    """An answer of ``ok: false``: ``code`` for scripts, ``message_key``/``params`` for
    people."""

    def __init__(self, code: str, message_key: str, /, **params: Any) -> None:
        super().__init__(f"{code}: {params}")
        self.code = code
        self.message_key = message_key
        self.params = params

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message_key": self.message_key,
                "params": {k: v if isinstance(v, int | float | bool) or v is None else str(v)
                           for k, v in self.params.items()}}


class AlreadyRunning(RuntimeError):
    """Another daemon answers on the control socket."""


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int


def peer_of(sock: socket.socket) -> Peer:
    """The credentials of the process at the other end (Linux ``SO_PEERCRED``)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return Peer(*struct.unpack("3i", raw))


def _groups_of(pid: int) -> set[int]:
    """The supplementary groups of process ``pid`` (empty if it cannot be read)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Groups:"):
                    return {int(g) for g in line.split()[1:]}
    except (OSError, ValueError):
        pass
    return set()


def allowed(peer: Peer, uid: int | None = None, gid: int | None = None) -> bool:
    """Root, the daemon's user (``uid``), or a member of its group (``gid``)."""
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    return peer.uid in (0, uid) or peer.gid == gid or gid in _groups_of(peer.pid)


Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class ControlServer:
    """Serves ``commands`` (name -> coroutine taking the request's ``args``) and ``watch``
    on ``path``. A handler raises :class:`ControlError` for a refusal; any other exception
    is answered as ``internal_error`` and logged."""

    def __init__(self, path: Path, commands: dict[str, Handler],
                 watch: Callable[[], AsyncIterator[dict[str, Any]]]) -> None:
        self.path = path
        self.commands = commands
        self.watch = watch
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen on ``path`` with mode 0660; refuses (:class:`AlreadyRunning`) when another
        daemon answers there, and replaces a stale socket file left by a dead one."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        if self.path.exists() or self.path.is_symlink():
            if await answers(self.path):
                raise AlreadyRunning(f"{self.path}: another kiosk daemon is running")
            self.path.unlink()
        # The socket is created with the mode the umask leaves; make sure that is never
        # wider than 0660, even for the moment before the chmod.
        old = os.umask(0o117)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path),
                                                           limit=LINE_LIMIT)
        finally:
            os.umask(old)
        os.chmod(self.path, SOCKET_MODE)

    async def close(self) -> None:
        """Stop listening, end every connection, remove the socket file."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.wait(set(self._clients), timeout=2)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            peer = peer_of(writer.get_extra_info("socket"))
            if not allowed(peer):
                log.warning("control: refused uid %d gid %d (pid %d)", peer.uid, peer.gid,
                            peer.pid)
                await self._refuse(reader, writer, peer)
                return
            await self._conversation(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client hung up
        finally:
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      peer: Peer) -> None:
        """Answer the stranger's first request (so its client reads a clear refusal rather
        than a broken pipe), then hang up. Nothing of the request is looked at but its id."""
        ident = None
        with contextlib.suppress(Exception):
            line = await asyncio.wait_for(reader.readline(), REFUSE_WAIT_S)
            request = json.loads(line)
            ident = request.get("id") if isinstance(request, dict) else None
        await _send(writer, _error(ident, ControlError(
            "not_allowed", "daemon.control.not_allowed", uid=peer.uid)))

    async def _conversation(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.LimitOverrunError:
                await _send(writer, _error(None, ControlError(
                    "too_long", "daemon.control.too_long", limit=LINE_LIMIT)))
                return
            except asyncio.IncompleteReadError as exc:
                if exc.partial.strip():
                    await _send(writer, _error(None, ControlError(
                        "bad_json", "daemon.control.bad_json", detail="no newline at the end")))
                return
            if not line.strip():
                continue
            try:
                request = json.loads(line)
            except ValueError as exc:
                await _send(writer, _error(None, ControlError(
                    "bad_json", "daemon.control.bad_json", detail=str(exc))))
                continue
            if not isinstance(request, dict) or not isinstance(request.get("args", {}), dict):
                await _send(writer, _error(None, ControlError(
                    "bad_request", "daemon.control.bad_request")))
                continue
            ident, cmd = request.get("id"), request.get("cmd")
            if cmd == "watch":
                await _send(writer, {"id": ident, "ok": True, "result": {"watching": True}})
                async for event in self.watch():
                    await _send(writer, {"id": ident, "ok": True, "event": event})
                return
            await _send(writer, await self._answer(ident, cmd, request.get("args") or {}))

    async def _answer(self, ident: Any, cmd: Any, args: dict[str, Any]) -> dict[str, Any]:
        handler = self.commands.get(cmd) if isinstance(cmd, str) else None
        if handler is None:
            return _error(ident, ControlError("unknown_command", "daemon.control.unknown_command",
                                              command=str(cmd),
                                              known=", ".join(sorted([*self.commands, "watch"]))))
        try:
            return {"id": ident, "ok": True, "result": await handler(args)}
        except ControlError as exc:
            return _error(ident, exc)
        except Exception as exc:  # answered and logged; the daemon carries on
            log.exception("control: %s failed", cmd)
            return _error(ident, ControlError("internal_error", "daemon.control.internal_error",
                                              detail=f"{type(exc).__name__}: {exc}"))


def _error(ident: Any, exc: ControlError) -> dict[str, Any]:
    return {"id": ident, "ok": False, "error": exc.as_dict()}


async def _send(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    writer.write(json.dumps(message, ensure_ascii=False, default=str).encode() + b"\n")
    await writer.drain()


async def answers(path: Path) -> bool:
    """Whether something accepts connections on the socket ``path``."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 1.0)
    except (TimeoutError, OSError):
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True
