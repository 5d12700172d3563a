"""The county page in real headless Chromium (Debian's ``chromium``, driven by Playwright)
against the reference hub on loopback, fed by the real syncer: sign-in, health (alive,
degraded, silent), alerts that open and clear, the charts of uploaded figures, the English
switch and the CSV download."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sync import db
from sync.hub.config import HubConfig
from sync.hub.testing import HubServer
from sync.syncer import Syncer, SyncReport
from tests.conftest import NOON_ISH, ManualClock
from tests.test_county import (
    BRANCH,
    DAY,
    DEVICE,
    FAST,
    STAFF,
    TOKEN,
    circulate,
    client,
)

SILENT_S = 3.0


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubServer]:
    config = HubConfig(silent_after_s=SILENT_S, county_days=400)
    with HubServer(tmp_path / "hub.db", sample="small", config=config, staff_token=STAFF,
                   devices={DEVICE: TOKEN, "kiosk-03": "k3-token-0123456789"}) as server:
        yield server


@pytest.fixture
def page(hub: HubServer, browser: Any, tmp_path: Path) -> Iterator[Any]:
    context = browser.new_context(locale="zh-CN", accept_downloads=True)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    base = hub.url.removesuffix("/api/v1")
    tab.goto(f"{base}/county")
    tab.wait_for_selector("#token")  # sent to the sign-in form first
    tab.fill("#token", STAFF)
    tab.click("#sign-in")
    tab.wait_for_selector("#fleet")
    yield tab
    context.close()
    assert errors == []


def row(page: Any, device: str) -> Any:
    return page.locator(f'tr[data-device="{device}"]')


def test_health_alerts_and_silence(hub: HubServer, page: Any, cache: db.Cache) -> None:
    alerts: list[dict[str, str]] = [{"code": "paper_out", "device": "printer"}]
    status = lambda: {"state": "ready", "branch": BRANCH,  # noqa: E731
                      "devices": {"printer": {"online": True, "detail": ""}},
                      "printer": {"paper": "out" if alerts else "ok"}, "alerts": list(alerts)}
    with client(hub) as c:
        syncer = Syncer(cache, c, options=FAST, status=status)
        syncer.heartbeat()
        page.reload()
        van = row(page, DEVICE)
        assert van.get_attribute("data-health") == "degraded"
        assert van.locator(".health").inner_text() == "异常"
        assert van.locator('li[data-alert="paper_out"]').inner_text() == "打印纸用完"
        assert van.locator(".paper").inner_text() == "已用完"
        # Never heard from: silent.
        assert row(page, "kiosk-03").get_attribute("data-health") == "silent"
        assert "从未" in row(page, "kiosk-03").locator(".last-heartbeat").inner_text()
        # The paper is changed: the next heartbeat no longer lists the alert.
        alerts.clear()
        alerts.append({"code": "door_left_open", "device": "door"})
        syncer.heartbeat()
        page.reload()
        assert van.locator('li[data-alert="paper_out"]').count() == 0
        assert van.locator('li[data-alert="door_left_open"]').inner_text() == "门未关：door"
        alerts.clear()
        syncer.heartbeat()
        sent = time.monotonic()
        page.reload()
        assert van.get_attribute("data-health") == "alive"
        assert van.locator("li").count() == 0 and van.locator(".paper").inner_text() == "正常"
        # No heartbeat for longer than silent_after_s: silent.
        time.sleep(max(0.0, SILENT_S + 0.3 - (time.monotonic() - sent)))
        page.reload()
        assert van.get_attribute("data-health") == "silent"
        assert van.locator(".health").inner_text() == "失联"
        assert page.locator("#summary").inner_text() == "共 2 个：正常 0，异常 0，失联 2"


def test_charts_english_switch_and_csv(hub: HubServer, page: Any, cache: db.Cache,
                                       tmp_path: Path) -> None:
    clock = ManualClock(NOON_ISH)
    for card, item in (("C1", "B1"), ("C2", "B2"), ("C1", "B3")):
        circulate(cache, clock, "checkout", card, item, stop="石门村")
    circulate(cache, clock, "checkin", "C1", "B1", stop=None)
    with client(hub, clock) as c:
        Syncer(cache, c, options=FAST).push_stats(SyncReport())
    page.goto(page.url.split("?")[0] + f"?from={DAY}&to={DAY}")
    bars = page.locator(f'figure[data-device="{DEVICE}"] rect.bar[data-day="{DAY}"]')
    values = {bars.nth(i).get_attribute("data-metric"): bars.nth(i).get_attribute("data-value")
              for i in range(bars.count())}
    assert values == {"loans": "3", "returns": "1", "visits": "0"}
    assert float(page.locator(f'figure[data-device="{DEVICE}"] rect.bar'
                              '[data-metric="loans"]').get_attribute("height")) > 0
    stop_bars = page.locator('figure[data-stop="石门村"] rect.bar[data-metric="loans"]')
    assert stop_bars.get_attribute("data-value") == "3"
    page.click("#lang-switch")
    page.wait_for_selector("html[lang=en]")
    assert page.locator("h1").inner_text() == "County library service points"
    assert row(page, DEVICE).locator(".health").inner_text() == "silent"
    with page.expect_download() as info:
        page.click("#csv")
    path = tmp_path / "stats.csv"
    info.value.save_as(path)
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    table = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    got = {(r["Day"], r["Van stop"]): (r["Loans"], r["Returns"], r["Active readers"])
           for r in table}
    assert got == {(DAY, ""): ("0", "1", "1"), (DAY, "石门村"): ("3", "0", "2")}
    assert {r["Device"] for r in table} == {DEVICE}
    assert info.value.suggested_filename == f"county-stats-{DAY}-{DAY}.csv"


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[db.Cache]:
    c = db.create(tmp_path / "kiosk.db")
    yield c
    c.close()
