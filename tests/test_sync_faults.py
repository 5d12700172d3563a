"""Sync through a broken network: under each fault of :mod:`tests.faultproxy`, 1,000 events
reach the hub exactly once (read from the hub's own database), the outbox empties, and the
cache keeps its invariants and ends where the hub is. Short backoff caps keep each case to
a second or two."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from sync import db, feeds, maintenance, outbox
from sync.hub.testing import HubServer
from sync.syncer import Syncer, SyncOptions, SyncReport
from tests.conftest import NOON_ISH, ManualClock
from tests.faultproxy import Fault, FaultProxy
from tests.test_sync_client import add_events, client_for, hub_txns

EVENTS = 1000
OPTIONS = SyncOptions(retry_initial_s=0.02, retry_max_s=0.1, retry_after_max_s=2.0,
                      attempts=10, batch_size=100, page_size=1000, snapshot_batch_rows=500)

# (case id, fault, times, path, options)
CASES = [
    ("reset-request", Fault.RESET_REQUEST, 3, "/events", {}),
    ("reset-response", Fault.RESET_RESPONSE, 3, "/events", {}),
    ("timeout-lost-ack", Fault.TIMEOUT, 2, "/events", {"forward": True}),
    ("timeout-silent", Fault.TIMEOUT, 1, "/events", {}),
    ("trickle", Fault.TRICKLE, 2, "/events", {"chunk": 16, "delay": 0.005}),
    ("http-500", Fault.HTTP_500, 3, "/events", {}),
    ("http-500-after-hub", Fault.HTTP_500, 2, "/events", {"forward": True}),
    ("http-503-retry-after", Fault.HTTP_503, 1, "/events", {"retry_after": 1}),
    ("http-429", Fault.HTTP_429, 3, "/events", {"retry_after": 0}),
    ("http-502-html", Fault.HTTP_500, 2, "", {"shape": False}),
    ("truncated", Fault.TRUNCATED, 3, "/events", {}),
    ("not-json", Fault.NOT_JSON, 2, "/events", {}),
    ("wrong-content-type", Fault.WRONG_TYPE, 2, "/events", {}),
    ("partial-ack", Fault.PARTIAL_ACK, 4, "/events", {}),
    ("changes-reset", Fault.RESET_RESPONSE, 2, "/changes", {}),
    ("changes-truncated", Fault.TRUNCATED, 2, "/changes", {}),
    ("changes-not-json", Fault.NOT_JSON, 1, "/changes", {}),
]
DEVICES = {f"dev-{n:02d}": f"token-{n:02d}-abcdefgh" for n in range(len(CASES) + 6)}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    folder = tmp_path_factory.mktemp("hub")
    with HubServer(folder / "hub.db", sample="small", devices=DEVICES) as server:
        yield server


class Device:
    """One device with its own cache, behind its own fault proxy."""

    def __init__(self, hub: HubServer, path: Path, n: int, options: SyncOptions = OPTIONS):
        self.device_id = f"dev-{n:02d}"
        self.proxy = FaultProxy(hub.url)
        self.clock = ManualClock(NOON_ISH, boot_id=f"boot-{n}")
        self.cache = db.create(path)
        self.client = client_for(self.proxy.url, self.clock, device=self.device_id,
                                 token=DEVICES[self.device_id], timeout=(0.5, 0.5))
        self.syncer = Syncer(self.cache, self.client, options=options)

    def sync_until_done(self, limit: int = 30) -> list[SyncReport]:
        """run_once until the outbox is empty and the feed pulled, as the daemon would."""
        reports = []
        for _ in range(limit):
            reports.append(self.syncer.run_once())
            if reports[-1].ok and reports[-1].queue_depth == 0:
                return reports
        raise AssertionError(f"no sync in {limit} rounds: {reports[-1].error}")

    def close(self) -> None:
        self.client.close()
        self.cache.close()
        self.proxy.close()


def assert_synced(hub: HubServer, device: Device, txns: list[str]) -> None:
    stored = hub_txns(hub.db_path, device.device_id)
    assert stored == txns, f"hub holds {len(stored)} of {len(txns)} (or in another order)"
    with device.cache.snapshot() as conn:
        assert outbox.depth(conn) == 0
        assert conn.execute("SELECT count(*) FROM sync_verdicts").fetchone()[0] == len(txns)
        cursor = feeds.cursor(conn)
    assert maintenance.check(device.cache).ok
    # Pulled to the end: nothing left after the stored cursor for this device.
    with client_for(hub.url, device=device.device_id, token=DEVICES[device.device_id]) as c:
        page = c.changes(cursor, 1000)
    assert page.changes == [] or all(ch["feed"] not in ("item", "verdict")
                                     for ch in page.changes)


@pytest.mark.parametrize(("case", "fault", "times", "path", "options"), CASES,
                         ids=[c[0] for c in CASES])
def test_every_event_exactly_once_under_fault(hub: HubServer, tmp_path: Path, case: str,
                                              fault: Fault, times: int, path: str,
                                              options: dict) -> None:
    n = [c[0] for c in CASES].index(case)
    device = Device(hub, tmp_path / "kiosk.db", n)
    try:
        assert device.syncer.run_once().ok  # bootstrap through the proxy, no fault yet
        txns = add_events(device.cache, EVENTS, device=device.device_id, clock=device.clock,
                          prefix=f"F{n:02d}-")
        device.proxy.inject(fault, times=times, path=path, **options)
        started = time.monotonic()
        reports = device.sync_until_done()
        elapsed = time.monotonic() - started
        assert device.proxy.applied[fault] == times, "the fault never happened"
        if fault is not Fault.TRICKLE:  # slow, not broken: nothing to retry
            effects = [len(reports) - 1, *(r.retries + r.duplicates for r in reports)]
            assert sum(effects) > 0, "the fault changed nothing"
        if fault is Fault.HTTP_503:
            assert elapsed >= 1.0, "Retry-After was not honoured"
        assert_synced(hub, device, txns)
        assert elapsed < 30
    finally:
        device.close()


def test_connection_refused_until_the_hub_comes_back(hub: HubServer, tmp_path: Path) -> None:
    n = len(CASES)
    device = Device(hub, tmp_path / "kiosk.db", n)
    try:
        assert device.syncer.run_once().ok
        txns = add_events(device.cache, EVENTS, device=device.device_id, clock=device.clock)
        device.proxy.refuse(0.6)
        reports = device.sync_until_done()
        assert device.proxy.applied[Fault.REFUSE] == 1
        assert reports[0].retries > 0
        assert_synced(hub, device, txns)
    finally:
        device.close()


@pytest.mark.parametrize(("fault", "options"), [
    (Fault.RESET_RESPONSE, {"after_bytes": 30_000}),
    (Fault.TRUNCATED, {"after_bytes": 30_000}),
    (Fault.DROP_END, {}),
], ids=["reset", "truncated", "no-end-line"])
def test_broken_snapshot_is_discarded_and_taken_again(hub: HubServer, tmp_path: Path,
                                                      fault: Fault, options: dict) -> None:
    n = len(CASES) + 1 + [Fault.RESET_RESPONSE, Fault.TRUNCATED, Fault.DROP_END].index(fault)
    device = Device(hub, tmp_path / "kiosk.db", n,
                    replace(OPTIONS, snapshot_batch_rows=200))
    try:
        txns = add_events(device.cache, EVENTS, device=device.device_id, clock=device.clock,
                          prefix=f"S{n:02d}-")
        device.proxy.inject(fault, times=2, path="/snapshot", **options)
        reports = device.sync_until_done()
        assert device.proxy.applied[fault] == 2
        assert any(r.bootstrapped for r in reports) and sum(r.retries for r in reports) >= 2
        assert_synced(hub, device, txns)
        with sqlite3.connect(hub.db_path) as h:
            at_hub = h.execute("SELECT count(*) FROM patrons").fetchone()[0]
        with device.cache.snapshot() as conn:
            assert conn.execute("SELECT count(*) FROM patrons").fetchone()[0] == at_hub
    finally:
        device.close()


def test_run_forever_syncs_when_the_link_comes_back(hub: HubServer, tmp_path: Path) -> None:
    import threading

    n = len(CASES) + 4
    device = Device(hub, tmp_path / "kiosk.db", n,
                    replace(OPTIONS, attempts=2, probe_interval_s=0.05, sync_interval_s=30))
    stop = threading.Event()
    reports: list[SyncReport] = []
    worker = threading.Thread(target=device.syncer.run_forever, args=(stop, reports.append))
    try:
        device.proxy.refuse(1.0)
        worker.start()
        time.sleep(0.3)
        assert reports and not reports[0].ok and not device.syncer.online
        txns = add_events(device.cache, 50, device=device.device_id, clock=device.clock,
                          prefix=f"R{n}-")
        deadline = time.monotonic() + 10
        while not (reports[-1].ok and reports[-1].queue_depth == 0):
            assert time.monotonic() < deadline, "no sync after the link came back"
            time.sleep(0.05)
        assert device.syncer.online and hub_txns(hub.db_path, device.device_id) == txns
        # Idle now (next sync in 30 s): a request wakes it at once.
        more = add_events(device.cache, 5, device=device.device_id, clock=device.clock,
                          prefix=f"W{n}-")
        device.syncer.request_sync()
        deadline = time.monotonic() + 5
        while hub_txns(hub.db_path, device.device_id) != txns + more:
            assert time.monotonic() < deadline, "request_sync did not wake the worker"
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(timeout=5)
        assert not worker.is_alive()
        device.close()
