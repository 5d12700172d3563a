"""The sync worker: :meth:`sync.syncer.Syncer.run_forever` on a thread of its own, with its
own connection to the cache (SQLite serialises it with the circulation writer; WAL lets
each read while the other writes).

For the watchdog the sync worker is hung only when one HTTP request has been under way for
longer than its timeouts allow: between syncs, and while the hub is unreachable for days,
it waits on purpose and is healthy.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from kiosk.commands.sync_cmd import options
from kiosk.config.settings import HubSettings
from sync.client import HubClient, read_token
from sync.clock import SystemClock
from sync.db import Cache
from sync.syncer import Syncer, SyncReport

log = logging.getLogger(__name__)


class WatchedHubClient(HubClient):
    """A :class:`HubClient` that records when its request in progress began."""

    request_started: float | None = None

    def _send(self, *args: Any, **kwargs: Any) -> Any:
        self.request_started = time.monotonic()
        try:
            return super()._send(*args, **kwargs)
        finally:
            self.request_started = None


class SyncWorker:
    """Runs the syncer until :meth:`stop`. ``on_report`` is called on the worker's thread
    after every sync."""

    def __init__(self, hub: HubSettings, device_id: str, cache: Cache, *,
                 on_report: Callable[[SyncReport], None],
                 status: Callable[[], dict[str, Any]] | None = None,
                 stall_after: float = 30.0, card_range_size: int = 0,
                 timezone: ZoneInfo | None = None) -> None:
        if hub.token_file is None:
            raise ValueError("[hub] url is set but token_file is not")
        self.client = WatchedHubClient(
            hub.url, device_id, read_token(hub.token_file), clock=SystemClock(),
            ca_file=hub.ca_file, client_cert=hub.client_cert, client_key=hub.client_key,
            timeout=(hub.connect_timeout_ms / 1000, hub.read_timeout_ms / 1000))
        self.cache = cache
        chosen = options(hub)
        self.syncer = Syncer(cache, self.client, status=status, options=dataclasses.replace(
            chosen, card_range_size=card_range_size, timezone=timezone or chosen.timezone))
        # One request may take its connect timeout plus a read timeout per chunk; a bound
        # well above that still catches a thread stuck for good.
        self.stall_after = (hub.connect_timeout_ms + 2 * hub.read_timeout_ms) / 1000 + stall_after
        self._on_report = on_report
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker sync", daemon=True)

    @classmethod
    def open(cls, hub: HubSettings, device_id: str, db_path: Path, **kwargs: Any) -> SyncWorker:
        """A worker with a connection of its own to the cache at ``db_path``."""
        cache = Cache.open(db_path)
        try:
            return cls(hub, device_id, cache, **kwargs)
        except BaseException:
            cache.close()
            raise

    @property
    def online(self) -> bool:
        return self.syncer.online

    def start(self) -> None:
        self._thread.start()

    def request_sync(self) -> None:
        self.syncer.request_sync()

    def request_heartbeat(self) -> None:
        """Send a heartbeat now (state or alerts changed); safe from any thread."""
        self.syncer.request_heartbeat()

    def healthy(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        started = self.client.request_started
        return self._thread.is_alive() and (started is None or now - started < self.stall_after)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop at the next pause (a request in progress finishes or times out first)."""
        self._stop.set()
        self.syncer.request_sync()  # wake it from a pause
        if self._thread.is_alive():
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self.client.close()
            self.cache.close()

    def _run(self) -> None:
        try:
            self.syncer.run_forever(self._stop, on_report=self._on_report)
        except Exception:  # the cache failed under the syncer; the kiosk goes on lending
            log.exception("sync worker stopped")
