"""The hub client and the syncer: backoff, cursors, applying pages and the snapshot, and the
whole exchange against the real reference hub on loopback (no mocked ``requests``)."""

from __future__ import annotations

import gzip
import json
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk import exitcodes
from kiosk.cli import main
from sync import db, feeds, outbox
from sync.client import (
    ClockAnchor,
    HubAuthError,
    HubClient,
    HubNotConfigured,
    HubProtocolError,
    HubUnreachable,
    check_url,
    encode_body,
    read_token,
    retry_after_seconds,
)
from sync.clock import Reading
from sync.hub.testing import HubServer
from sync.syncer import Backoff, Syncer, SyncOptions
from tests.conftest import NOON_ISH, ManualClock

DEVICE = "van-01"
TOKEN = "van-01-token-0123456789"
FAST = SyncOptions(retry_initial_s=0.01, retry_max_s=0.05, attempts=8, batch_size=100,
                   page_size=200, snapshot_batch_rows=500, probe_interval_s=0.05,
                   sync_interval_s=0.05)


# -- helpers shared by the sync test files ---------------------------------------------------


def client_for(url: str, clock: object | None = None, device: str = DEVICE,
               token: str = TOKEN, timeout: tuple[float, float] = (2.0, 5.0)) -> HubClient:
    return HubClient(url, device, token, clock=clock or ManualClock(NOON_ISH),  # type: ignore
                     timeout=timeout)


def add_events(cache: db.Cache, n: int, device: str = DEVICE, clock: ManualClock | None = None,
               prefix: str = "X") -> list[str]:
    """``n`` returns of books the hub does not know (each one an exception there), in one
    transaction; returns their txn ids."""
    clock = clock or ManualClock(NOON_ISH)
    txns = []
    with cache.transaction() as conn:
        for i in range(n):
            clock.advance(1)
            reading = Reading(clock.wall_ns(), clock.monotonic_ns(), clock.boot_id(),
                              clock.synchronised())
            e = outbox.append(conn, device_id=device, kind="checkin", reading=reading,
                              payload={"item": f"{prefix}{i:06d}", "card": None,
                                       "route": "shelf", "flags": [], "station": "kiosk",
                                       "branch": "CN-431121-0002"})
            txns.append(e.txn_id)
    return txns


def hub_txns(hub_db: Path, device: str = DEVICE) -> list[str]:
    """Every (device, txn) the hub stored for ``device``, one entry per stored row."""
    with sqlite3.connect(hub_db) as conn:
        return [r[0] for r in conn.execute(
            "SELECT txn_id FROM hub_events WHERE device_id = ? ORDER BY seq", (device,))]


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubServer]:
    with HubServer(tmp_path / "hub.db", sample="small", devices={DEVICE: TOKEN}) as server:
        yield server


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[db.Cache]:
    c = db.create(tmp_path / "kiosk.db")
    yield c
    c.close()


# -- pure parts ------------------------------------------------------------------------------


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    b = Backoff(0.5, 8.0, rng=random.Random(1))
    ceilings = [0.5, 1, 2, 4, 8, 8, 8]
    for ceiling in ceilings:
        waits = [Backoff(0.5, 8.0, rng=random.Random(s)) for s in range(200)]
        for w in waits:
            w.failures = b.failures
        got = [w.next() for w in waits]
        assert all(0 <= g <= ceiling for g in got)
        assert max(got) > ceiling * 0.8 and min(got) < ceiling * 0.2  # jitter, full range
        b.next()
    b.reset()
    assert b.failures == 0


def test_backoff_honours_retry_after_within_its_cap() -> None:
    b = Backoff(0.01, 0.02, retry_after_max=30.0, rng=random.Random(2))
    assert b.next(retry_after=5) == 5
    assert b.next(retry_after=3600) == 30.0
    assert b.next() <= 0.02


def test_retry_after_forms() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_url_must_be_https_or_loopback() -> None:
    assert check_url("https://hub.example/api/v1/") == "https://hub.example/api/v1"
    assert check_url("http://127.0.0.1:8470/api/v1") == "http://127.0.0.1:8470/api/v1"
    for bad in ("http://hub.example/api/v1", "ftp://x", "hub.example"):
        with pytest.raises(ValueError):
            check_url(bad)


def test_token_file(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("  abc\n")
    assert read_token(tmp_path / "t") == "abc"
    (tmp_path / "empty").write_text("\n")
    for path in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(HubNotConfigured) as caught:
            read_token(path)
        assert caught.value.code == "no_token" and not caught.value.retryable


def test_bodies_are_deterministic_gzip() -> None:
    body = {"b": [1, 2], "a": "读者"}
    assert encode_body(body) == encode_body(dict(reversed(body.items())))
    assert json.loads(gzip.decompress(encode_body(body))) == body


# -- cursors and pages -------------------------------------------------------------------------


def _branch(version: int, name: str = "城东书房") -> dict:
    return {"feed": "branch", "op": "upsert", "key": "CN-1", "version": version,
            "data": {"isil": "CN-1", "name": name, "kind": "branch"}}


def test_cursor_is_stored_and_forgotten(cache: db.Cache) -> None:
    with cache.transaction() as conn:
        assert feeds.cursor(conn) is None
        feeds.store_cursor(conn, "c1")
        feeds.store_cursor(conn, "c2")
        assert feeds.cursor(conn) == "c2"
        feeds.forget_cursor(conn)
        assert feeds.cursor(conn) is None


def test_changes_are_version_guarded_and_idempotent(cache: db.Cache) -> None:
    with cache.transaction() as conn:
        r = feeds.apply_page(conn, DEVICE, [_branch(5, "新名"), _branch(3, "旧名")])
        assert (r.applied, r.skipped) == (1, 1)
        assert feeds.apply_page(conn, DEVICE, [_branch(5, "新名")]).applied == 0
        assert conn.execute("SELECT name, version FROM branches").fetchall() == [("新名", 5)]


def _patron(card: str, version: int) -> dict:
    return {"feed": "patron", "op": "upsert", "key": card, "version": version,
            "data": {"card_number": card, "name": "读者", "patron_type": "adult",
                     "home_branch": "CN-1", "loan_count": 9}}


def _item(barcode: str, version: int, status: str = "available") -> dict:
    return {"feed": "item", "op": "upsert", "key": barcode, "version": version,
            "data": {"barcode": barcode, "title": "书", "status": status}}


def _loan(key: str, version: int, returned: str | None = None) -> dict:
    return {"feed": "loan", "op": "upsert", "key": key, "version": version,
            "data": {"item": "B1", "card": "P1", "branch": "CN-1", "due_date": "2026-12-25",
                     "loaned_at": "2026-11-25T10:00:00+08:00", "returned_at": returned}}


def test_loans_keep_loan_count_and_item_status(cache: db.Cache) -> None:
    with cache.transaction() as conn:
        # A loan before its item and patron arrive is held back, then applied.
        r = feeds.apply_page(conn, DEVICE, [_loan("L1", 4)])
        assert r.held_back == 1
        r = feeds.apply_page(conn, DEVICE, [_branch(1), _patron("P1", 2), _item("B1", 3)])
        assert conn.execute("SELECT loan_count FROM patrons").fetchone() == (1,)
        assert conn.execute("SELECT status FROM items").fetchone() == ("on_loan",)
        # The hub says "available" before the loan's close arrives: held, not applied.
        assert feeds.apply_page(conn, DEVICE, [_item("B1", 6)]).held_back == 1
        assert conn.execute("SELECT status FROM items").fetchone() == ("on_loan",)
        feeds.apply_page(conn, DEVICE, [_loan("L1", 7, returned="2026-11-26T09:00:00+08:00")])
        assert conn.execute("SELECT loan_count FROM patrons").fetchone() == (0,)
        assert conn.execute("SELECT status, version FROM items").fetchone() == ("available", 6)
        assert conn.execute("SELECT count(*) FROM sync_deferred").fetchone() == (0,)


def test_local_pending_wins_until_acknowledged(cache: db.Cache) -> None:
    with cache.transaction() as conn:
        feeds.apply_page(conn, DEVICE, [_branch(1), _patron("P1", 2), _item("B1", 3)])
    add_events(cache, 1, prefix="B")  # a return of item "B000000"
    with cache.transaction() as conn:
        conn.execute("UPDATE items SET barcode = 'B000000' WHERE barcode = 'B1'")
        r = feeds.apply_page(conn, DEVICE, [_item("B000000", 9, status="lost")])
        assert r.held_back == 1
        assert conn.execute("SELECT status FROM items").fetchone() == ("available",)
        outbox.acknowledge(conn, DEVICE, 1, "now")
        assert feeds.release_deferred(conn, DEVICE) == 1
        assert conn.execute("SELECT status FROM items").fetchone() == ("lost",)


def _lines(*rows: dict, end: bool = True) -> Iterator[dict]:
    yield {"type": "header", "cursor": "snap-1", "counts": {}}
    yield from rows
    if end:
        yield {"type": "end", "rows": len(rows)}


def test_snapshot_without_end_is_not_taken(cache: db.Cache) -> None:
    row = {"type": "branch", "key": "CN-1", "version": 0, "data": {"name": "x", "kind": "van"}}
    loader = feeds.SnapshotLoader(cache, DEVICE, batch_rows=1)
    with pytest.raises(HubProtocolError) as caught:
        loader.load(_lines(row, end=False))
    assert caught.value.retryable
    with cache.snapshot() as conn:
        assert feeds.cursor(conn) is None
    with pytest.raises(HubProtocolError):
        loader.load(iter([{"type": "header", "cursor": "c"}, row, {"type": "end", "rows": 5}]))
    assert loader.load(_lines(row)) == 1
    with cache.snapshot() as conn:
        assert feeds.cursor(conn) == "snap-1"


# -- against the reference hub -----------------------------------------------------------------


def test_new_device_bootstraps_then_pushes_and_sees_verdicts(hub: HubServer,
                                                            cache: db.Cache) -> None:
    clock = ManualClock(NOON_ISH)
    with client_for(hub.url, clock) as client:
        syncer = Syncer(cache, client, options=FAST)
        first = syncer.run_once()
        assert first.ok and first.bootstrapped and first.snapshot_rows > 2000
        txns = add_events(cache, 250, clock=clock)
        report = syncer.run_once()
        assert report.ok, report.error
        assert (report.sent, report.acknowledged, report.batches) == (250, 250, 3)
        assert report.pulled >= 250 and len(report.flagged) == 250
        assert {f["code"] for f in report.flagged} == {"unknown_item"}
        assert client.last_anchor is not None and client.last_anchor.boot_id == "boot-a"
    assert hub_txns(hub.db_path) == txns
    with cache.snapshot() as conn:
        assert outbox.depth(conn) == 0
        assert conn.execute("SELECT count(*) FROM sync_verdicts WHERE outcome = 'exception'"
                            ).fetchone() == (250,)
        assert conn.execute("SELECT count(*) FROM items WHERE barcode LIKE 'X%'"
                            ).fetchone() == (250,)
        (boot, _mono, hub_ns, rtt) = conn.execute("SELECT boot_id, mono_ns, hub_time_ns,"
                                                  " rtt_ns FROM sync_anchors").fetchone()
        assert boot == "boot-a" and hub_ns > 0 and rtt >= 0


def test_resent_batch_reuses_its_key_and_body(hub: HubServer, cache: db.Cache) -> None:
    add_events(cache, 3)
    with client_for(hub.url) as client, cache.snapshot() as conn:
        events = [e for e in outbox.unacknowledged(conn)]
        body = encode_body({"device_id": DEVICE, "anchors": [], "events": [
            {k: v for k, v in e.as_dict().items() if k not in ("device_id", "acked_at")}
            for e in events]})
        a = client.push(body, f"{DEVICE}:1-3")
        b = client.push(body, f"{DEVICE}:1-3")
    assert (a.stored, a.acked_through_seq) == (3, 3)
    assert b == a  # the first answer again, not "3 duplicates"


def test_wrong_token_is_an_auth_error(hub: HubServer, cache: db.Cache) -> None:
    add_events(cache, 1)
    with client_for(hub.url, token="not-the-token") as client:
        report = Syncer(cache, client, options=FAST).run_once()
    assert isinstance(report.error, HubAuthError) and report.retries == 0
    with cache.snapshot() as conn:
        assert outbox.depth(conn) == 1


def test_nothing_listening_is_unreachable(tmp_path: Path, cache: db.Cache) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with client_for(f"http://127.0.0.1:{port}/api/v1") as client:
        report = Syncer(cache, client, options=FAST).run_once()
        with pytest.raises(HubUnreachable):
            client.health()
    assert isinstance(report.error, HubUnreachable) and report.retries == FAST.attempts - 1


def test_anchor_is_taken_at_the_midpoint(hub: HubServer) -> None:
    clock = ManualClock(NOON_ISH)
    seen: list[ClockAnchor] = []
    with client_for(hub.url, clock) as client:
        client.on_anchor = seen.append
        before = clock.mono
        client.health()
    (anchor,) = seen
    assert before < anchor.mono_ns < clock.mono and anchor.rtt_ns > 0


# -- the commands ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _sync_command(monkeypatch: pytest.MonkeyPatch) -> None:
    # Until kiosk/commands/__init__.py lists sync_cmd, add it for these tests.
    import kiosk.cli
    from kiosk.commands import sync_cmd

    if sync_cmd not in kiosk.cli.COMMAND_MODULES:
        monkeypatch.setattr(kiosk.cli, "COMMAND_MODULES", (*kiosk.cli.COMMAND_MODULES, sync_cmd))


def _config(tmp_path: Path, url: str, token: str = TOKEN) -> Path:
    (tmp_path / "token").write_text(token + "\n")
    path = tmp_path / "kiosk.toml"
    path.write_text(f'[device]\nid = "{DEVICE}"\nbranch = "CN-431121-0002"\nprofile = "van"\n'
                    f'[database]\npath = "kiosk.db"\n[hub]\nurl = "{url}"\n'
                    'token_file = "token"\nretry_initial_ms = 10\nretry_max_s = 1\n'
                    'connect_timeout_ms = 1000\nread_timeout_ms = 5000\n', encoding="utf-8")
    return path


def test_kiosk_sync_and_queue(hub: HubServer, tmp_path: Path, capsys) -> None:
    conf = _config(tmp_path, hub.url)
    db.create(tmp_path / "kiosk.db").close()
    assert main(["--config", str(conf), "--lang", "en", "sync"]) == exitcodes.OK
    out = capsys.readouterr().out
    assert "Downloaded everything from the hub" in out and "Sync complete" in out
    with db.Cache.open(tmp_path / "kiosk.db") as c:
        add_events(c, 2)
    assert main(["--config", str(conf), "sync", "--json"]) == exitcodes.OK
    report = json.loads(capsys.readouterr().out)
    assert (report["sent"], report["acknowledged"], report["ok"]) == (2, 2, True)
    assert [f["code"] for f in report["flagged"]] == ["unknown_item"] * 2
    assert main(["--config", str(conf), "--lang", "en", "queue"]) == exitcodes.OK
    out = capsys.readouterr().out
    assert "No transactions waiting" in out and "flagged by the hub" in out
    assert "unknown_item" in out and "X000001" in out
    assert main(["--config", str(conf), "queue", "--json"]) == exitcodes.OK
    data = json.loads(capsys.readouterr().out)
    assert data["flagged_total"] == 2 and data["flagged"][0]["outcome"] == "exception"


def test_kiosk_sync_exit_codes(tmp_path: Path, capsys) -> None:
    db.create(tmp_path / "kiosk.db").close()
    assert main(["--db", str(tmp_path / "kiosk.db"), "--lang", "en", "sync"]) == exitcodes.CONFIG
    assert "No hub is configured" in capsys.readouterr().err
    conf = _config(tmp_path, "http://127.0.0.1:9/api/v1")
    assert main(["--config", str(conf), "--lang", "en", "sync"]) == exitcodes.REFUSED
    err = capsys.readouterr().err
    assert "cannot be reached" in err and "Sync not complete" in err


def test_sync_help_has_an_example(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--lang", "en", "sync", "--help"])
    out = capsys.readouterr().out
    assert "kiosk sync --json" in out and "Exit codes" in out


# -- TLS ---------------------------------------------------------------------------------------


def test_tls_is_verified_against_the_configured_ca(tmp_path: Path, cache: db.Cache) -> None:
    from sync.client import HubTLSError
    from sync.hub.server import TLSFiles
    from tests.hub_helpers import make_certs

    certs = make_certs(tmp_path)
    tls = TLSFiles(certs.server_cert, certs.server_key, client_ca=certs.ca)
    with HubServer(tmp_path / "hub.db", sample="small", devices={DEVICE: TOKEN},
                   tls=tls) as hub:
        assert hub.url.startswith("https://")
        cert, key = certs.client(DEVICE)
        clock = ManualClock(NOON_ISH)
        with HubClient(hub.url, DEVICE, TOKEN, clock=clock, ca_file=certs.ca,
                       client_cert=cert, client_key=key) as client:
            add_events(cache, 5)
            report = Syncer(cache, client, options=FAST).run_once()
            assert report.ok, report.error
            assert report.acknowledged == 5 and report.bootstrapped
        # The system's CAs do not know the county's CA: refused, and not retried at once.
        with HubClient(hub.url, DEVICE, TOKEN, clock=clock, client_cert=cert,
                       client_key=key) as client:
            report = Syncer(cache, client, options=FAST).run_once()
            assert isinstance(report.error, HubTLSError) and report.retries == 0
        # Without a client certificate the hub (mTLS) does not let the device in.
        with HubClient(hub.url, DEVICE, TOKEN, clock=clock, ca_file=certs.ca) as client:
            report = Syncer(cache, client, options=FAST).run_once()
            assert report.error is not None and not report.ok


# -- card numbers for registering devices ------------------------------------------------------


def _ranges(cache: db.Cache) -> list[tuple[str, int, int]]:
    with cache.snapshot() as conn:
        return conn.execute("SELECT prefix, first_number, last_number FROM card_ranges"
                            " ORDER BY first_number").fetchall()


def test_a_registering_device_leases_card_numbers_and_two_never_overlap(tmp_path: Path
                                                                       ) -> None:
    """A device that registers readers leases a range when it has too few numbers left,
    pulls it at once, and stops leasing while it has enough; a second van's range never
    overlaps the first's, so two vans never issue the same card number."""
    from dataclasses import replace

    from sync import cardnumbers

    other, other_token = "van-02", "van-02-token-0123456789"
    options = replace(FAST, card_range_size=100)
    with HubServer(tmp_path / "hub.db", sample="small",
                   devices={DEVICE: TOKEN, other: other_token}) as hub:
        first, second = db.create(tmp_path / "a.db"), db.create(tmp_path / "b.db")
        try:
            with client_for(hub.url) as client:
                syncer = Syncer(first, client, options=options)
                assert syncer.run_once().ok
                assert len(_ranges(first)) == 1
                assert syncer.run_once().ok  # 100 left of 100: enough, no second lease
                assert len(_ranges(first)) == 1
            with client_for(hub.url, device=other, token=other_token) as client:
                assert Syncer(second, client, options=options).run_once().ok
            (_, a_first, a_last), = _ranges(first)
            (_, b_first, b_last), = _ranges(second)
            assert a_last - a_first + 1 == b_last - b_first + 1 == 100
            assert a_last < b_first or b_last < a_first
            with first.snapshot() as conn:
                assert cardnumbers.supply(conn, NOON_ISH.date()).left == 100
        finally:
            first.close()
            second.close()
