"""Running the real kiosk daemon in tests: in this process on a thread of its own (fast, with
the simulators at hand), or as a ``kiosk run`` child process (for signals, systemd notify and
SIGKILL).

Both use a simulated kiosk whose control socket and runtime files live in a short temporary
folder (a Unix socket path must stay under 108 bytes) and whose database is a small explicit
world: patrons with cards ``CARDS`` and books ``BOOKS``, titled ``书<barcode>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hardware.sim.books import book_tag
from kiosk import config
from kiosk.config.settings import Settings
from kiosk.daemon.app import Daemon
from tests.conftest import NOON_ISH, ManualClock, build_world

ROOT = Path(__file__).resolve().parent.parent
CARDS = [f"4311000001{n:02d}" for n in range(1, 10)]
BOOKS = [f"3{n:07d}" for n in range(1, 60)]


def short_dir(prefix: str = "kd-") -> Path:
    """A private folder with a short path, for sockets and ptys."""
    return Path(tempfile.mkdtemp(prefix=prefix))


def make_world(path: Path, cards: list[str] = CARDS, books: list[str] = BOOKS,
               max_loans: int = 1000) -> None:
    """A kiosk database with ``cards`` (adult patrons) and ``books`` (available items)."""
    world = build_world(path, ManualClock(NOON_ISH))
    with world.cache.transaction() as conn:
        conn.executemany(
            "INSERT INTO patrons (card_number, name, patron_type, home_branch) VALUES"
            " (?, ?, 'adult', 'CN-431121-0002')", ((c, f"读者{c}") for c in cards))
        conn.executemany(
            "INSERT INTO items (barcode, title, owning_branch, current_branch) VALUES"
            " (?, ?, 'CN-431121-0002', 'CN-431121-0002')", ((b, f"书{b}") for b in books))
        conn.execute("UPDATE loan_rules SET max_loans = ?", (max_loans,))
    world.cache.close()


def write_config(folder: Path, db_path: Path, *, extra: str = "", doors: bool = False) -> Path:
    """A ``sim`` profile config: database ``db_path``, control socket in ``folder``;
    lockers, entrance door and entrance card reader only with ``doors``; ``extra`` TOML at
    the end."""
    path = folder / "kiosk.toml"
    if not doors:
        extra = ("[lockers]\nenabled = false\n[door]\nenabled = false\n"
                 "[entrance_reader]\nenabled = false\n" + extra)
    path.write_text(
        '[device]\nid = "sim-01"\nbranch = "CN-431121-0002"\nprofile = "sim"\n'
        'language = "zh-CN"\n'
        f'[database]\npath = "{db_path}"\n'
        f'[daemon]\ncontrol_socket = "{folder / "control.sock"}"\n'
        'card_poll_ms = 50\ntag_poll_ms = 100\nprinter_poll_ms = 500\n'
        '[ui]\nport = 0\n'
        f'[circulation.offline]\nmax_loans_per_patron = 100\n{extra}',
        encoding="utf-8")
    return path


def settings_for(config_path: Path, **daemon: Any) -> Settings:
    settings = config.load(config_path)
    if daemon:
        settings = dataclasses.replace(settings,
                                       daemon=dataclasses.replace(settings.daemon, **daemon))
    return settings


class DaemonThread:
    """The daemon on an event loop in a background thread. ``events`` is every event it
    published so far; :meth:`wait_for` waits for one."""

    def __init__(self, settings: Settings, *, environ: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.environ = environ if environ is not None else {}
        self.daemon: Daemon | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.events: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self._changed = threading.Condition()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test daemon", daemon=True)

    def start(self, timeout: float = 20.0) -> DaemonThread:
        self._thread.start()
        if not self._ready.wait(timeout) or self.error is not None:
            raise RuntimeError(f"the daemon did not start: {self.error!r}")
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start() / stop()
            self.error = exc
            self._ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.daemon = Daemon(self.settings, environ=self.environ)
        watcher = self.daemon.bus.subscribe()

        async def collect() -> None:
            while (event := await watcher.get()) is not None:
                with self._changed:
                    self.events.append(event)
                    self._changed.notify_all()

        collector = asyncio.ensure_future(collect())
        main = asyncio.ensure_future(self.daemon.main(signals=False))
        ready = asyncio.ensure_future(self.daemon.wait_ready())
        await asyncio.wait({main, ready}, return_when=asyncio.FIRST_COMPLETED)
        self._ready.set()
        await main
        await collector

    @property
    def devices(self) -> Any:
        assert self.daemon is not None and self.daemon.devices is not None
        return self.daemon.devices

    @property
    def sims(self) -> Any:
        return self.devices.sims

    def call(self, fn: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Run ``fn()`` (a coroutine function or a plain one) on the daemon's loop."""
        assert self.loop is not None

        async def run() -> Any:
            result = fn()
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def put(self, event: object) -> None:
        assert self.daemon is not None
        self.call(lambda: self.daemon.put(event))

    def control(self, cmd: str, **args: Any) -> Any:
        """A control command as the socket would run it."""
        assert self.daemon is not None and self.daemon.control is not None
        handler = self.daemon.control.commands[cmd]
        return self.call(lambda: handler(args))

    def wait_for(self, event: str, timeout: float = 10.0, start: int = 0,
                 **fields: Any) -> dict[str, Any]:
        """The first event ``event`` (from index ``start``) whose fields match ``fields``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for item in self.events[start:]:
                    if item["event"] == event and all(item.get(k) == v
                                                      for k, v in fields.items()):
                        return item
                left = deadline - time.monotonic()
                if left <= 0:
                    kinds = [e["event"] for e in self.events]
                    raise AssertionError(f"no {event} {fields} within {timeout} s; saw {kinds}")
                self._changed.wait(left)

    def kinds(self, *wanted: str) -> list[dict[str, Any]]:
        with self._changed:
            return [e for e in self.events if not wanted or e["event"] in wanted]

    def mark(self) -> int:
        """The index the next event will have (for ``wait_for(start=...)``)."""
        with self._changed:
            return len(self.events)

    # -- the simulated world ---------------------------------------------------------------

    def tap(self, card: str) -> None:
        """Put the library card ``card`` on the reader (taking any other card away)."""
        from drivers import iso14443a
        from hardware.sim.mfrc522 import VirtualCard
        from kiosk.daemon.simctl import card_uid

        chip = self.sims.card_chip
        block = self.settings.hardware.card_reader.card_block
        card_obj = VirtualCard(card_uid(card),
                               blocks={block: iso14443a.encode_card_number(card)})

        def place() -> None:
            for old in chip.field:
                chip.remove(old.uid)
            chip.place(card_obj)

        self.workers("card_reader").submit(place).result(5)

    def lift_card(self) -> None:
        chip = self.sims.card_chip

        def clear() -> None:
            for old in chip.field:
                chip.remove(old.uid)

        self.workers("card_reader").submit(clear).result(5)

    def place(self, *barcodes: str, afi: int = 0x07) -> list[Any]:
        return [self.sims.tag_pad.place(book_tag(b, afi=afi)) for b in barcodes]

    def afi(self, barcode: str) -> int:
        from hardware.sim.books import uid_for

        return self.sims.tag_pad.tag(uid_for(barcode)).afi

    def workers(self, name: str) -> Any:
        assert self.daemon is not None
        return self.daemon.workers[name]

    def stop(self, timeout: float = 30.0) -> None:
        if self.daemon is not None and self.loop is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.daemon.request_stop)
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the daemon did not stop"


@contextlib.contextmanager
def running(settings: Settings, **kw: Any) -> Iterator[DaemonThread]:
    daemon = DaemonThread(settings, **kw).start()
    try:
        yield daemon
    finally:
        daemon.stop()


# -- the daemon as a child process -------------------------------------------------------------


def kiosk_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "KIOSK_LANG": "en", **extra}


def spawn(config_path: Path, *, env: dict[str, str] | None = None,
          stdout: Any = subprocess.DEVNULL) -> subprocess.Popen:
    """``kiosk run`` as a child process."""
    return subprocess.Popen(
        [sys.executable, "-m", "kiosk", "--config", str(config_path), "run",
         "--log-level", "WARNING"],
        stdout=stdout, stderr=subprocess.PIPE, env=env or kiosk_env(), cwd=str(ROOT))


class NotifySocket:
    """A datagram socket standing in for systemd's ``$NOTIFY_SOCKET``."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.messages: list[dict[str, str]] = []

    def receive(self, timeout: float) -> dict[str, str] | None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        self.messages.append(fields)
        return fields

    def wait_for(self, key: str, timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.receive(left)
            if message is not None and key in message:
                return message
        raise AssertionError(f"no {key} within {timeout} s; got {self.messages}")

    def close(self) -> None:
        self.sock.close()


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0) -> bool:
    """Whether ``predicate()`` came true within ``timeout`` seconds (polled every 50 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def free_port() -> int:
    """A TCP port on loopback that nothing listens on (just now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)



def kiosk(capsys: Any, folder: Path, *args: str) -> tuple[int, str, str]:
    """``kiosk --lang en --config FOLDER/kiosk.toml ARGS`` in this process: (exit code,
    stdout, stderr)."""
    from kiosk.cli import main

    code = main(["--lang", "en", "--config", str(folder / "kiosk.toml"), *args])
    out = capsys.readouterr()
    return code, out.out, out.err
