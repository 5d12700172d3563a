"""What the daemon tells the world: a stream of published events, for the control socket's
``watch`` command (and, later, the touchscreen), and for the log.

Each published event is a JSON-ready dict with ``event`` (its kind: ``session_started``,
``lent``, ``not_lent``, ``returned``, ``hand_to_staff``, ``receipt_failed``, ``device``,
``state``...), ``seq`` (1, 2, ... for this run of the daemon), ``at`` (wall time, ISO 8601)
and ``mono`` (monotonic seconds), plus the event's own fields. Texts for people are given
as ``message_key`` and ``params`` of the catalogue, never as rendered text, so each watcher
shows them in its own language.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("kiosk.daemon.events")

# A watcher that stops reading loses events rather than holding the daemon's memory.
WATCHER_BACKLOG = 1000


class EventBus:
    """Publish from the event loop's thread; any number of watchers."""

    def __init__(self) -> None:
        self._watchers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._seq = itertools.count(1)
        self.published = 0

    def publish(self, event: str, **fields: Any) -> dict[str, Any]:
        item = {"event": event, "seq": next(self._seq),
                "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "mono": time.monotonic(), **fields}
        self.published += 1
        log.info("%s", json.dumps(item, ensure_ascii=False, default=str))
        for watcher in list(self._watchers):
            # A watcher that stopped reading misses events; nobody else does.
            with contextlib.suppress(asyncio.QueueFull):
                watcher.put_nowait(item)
        return item

    async def watch(self) -> AsyncIterator[dict[str, Any]]:
        """Every event published from now on, until :meth:`close`."""
        watcher: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(WATCHER_BACKLOG)
        self._watchers.add(watcher)
        try:
            while (item := await watcher.get()) is not None:
                yield item
        finally:
            self._watchers.discard(watcher)

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        """A queue that receives every event from now on (None once the bus closes); for
        code in the daemon's own process. :meth:`unsubscribe` it when done."""
        watcher: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(WATCHER_BACKLOG)
        self._watchers.add(watcher)
        return watcher

    def unsubscribe(self, watcher: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._watchers.discard(watcher)

    def close(self) -> None:
        """End every watch (each gets None)."""
        for watcher in list(self._watchers):
            try:
                watcher.put_nowait(None)
            except asyncio.QueueFull:
                watcher.get_nowait()
                watcher.put_nowait(None)
