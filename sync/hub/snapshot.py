"""The snapshot: everything a new device needs, streamed as NDJSON.

The stream is read in ONE read transaction on a connection of its own, so it is one
consistent state of the hub even while devices keep pushing: the header's cursor is the
change-log position of that same state, and pulling changes from it afterwards gives
exactly what happened after the snapshot. Rows are read in batches and sent in chunks of
about 64 KiB; nothing holds the whole body (a county is millions of rows).

Lines: ``{"type": "header", "cursor", "counts", "device_id", "hub_time_ns"}``, then one
``{"type": FEED, "key", "version", "data"}`` per row (feeds in :data:`rows.SNAPSHOT_ORDER`;
only open loans, active holds, this device's card ranges and its verdicts that are not
``ok``), then ``{"type": "end", "rows": N}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sync.db import Cache
from sync.hub import changes, rows

CHUNK_BYTES = 64 * 1024


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


class Snapshot:
    """An open snapshot of the hub for one device; iterate it once for the body's chunks.

    The read transaction starts in the constructor (so the header's cursor and counts are
    fixed before a byte is sent) and ends, with the connection closed, when iteration ends,
    fails, or :meth:`close` is called. ``close()`` is idempotent.
    """

    def __init__(self, cache: Cache, device_id: str, hub_time_ns: int, batch_rows: int) -> None:
        self._cache = cache
        self.device_id = device_id
        self._batch = batch_rows
        self._closed = False
        try:
            cache.conn.execute("BEGIN DEFERRED")
            self.cursor = changes.position(cache.conn)
            self.counts = {name: rows.count(cache.conn, rows.FEEDS[name], device_id)
                           for name in rows.SNAPSHOT_ORDER}
        except BaseException:
            self.close()
            raise
        self.header = {"type": "header", "cursor": self.cursor, "counts": self.counts,
                       "device_id": device_id, "hub_time_ns": hub_time_ns}

    def __iter__(self) -> Iterator[bytes]:
        try:
            pending = [_line(self.header)]
            size = len(pending[0])
            sent = 0
            for name in rows.SNAPSHOT_ORDER:
                feed = rows.FEEDS[name]
                for batch in rows.scan(self._cache.conn, feed, self.device_id, self._batch):
                    for key, version, data in batch:
                        line = _line({"type": name, "key": key, "version": version,
                                      "data": data})
                        pending.append(line)
                        size += len(line)
                        sent += 1
                    if size >= CHUNK_BYTES:
                        yield b"".join(pending)
                        pending, size = [], 0
            pending.append(_line({"type": "end", "rows": sent}))
            yield b"".join(pending)
        finally:
            self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._cache.conn.in_transaction:
                self._cache.conn.execute("ROLLBACK")
        finally:
            self._cache.close()

    def __repr__(self) -> str:
        return f"<Snapshot {self.device_id} at {self.cursor}>"
