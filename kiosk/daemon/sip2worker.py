"""The SIP2 worker: replays the outbox to the county's library system (``[sip2]``), on a
thread of its own with its own connection to the cache, beside the hub's sync worker or
instead of it.

- Alone (no ``[hub] url``): the library system is the kiosk's only sync; an event is
  acknowledged in the outbox once the library system answered it (or it has no SIP2
  equivalent), so ``kiosk queue`` shows what it still owes.
- Beside the hub: the hub gets every event as before and acknowledges them; the library
  system gets the circulation (checkouts, pickups, checkins, renewals) from the same
  outbox, tracked in ``sip2_outcomes`` (see :mod:`sync.sip2.replay`).

While the link is up it looks for new events every :data:`POLL_S` and replays at once;
while it is down it tries again every ``retry_s``. Like the hub's worker it is stalled
for the watchdog only inside one SIP2 exchange that outlasts its timeouts: waiting for a
link that is down, for days, is healthy.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from kiosk.config.settings import Settings
from kiosk.config.sip2 import Sip2Settings
from sync.db import Cache
from sync.sip2.client import Sip2Client
from sync.sip2.profiles import profile
from sync.sip2.replay import Replayer, ReplayReport, pending

log = logging.getLogger(__name__)

POLL_S = 1.0  # how often an online worker looks for new events


class WatchedSip2Client(Sip2Client):
    """A :class:`Sip2Client` that records when its exchange in progress began."""

    request_started: float | None = None

    def _exchange(self, *args: Any, **kwargs: Any) -> Any:
        self.request_started = time.monotonic()
        try:
            return super()._exchange(*args, **kwargs)
        finally:
            self.request_started = None

    def connect(self) -> None:
        started = self.request_started
        self.request_started = started or time.monotonic()
        try:
            super().connect()
        finally:
            self.request_started = started


def make_client(settings: Sip2Settings, cls: type[Sip2Client] = Sip2Client) -> Sip2Client:
    """A client for ``settings``; reads the password file (``OSError`` if unreadable)."""
    tls: ssl.SSLContext | bool | None = None
    if settings.tls:
        tls = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None)
    return cls(settings.host, settings.port, institution_id=settings.institution_id,
               login_user_id=settings.login_user or None,
               login_password=settings.password() if settings.login_user else "",
               location_code=settings.location_code or None, charset=settings.charset,
               tls=tls, timeout=settings.timeout_ms / 1000,
               connect_timeout=settings.connect_timeout_ms / 1000,
               terminator=settings.terminator_bytes)


class Sip2Worker:
    """Replays until :meth:`stop`. ``on_report`` is called on the worker's thread after
    every pass; ``acknowledge``: SIP2 is the only sync (see the module's text)."""

    def __init__(self, settings: Sip2Settings, cache: Cache, *, timezone: ZoneInfo,
                 acknowledge: bool,
                 on_report: Callable[[ReplayReport], None] | None = None,
                 stall_after: float = 30.0) -> None:
        self.settings = settings
        self.cache = cache
        self.client = make_client(settings, WatchedSip2Client)
        self.replayer = Replayer(cache, self.client, profile(settings.profile),
                                 timezone=timezone, acknowledge=acknowledge)
        self.stall_after = (settings.connect_timeout_ms + 2 * settings.timeout_ms) / 1000 \
            + stall_after
        self.last_report: ReplayReport | None = None
        self.last_pass_at: float | None = None
        self._on_report = on_report
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker sip2", daemon=True)

    @classmethod
    def open(cls, settings: Sip2Settings, db_path: Path, **kwargs: Any) -> Sip2Worker:
        """A worker with a connection of its own to the cache at ``db_path``."""
        cache = Cache.open(db_path)
        try:
            return cls(settings, cache, **kwargs)
        except BaseException:
            cache.close()
            raise

    @property
    def online(self) -> bool:
        """Whether the last pass reached the library system."""
        return self.last_report is not None and self.last_report.online

    def status(self) -> dict[str, Any]:
        """For ``kiosk status``: where, online, and the last pass's figures."""
        report = self.last_report
        return {"configured": True, "where": self.settings.where,
                "profile": self.settings.profile, "online": self.online,
                "last": None if report is None else report.as_dict()}

    def start(self) -> None:
        self._thread.start()

    def request_sync(self) -> None:
        """Replay now (safe from any thread)."""
        self._wake.set()

    def healthy(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        started = self.client.request_started  # type: ignore[attr-defined]
        return self._thread.is_alive() and (started is None or now - started < self.stall_after)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop at the next pause (an exchange in progress finishes or times out first)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self.client.close()
            self.cache.close()

    def _due(self) -> bool:
        """Whether a pass is due: while online, when events wait or every ``retry_s``."""
        if not self.online or self.last_pass_at is None:
            return True
        if time.monotonic() - self.last_pass_at >= self.settings.retry_s:
            return True
        with self.cache.snapshot() as conn:
            return any(state != "waiting" for _, state in pending(conn))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._wake.is_set() or self._due():
                    self._wake.clear()
                    report = self.replayer.run_once()
                    self.last_report, self.last_pass_at = report, time.monotonic()
                    if self._on_report is not None:
                        self._on_report(report)
            except Exception:  # the cache failed under it; the kiosk goes on lending
                log.exception("SIP2 worker: a pass failed")
                self.last_report = ReplayReport(error="internal error, see the log")
                self.last_pass_at = time.monotonic()
            wait = POLL_S if self.online else float(self.settings.retry_s)
            self._wake.wait(wait)


def start_sip2(settings: Settings, db_path: Path) -> Sip2Worker | None:
    """Start the SIP2 worker of ``settings`` (``[sip2]`` enabled); None, logged, when it
    cannot be (an unreadable password file): the kiosk goes on lending without it."""
    try:
        worker = Sip2Worker.open(settings.sip2, db_path, timezone=settings.identity().timezone,
                                 acknowledge=not settings.hub.enabled,
                                 stall_after=float(settings.daemon.worker_stall_s))
    except OSError as exc:
        log.error("SIP2 link not started: %s", exc)
        return None
    worker.start()
    return worker
