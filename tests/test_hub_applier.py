"""Pushes are stored and answered at once; the hub applies them afterwards, in the
background, and before anything that reads circulation state. These tests hold the applier
back (``HubServer(applier=False)``, or an ``apply_event`` that waits) to see each step."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import requests

import sync.hub.store as store_module
from kiosk.cli import main
from sync.hub.config import HubConfig
from sync.hub.store import SqliteHubStore
from sync.hub.testing import HubServer
from tests.hub_helpers import STAFF, Client, Device, E, latest, token_for

DEVICES = {d: token_for(d) for d in ("van-01", "van-02")}


def hub_state(db: Path) -> dict[str, tuple[int, int]]:
    """(stored_through_seq, applied_through_seq) by device, read from the file itself."""
    with sqlite3.connect(db) as conn:
        return {d: (s, a) for d, s, a in conn.execute(
            "SELECT device_id, stored_through_seq, applied_through_seq FROM hub_devices")}


def event_states(db: Path, device_id: str) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute(
            "SELECT state FROM hub_events WHERE device_id = ? ORDER BY seq", (device_id,))]


def wait_until(what: str, check, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def lend_and_return(van: Device, n: int) -> list[dict]:
    """``n`` events: the same book lent and returned, over and over."""
    return [van.checkout(E["ok_patron"], E["available_item"]) if i % 2 == 0
            else van.checkin(E["available_item"]) for i in range(n)]


def test_a_push_is_stored_and_acknowledged_before_anything_is_applied(tmp_path):
    with HubServer(tmp_path / "hub.db", sample="small", devices=DEVICES,
                   applier=False) as hub:
        van = Device("van-01")
        events = [van.checkout(E["ok_patron"], E["available_item"]),
                  van.checkin(E["on_loan_item"])]
        r = Client(hub.url, "van-01").push(events)
        assert r.status_code == 200
        assert (r.json()["stored"], r.json()["acked_through_seq"]) == (2, 2)
        # Stored and acknowledged as facts, durably; nothing of them applied yet.
        assert hub_state(hub.db_path)["van-01"] == (2, 0)
        assert event_states(hub.db_path, "van-01") == ["stored", "stored"]
        with sqlite3.connect(hub.db_path) as conn:
            assert conn.execute("SELECT count(*) FROM loans WHERE checkout_txn = ?",
                                (events[0]["txn_id"],)).fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM hub_changes").fetchone()[0] == 0
        assert hub.store.apply_pending() == 2
        assert hub_state(hub.db_path)["van-01"] == (2, 2)
        assert event_states(hub.db_path, "van-01") == ["applied", "applied"]
        assert hub.store.apply_pending() == 0


def test_the_push_returns_while_the_applier_is_still_applying(tmp_path, monkeypatch):
    real = store_module.apply_event
    entered, release = threading.Event(), threading.Event()
    appliers: set[str] = set()

    def held_back(conn, cfg, ev, now_ns):
        appliers.add(threading.current_thread().name)
        entered.set()
        assert release.wait(30)
        return real(conn, cfg, ev, now_ns)

    monkeypatch.setattr(store_module, "apply_event", held_back)
    with HubServer(tmp_path / "hub.db", sample="small", devices=DEVICES) as hub:
        ev = Device("van-01").checkout(E["ok_patron"], E["available_item"])
        started = time.monotonic()
        r = Client(hub.url, "van-01").push([ev])
        assert r.status_code == 200 and r.json()["acked_through_seq"] == 1
        # The answer came back; the applier only now gets to the event, and is held.
        assert entered.wait(10)
        assert hub_state(hub.db_path)["van-01"] == (1, 0)
        release.set()
        wait_until("the event is applied", lambda: hub_state(hub.db_path)["van-01"] == (1, 1))
        assert time.monotonic() - started < 30
    assert appliers == {"hub-applier"}  # never the thread that answered the push


def test_a_pull_right_after_a_push_sees_the_push_applied(tmp_path):
    with HubServer(tmp_path / "hub.db", sample="small", devices=DEVICES, staff_token=STAFF,
                   applier=False) as hub:
        van = Device("van-01")
        c = Client(hub.url, "van-01")
        lent = van.checkout(E["blocked_patron"], E["available_item"])
        c.push([lent])
        feed, cursor = c.pull_all()
        assert latest(feed, "loan")[lent["txn_id"]]["card"] == E["blocked_patron"]
        assert latest(feed, "verdict")[lent["txn_id"]]["code"] == "patron_blocked"
        # The snapshot and the staff's exception list catch up the same way.
        back = van.checkin(E["available_item"])
        c.push([back])
        r = c.http.get(c.path("snapshot"), timeout=30)
        items = [json.loads(x) for x in r.iter_lines() if b'"type":"item"' in x]
        assert {x["key"]: x["data"]["status"] for x in items}[E["available_item"]] \
            == "available"
        odd = van.checkin(E["available_item_2"])
        c.push([odd])
        listed = requests.get(f"{hub.url}/exceptions", timeout=5,
                              headers={"Authorization": f"Bearer {STAFF}"}).json()
        assert {(x["txn_id"], x["code"]) for x in listed["exceptions"]} == {
            (lent["txn_id"], "patron_blocked"), (odd["txn_id"], "item_not_on_loan")}
        assert hub_state(hub.db_path)["van-01"] == (3, 3)
        later, _ = c.pull_all(cursor)
        assert {back["txn_id"], odd["txn_id"]} <= set(latest(later, "verdict"))


def test_the_applier_applies_without_any_pull(tmp_path):
    with HubServer(tmp_path / "hub.db", sample="small", devices=DEVICES) as hub:
        van = Device("van-01")
        events = lend_and_return(van, 6)
        assert Client(hub.url, "van-01").push(events).json()["acked_through_seq"] == 6
        wait_until("the applier has applied the push",
                   lambda: hub_state(hub.db_path)["van-01"] == (6, 6))
        assert event_states(hub.db_path, "van-01") == ["applied"] * 6
        with sqlite3.connect(hub.db_path) as conn:
            verdicts = conn.execute("SELECT key FROM hub_changes WHERE feed = 'verdict'"
                                    " ORDER BY change_id").fetchall()
        assert [v[0] for v in verdicts] == [e["txn_id"] for e in events]


def test_a_failing_event_holds_back_its_device_only(tmp_path, monkeypatch):
    real = store_module.apply_event

    def failing(conn, cfg, ev, now_ns):
        if (ev.device_id, ev.seq) == ("van-01", 2):
            raise RuntimeError("a bug in the rules")
        return real(conn, cfg, ev, now_ns)

    monkeypatch.setattr(store_module, "apply_event", failing)
    with HubServer(tmp_path / "hub.db", sample="small", devices=DEVICES) as hub:
        one, two = Device("van-01"), Device("van-02")
        c1, c2 = Client(hub.url, "van-01"), Client(hub.url, "van-02")
        assert c1.push(lend_and_return(one, 3)).json()["acked_through_seq"] == 3
        assert c2.push([two.checkin(E["available_item_2"]),
                        two.checkin(E["available_item_3"])]).status_code == 200
        wait_until("van-02 is applied", lambda: hub_state(hub.db_path)["van-02"] == (2, 2))
        wait_until("van-01 stops at its failing event",
                   lambda: hub_state(hub.db_path)["van-01"] == (3, 1))
        assert event_states(hub.db_path, "van-01") == ["applied", "stored", "stored"]
        # The applier lives on: another device's next push is applied without a pull.
        c2.push([two.checkin(E["children_item"])])
        wait_until("van-02's next push is applied",
                   lambda: hub_state(hub.db_path)["van-02"] == (3, 3))
        # A pull does not bring the failing event back on every read...
        assert set(c1.verdicts()) == {one.events[0]["txn_id"]}
        # ...and once the bug is fixed, the device's next push has it tried again.
        monkeypatch.setattr(store_module, "apply_event", real)
        c1.push([one.checkout(E["ok_patron"], E["available_item_3"])])
        wait_until("van-01 catches up", lambda: hub_state(hub.db_path)["van-01"] == (4, 4))
        assert set(c1.verdicts()) == {e["txn_id"] for e in one.events}


def test_events_waiting_at_shutdown_stay_stored_and_are_applied_at_the_next_start(tmp_path):
    db = tmp_path / "hub.db"
    van = Device("van-01")
    events = lend_and_return(van, 4)
    with HubServer(db, sample="small", devices=DEVICES, applier=False) as hub:
        assert Client(hub.url, "van-01").push(events).json()["acked_through_seq"] == 4
    assert hub_state(db)["van-01"] == (4, 0)
    assert event_states(db, "van-01") == ["stored"] * 4
    with HubServer(db, devices=DEVICES):
        wait_until("the restarted hub has applied them", lambda: hub_state(db)["van-01"]
                   == (4, 4))


def test_stopping_in_the_middle_of_a_backlog_loses_and_doubles_nothing(tmp_path):
    db = tmp_path / "hub.db"
    quick = HubConfig(apply_settle_s=0.0, apply_chunk_events=25)
    van = Device("van-01")
    events = lend_and_return(van, 1000)
    with HubServer(db, sample="small", devices=DEVICES, config=quick) as hub:
        c = Client(hub.url, "van-01")
        for i in range(0, len(events), 250):
            assert c.push(events[i:i + 250]).status_code == 200
        wait_until("the applier has started", lambda: hub_state(db)["van-01"][1] > 0)
        started = time.monotonic()
    assert time.monotonic() - started < 10  # the chunk in progress, not the whole backlog
    stored, applied = hub_state(db)["van-01"]
    states = event_states(db, "van-01")
    assert stored == 1000 and states == ["applied"] * applied + ["stored"] * (1000 - applied)
    with HubServer(db, devices=DEVICES, config=quick):
        wait_until("the rest is applied", lambda: hub_state(db)["van-01"] == (1000, 1000))
    with sqlite3.connect(db) as conn:
        loans = conn.execute("SELECT count(*), count(DISTINCT checkout_txn) FROM loans"
                             " WHERE checkout_txn IS NOT NULL").fetchone()
        verdicts = conn.execute("SELECT count(*), count(DISTINCT key) FROM hub_changes"
                                " WHERE feed = 'verdict'").fetchone()
    assert loans == (500, 500) and verdicts == (1000, 1000)


def test_pushes_and_pulls_at_once_apply_every_event_exactly_once(tmp_path):
    quick = HubConfig(apply_settle_s=0.0, apply_chunk_events=7)
    with HubServer(tmp_path / "hub.db", sample="small", devices=DEVICES, config=quick) as hub:
        vans = {"van-01": Device("van-01"), "van-02": Device("van-02")}
        books = {"van-01": E["available_item"], "van-02": E["available_item_2"]}
        done = threading.Event()
        failures: list[BaseException] = []

        def pushing(device_id: str) -> None:
            try:
                c, van = Client(hub.url, device_id), vans[device_id]
                for _ in range(15):
                    batch = [van.checkout(E["ok_patron"], books[device_id]),
                             van.checkin(books[device_id])]
                    assert c.push(batch).status_code == 200
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)

        def pulling() -> None:
            c = Client(hub.url, "van-01")
            while not done.is_set():
                c.pull_all()

        threads = [threading.Thread(target=pushing, args=(d,)) for d in vans]
        puller = threading.Thread(target=pulling)
        for t in (*threads, puller):
            t.start()
        for t in threads:
            t.join(60)
        done.set()
        puller.join(60)
        assert not failures
        feed, _ = Client(hub.url, "van-01").pull_all()
        verdicts = [ch["key"] for ch in feed if ch["feed"] == "verdict"]
        verdicts += [ch["key"] for ch in Client(hub.url, "van-02").pull_all()[0]
                     if ch["feed"] == "verdict"]
    assert sorted(verdicts) == sorted(e["txn_id"] for v in vans.values() for e in v.events)
    with sqlite3.connect(tmp_path / "hub.db") as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT checkout_txn) FROM loans"
                            " WHERE checkout_txn IS NOT NULL").fetchone() == (30, 30)
        assert conn.execute("SELECT count(*) FROM hub_events WHERE state != 'applied'"
                            ).fetchone()[0] == 0


def test_devices_are_applied_in_the_order_their_events_became_applicable(tmp_path):
    store = SqliteHubStore.open(tmp_path / "hub.db")
    try:
        store.load_sample("small")
        for device_id in DEVICES:
            store.add_device(device_id)
        one, two = Device("van-01"), Device("van-02")
        first, second = one.checkin(E["available_item"]), one.checkin(E["available_item_2"])
        other = two.checkin(E["available_item_3"])

        def push(device_id: str, events: list[dict], key: str) -> None:
            store.push(device_id, {"device_id": device_id, "events": events}, key, key)

        push("van-01", [second], "k-1")  # seq 2 arrives first: it waits for seq 1
        push("van-02", [other], "k-2")
        push("van-01", [first], "k-3")  # now seq 1 and 2 can be applied
        assert store.apply_pending() == 3
        with sqlite3.connect(tmp_path / "hub.db") as conn:
            order = [r[0] for r in conn.execute(
                "SELECT key FROM hub_changes WHERE feed = 'verdict' ORDER BY change_id")]
        assert order == [other["txn_id"], first["txn_id"], second["txn_id"]]
    finally:
        store.close()


def test_kiosk_hub_exceptions_applies_what_is_waiting(tmp_path, capsys):
    db = tmp_path / "hub.db"
    with HubServer(db, sample="small", devices=DEVICES, applier=False) as hub:
        Client(hub.url, "van-01").push([Device("van-01").checkin(E["available_item"])])
    assert hub_state(db)["van-01"] == (1, 0)
    assert main(["hub", "exceptions", "--db", str(db), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["exceptions"]
    assert [(x["device_id"], x["seq"], x["code"]) for x in listed] == [
        ("van-01", 1, "item_not_on_loan")]
    assert hub_state(db)["van-01"] == (1, 1)


@pytest.mark.parametrize("applier", [True, False])
def test_stopping_the_store_twice_is_harmless(tmp_path, applier):
    store = SqliteHubStore.open(tmp_path / "hub.db")
    if applier:
        store.start_applier()
        store.start_applier()  # one thread at a time
    assert store.stop_applier() and store.stop_applier()
    store.close()
    store.close()
