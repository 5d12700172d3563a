"""Fleet and the county's figures: the heartbeat's fields, the van stop on the wire, daily
figures sent to the hub idempotently, active readers, ``kiosk stats --by stop``, and the
county page's health classification, catalogue and CSV (unit tests), against the real
reference hub on loopback and the real syncer (nothing of the project mocked)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from sync import db, outbox, stats, stops
from sync.client import HubClient
from sync.clock import Reading
from sync.hub import county
from sync.hub.testing import HubServer
from sync.syncer import STATS_SENT_KEY, Syncer, SyncOptions, SyncReport, unacked_events
from tests.conftest import NOON_ISH, ManualClock

DEVICE = "van-01"
TOKEN = "van-01-token-0123456789"
STAFF = "staff-token-0123456789"
BRANCH = "CN-431121-0002"
TZ = ZoneInfo("Asia/Shanghai")
DAY = NOON_ISH.astimezone(TZ).date().isoformat()  # the kiosk's day of NOON_ISH
FAST = SyncOptions(retry_initial_s=0.01, retry_max_s=0.05, attempts=4,
                   probe_interval_s=0.05, sync_interval_s=30)
SECOND = 1_000_000_000


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubServer]:
    with HubServer(tmp_path / "hub.db", devices={DEVICE: TOKEN, "kiosk-03": "k3-token-0123456789"},
                   staff_token=STAFF) as server:
        yield server


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[db.Cache]:
    c = db.create(tmp_path / "kiosk.db")
    yield c
    c.close()


def client(hub: HubServer, clock: ManualClock | None = None) -> HubClient:
    return HubClient(hub.url, DEVICE, TOKEN, clock=clock or ManualClock(NOON_ISH),
                     timeout=(2.0, 5.0))


def circulate(cache: db.Cache, clock: ManualClock, kind: str, card: str | None, item: str,
              *, stop: str | None = None) -> outbox.Event:
    """One circulation event as the kiosk writes it (its figure counted in the same
    transaction), at the van stop ``stop``."""
    with cache.transaction() as conn:
        if stop is not None:
            conn.execute("INSERT INTO van_stop (id, stop, chosen_at) VALUES (1, ?, ?)"
                         " ON CONFLICT (id) DO UPDATE SET stop = excluded.stop",
                         (stop, "2026-11-25T10:00:00+08:00"))
        else:
            conn.execute("DELETE FROM van_stop")
        clock.advance(60)
        reading = Reading(clock.wall_ns(), clock.monotonic_ns(), clock.boot_id(), True)
        payload = {"branch": BRANCH, "item": item, "flags": [], "station": "kiosk"}
        if card is not None:
            payload["card"] = card
        event = outbox.append(conn, device_id=DEVICE, kind=kind, payload=payload,
                              reading=reading)
        stats.bump(conn, reading.local_date(TZ).isoformat(), BRANCH,
                   "loans" if kind == "checkout" else "returns")
    return event


def hub_rows(hub: HubServer, sql: str, *args: Any) -> list[tuple]:
    with sqlite3.connect(hub.db_path) as conn:
        return conn.execute(sql, args).fetchall()


# -- the van stop on the wire ---------------------------------------------------------------


def test_each_event_carries_its_stop_to_the_hub(hub: HubServer, cache: db.Cache) -> None:
    clock = ManualClock(NOON_ISH)
    circulate(cache, clock, "checkout", "C1", "B1", stop="石门村")
    circulate(cache, clock, "checkin", "C1", "B1", stop=None)
    with cache.snapshot() as conn:
        events = unacked_events(conn, DEVICE, 10)
    assert [e.stop for e in events] == ["石门村", None]
    with client(hub, clock) as c:
        syncer = Syncer(cache, c, options=FAST)
        syncer.push(SyncReport())
    assert hub_rows(hub, "SELECT seq, stop FROM hub_events ORDER BY seq") == [
        (1, "石门村"), (2, None)]


def test_the_hub_refuses_a_stop_that_is_not_a_short_string(hub: HubServer) -> None:
    ev = {"txn_id": "a" * 32, "seq": 1, "kind": "checkin", "boot_id": "b", "mono_ns": 1,
          "wall_ns": 1, "clock_synced": True, "hlc": 1, "payload": {"item": "x"}}
    for bad in ("x" * 65, 7, ""):
        r = requests.post(f"{hub.url}/devices/{DEVICE}/events", json={
            "device_id": DEVICE, "events": [{**ev, "stop": bad}]},
            headers={"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "k" * 12},
            timeout=5)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["error"]["details"]["problems"][0]["path"] == "$.events[0].stop"


# -- daily figures ------------------------------------------------------------------------


def test_daily_figures_reach_the_hub_once_and_again_only_when_they_change(
        hub: HubServer, cache: db.Cache) -> None:
    clock = ManualClock(NOON_ISH)
    circulate(cache, clock, "checkout", "C1", "B1", stop="石门村")
    circulate(cache, clock, "checkout", "C1", "B2", stop="石门村")  # the same reader
    circulate(cache, clock, "checkout", "C2", "B3", stop="石门村")
    circulate(cache, clock, "checkin", None, "B9", stop=None)  # borrower unknown
    with client(hub, clock) as c:
        syncer = Syncer(cache, c, options=FAST)
        first = SyncReport()
        syncer.push_stats(first)
        again = SyncReport()
        syncer.push_stats(again)
        rows = hub_rows(hub, "SELECT day, branch, stop, metric, value FROM hub_daily_stats"
                             " WHERE device_id = ? ORDER BY stop, metric", DEVICE)
        assert (first.stats_days, again.stats_days) == (1, 0)  # unchanged: not sent again
        assert rows == [(DAY, BRANCH, "", "returns", 1),
                        (DAY, BRANCH, "石门村", "loans", 3),
                        (DAY, BRANCH, "石门村", "readers", 2)]
        # Sending the same day again (lost answer, restored device) changes nothing.
        with cache.transaction() as conn:
            conn.execute("DELETE FROM local_state WHERE key = ?", (STATS_SENT_KEY,))
        syncer.push_stats(SyncReport())
        assert hub_rows(hub, "SELECT count(*), sum(value) FROM hub_daily_stats") == [(3, 6)]
        # One more loan: the day goes again, as absolute values.
        circulate(cache, clock, "checkout", "C3", "B4", stop="石门村")
        changed = SyncReport()
        syncer.push_stats(changed)
        assert changed.stats_days == 1
    assert hub_rows(hub, "SELECT metric, value FROM hub_daily_stats WHERE stop = '石门村'"
                         " ORDER BY metric") == [("loans", 4), ("readers", 3)]


def test_the_hub_refuses_malformed_figures(hub: HubServer) -> None:
    r = requests.put(f"{hub.url}/devices/{DEVICE}/stats", json={
        "device_id": DEVICE, "days": [{"day": "2026-13-01", "figures": [
            {"branch": BRANCH, "stop": "", "metric": "loans", "value": -1}]}]},
        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert r.status_code == 422
    paths = {p["path"] for p in r.json()["error"]["details"]["problems"]}
    assert paths == {"$.days[0].day", "$.days[0].figures[0].value"}
    other = requests.put(f"{hub.url}/devices/kiosk-03/stats", json={"device_id": "kiosk-03",
                                                                    "days": []},
                         headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert other.status_code == 403


def test_report_groups_by_day_and_stop_and_counts_readers_once(cache: db.Cache) -> None:
    clock = ManualClock(NOON_ISH)
    circulate(cache, clock, "checkout", "C1", "B1", stop="石门村")
    circulate(cache, clock, "checkout", "C1", "B2", stop="石门村")
    circulate(cache, clock, "checkout", "C1", "B3", stop="白沙村")
    circulate(cache, clock, "checkout", "C2", "B4", stop=None)
    with cache.snapshot() as conn:
        by_day = stats.report(conn, DAY)
        by_stop = stats.report(conn, DAY, by="stop")
    assert [(r["day"], r["stop"], r["loans"], r["readers"]) for r in by_day["days"]] == [
        (DAY, None, 1, 1), (DAY, "白沙村", 1, 1), (DAY, "石门村", 2, 1)]
    assert [(r["stop"], r["days"], r["loans"]) for r in by_stop["stops"]] == [
        (None, 1, 1), ("白沙村", 1, 1), ("石门村", 1, 2)]
    # C1 at two stops is one active reader of the period.
    assert (by_day["totals"]["loans"], by_day["totals"]["readers"]) == (4, 2)


# -- heartbeats -----------------------------------------------------------------------------


def test_the_heartbeat_carries_the_fleet_fields(hub: HubServer, cache: db.Cache) -> None:
    clock = ManualClock(NOON_ISH)
    circulate(cache, clock, "checkout", "C1", "B1", stop="石门村")
    with cache.transaction() as conn:
        stops.choose(conn, "白沙村", known=["白沙村"], at=NOON_ISH, staff_id=None,
                     staff_card=None)
    status = {"state": "degraded", "branch": BRANCH,
              "devices": {"printer": {"online": True, "detail": ""}},
              "printer": {"paper": "low", "problems": []},
              "alerts": [{"code": "door_left_open", "device": "door"}]}
    with client(hub, clock) as c:
        syncer = Syncer(cache, c, options=FAST, status=lambda: status)
        c.health()  # a clock anchor, as run_once takes one first
        syncer.heartbeat()
    ((received, body),) = hub_rows(hub, "SELECT received_at_ns, body FROM hub_heartbeats"
                                        " WHERE device_id = ?", DEVICE)
    hb = json.loads(body)
    assert hb["queue_depth"] == 1  # the checkout, not yet pushed
    assert hb["stop"] == "白沙村"
    assert hb["versions"]["schema"] >= 6 and hb["versions"]["software"]
    assert hb["disk_free_bytes"] > 0
    assert isinstance(hb["clock_offset_ns"], int)
    # The manual clock is in 2026 and the hub's is now: the offset says how far apart.
    assert abs(hb["clock_offset_ns"] - (clock.wall_ns() - received)) < 60 * SECOND
    assert hb["printer"] == {"paper": "low", "problems": []}
    assert hb["alerts"] == [{"code": "door_left_open", "device": "door"}]
    assert hb["last_sync_at"] is None  # no sync has completed yet


def test_a_heartbeat_asked_for_goes_out_between_syncs(hub: HubServer,
                                                      cache: db.Cache) -> None:
    alerts: list[dict[str, str]] = []
    with client(hub) as c:
        syncer = Syncer(cache, c, options=FAST, status=lambda: {"alerts": list(alerts)})
        stop = threading.Event()
        worker = threading.Thread(target=syncer.run_forever, args=(stop,), daemon=True)
        worker.start()
        try:
            seen = _wait_heartbeat(hub, lambda hb: hb.get("last_sync_at"))
            assert seen["alerts"] == [] and seen["queue_depth"] == 0
            alerts.append({"code": "paper_out", "device": "printer"})
            started = time.monotonic()
            syncer.request_heartbeat()  # sync_interval_s is 30 s: only this can send it
            seen = _wait_heartbeat(hub, lambda hb: hb["alerts"])
            assert seen["alerts"] == [{"code": "paper_out", "device": "printer"}]
            assert time.monotonic() - started < 5
        finally:
            stop.set()
            syncer.request_sync()
            worker.join(10)
    assert not worker.is_alive()


def _wait_heartbeat(hub: HubServer, ok: Any, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = hub_rows(hub, "SELECT body FROM hub_heartbeats WHERE device_id = ?", DEVICE)
        if rows and ok(hb := json.loads(rows[0][0])):
            return hb
        time.sleep(0.05)
    raise AssertionError("no such heartbeat reached the hub")


# -- the county page's parts ----------------------------------------------------------------


def test_health_is_silent_degraded_or_alive() -> None:
    now = 1_000 * SECOND
    fresh = now - 10 * SECOND
    ok = {"state": "ready", "devices": {"printer": {"online": True}}, "alerts": []}
    assert county.classify(fresh, ok, now, 60).state == "alive"
    assert county.classify(now - 61 * SECOND, ok, now, 60).state == "silent"
    assert county.classify(None, None, now, 60).state == "silent"
    paper = {**ok, "alerts": [{"code": "paper_out", "device": "printer"}]}
    health = county.classify(fresh, paper, now, 60)
    assert health.state == "degraded"
    assert health.alerts == ({"code": "paper_out", "device": "printer", "detail": ""},)
    offline = {**ok, "devices": {"tag_reader": {"online": False, "detail": "no answer"}}}
    assert county.classify(fresh, offline, now, 60).alerts == (
        {"code": "device_offline", "device": "tag_reader", "detail": "no answer"},)
    assert county.classify(fresh, {**ok, "state": "degraded"}, now, 60).state == "degraded"
    older = {"devices": {"printer": False}}  # the older heartbeat shape
    assert county.classify(fresh, older, now, 60).state == "degraded"


def test_both_county_catalogues_have_the_same_keys_and_placeholders() -> None:
    import string

    zh, en = county.messages("zh-CN"), county.messages("en")
    assert set(zh) == set(en) and zh
    for key, text in zh.items():
        fields = {f for _, f, _, _ in string.Formatter().parse(text) if f}
        assert fields == {f for _, f, _, _ in string.Formatter().parse(en[key]) if f}, key
        assert en[key].strip() and text.strip()
    assert county.Texts("xx").lang == "zh-CN"  # Chinese first


def test_csv_has_a_bom_a_header_and_a_line_per_day_device_and_stop() -> None:
    rows = [{"day": "2026-11-24", "device_id": "van-01", "branch": BRANCH,
             "branch_name": "流动图书车", "stop": "石门村", "metric": m, "value": v}
            for m, v in (("loans", 5), ("returns", 2), ("readers", 3))]
    rows.append({"day": "2026-11-25", "device_id": "kiosk-03", "branch": "CN-431121-0001",
                 "branch_name": "县图书馆", "stop": "", "metric": "visits", "value": 7})
    data = county.to_csv(rows, county.Texts("zh-CN"))
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    assert "\r\n" in text
    table = list(csv.reader(io.StringIO(text)))
    assert table[0][:5] == ["日期", "设备", "馆代码", "服务点", "停靠点"]
    head = table[0]
    first = dict(zip(head, table[1], strict=True))
    assert (first["日期"], first["服务点"], first["停靠点"], first["借出"], first["归还"],
            first["活跃读者"], first["到馆"]) == ("2026-11-24", "流动图书车", "石门村", "5",
                                            "2", "3", "0")
    second = dict(zip(head, table[2], strict=True))
    assert (second["设备"], second["到馆"], second["借出"]) == ("kiosk-03", "7", "0")
    assert len(table) == 3


def test_the_range_defaults_to_the_last_days_and_is_bounded() -> None:
    today = datetime(2026, 11, 25).date()
    first, last = county.parse_range(None, None, today, 14)
    assert (first.isoformat(), last.isoformat()) == ("2026-11-12", "2026-11-25")
    first, last = county.parse_range("2026-11-30", "2026-11-01", today, 14)
    assert (first.isoformat(), last.isoformat()) == ("2026-11-01", "2026-11-30")
    first, last = county.parse_range("2020-01-01", "junk", today, 14)
    assert (last - first).days == 365


def test_the_county_page_needs_a_staff_sign_in(hub: HubServer) -> None:
    base = hub.url.removesuffix("/api/v1")
    http = requests.Session()
    http.trust_env = False
    r = http.get(f"{base}/county", allow_redirects=False, timeout=5)
    assert r.status_code == 303 and r.headers["location"].startswith("/county/login")
    assert http.get(f"{base}/county/stats.csv", timeout=5).status_code == 401
    device = http.get(f"{base}/county/stats.csv", timeout=5,
                      headers={"Authorization": f"Bearer {TOKEN}"})
    assert device.status_code == 401  # a device token is no staff token
    bad = http.post(f"{base}/county/login", data={"token": TOKEN}, timeout=5)
    assert bad.status_code == 401 and "login-error" in bad.text
    r = http.post(f"{base}/county/login", data={"token": STAFF}, allow_redirects=False,
                  timeout=5)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/county" in cookie
    page = http.get(f"{base}/county", timeout=5)
    assert page.status_code == 200 and 'data-device="van-01"' in page.text
    assert page.headers["cache-control"] == "no-store"
    http.post(f"{base}/county/logout", timeout=5)
    r = http.get(f"{base}/county", allow_redirects=False, timeout=5)
    assert r.status_code == 303


# -- kiosk stats --by stop --------------------------------------------------------------------


def test_kiosk_stats_shows_van_stops(capsys: pytest.CaptureFixture[str]) -> None:
    from kiosk.cli import main
    from tests.daemon_helpers import make_world, remove_tree, short_dir, write_config

    folder = short_dir()
    try:
        make_world(folder / "kiosk.db")
        write_config(folder, folder / "kiosk.db")
        today = datetime.now(TZ).date().isoformat()
        with sqlite3.connect(folder / "kiosk.db") as conn:
            conn.executemany(
                "INSERT INTO daily_stats (day, branch, stop, metric, value) VALUES (?, ?, ?, ?, ?)",
                [(today, BRANCH, "石门村", "loans", 3), (today, BRANCH, "", "loans", 2),
                 (today, BRANCH, "白沙村", "visits", 4)])

        def kiosk(*args: str) -> str:
            assert main(["--lang", "en", "--config", str(folder / "kiosk.toml"),
                         "stats", *args]) == 0
            return capsys.readouterr().out

        lines = kiosk("--by", "stop").splitlines()
        assert lines[0].split()[:4] == ["stop", "days", "visits", "sessions"]
        assert [line.split()[0] for line in lines[1:]] == ["-", "白沙村", "石门村", "total"]
        assert lines[3].split()[:5] == ["石门村", "1", "0", "0", "3"]
        day_lines = kiosk().splitlines()
        assert day_lines[0].split()[:3] == ["day", "stop", "visits"]
        data = json.loads(kiosk("--by", "stop", "--json"))
        assert {(s["stop"], s["loans"]) for s in data["stops"]} == {
            (None, 2), ("白沙村", 0), ("石门村", 3)}
    finally:
        remove_tree(folder)
