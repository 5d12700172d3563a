"""Applying events at the hub: physical fact first, exceptions for staff, corrected times,
and the same end state whatever order the devices' events arrive in."""

from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.db import Cache
from sync.hub.store import SqliteHubStore
from sync.hub.testing import HubServer
from sync.hub.timefix import from_iso
from tests.hub_helpers import (
    CENTRAL,
    SECOND,
    SPACE,
    STAFF,
    Client,
    Device,
    E,
    latest,
    token_for,
)

DEVICES = {d: token_for(d) for d in ("van-01", "van-02")}
TZ = __import__("zoneinfo").ZoneInfo("Asia/Shanghai")


@pytest.fixture
def hub(tmp_path):
    with HubServer(tmp_path / "hub.db", sample="small", devices=DEVICES,
                   staff_token=STAFF) as server:
        yield server


def exceptions(hub) -> list[dict]:
    r = requests.get(f"{hub.url}/exceptions", headers={"Authorization": f"Bearer {STAFF}"},
                     params={"status": "all"}, timeout=5)
    assert r.status_code == 200
    return r.json()["exceptions"]


def us(ns: int) -> int:
    """Times in the circulation tables keep microseconds."""
    return ns // 1000 * 1000


@pytest.mark.parametrize("first", ["van-01", "van-02"])
def test_two_vans_lend_the_same_book_offline(hub, first):
    now = time.time_ns()
    t1, t2 = now - 600 * SECOND, now - 300 * SECOND
    one, two = Device("van-01"), Device("van-02", branch=CENTRAL)
    a = one.checkout(E["ok_patron"], E["available_item"], wall_ns=t1)
    b = two.checkout(E["child_patron"], E["available_item"], wall_ns=t2)
    c1, c2 = Client(hub.url, "van-01"), Client(hub.url, "van-02")
    pushes = [(c1, a), (c2, b)] if first == "van-01" else [(c2, b), (c1, a)]
    for client, ev in pushes:
        assert client.push([ev]).json()["acked_through_seq"] == 1
    feed, _ = c1.pull_all()
    loans = latest(feed, "loan")
    # The earlier loan ended when the second van lent the book; the later one is open.
    assert us(from_iso(loans[a["txn_id"]]["returned_at"], TZ)) == us(t2)
    assert loans[a["txn_id"]]["checkin_txn"] == b["txn_id"]
    assert loans[b["txn_id"]]["returned_at"] is None
    assert us(from_iso(loans[b["txn_id"]]["loaned_at"], TZ)) == us(t2)
    patrons = latest(feed, "patron")
    # Applied in the past, the first loan never counted for its patron (0 as loaded).
    assert patrons.get(E["ok_patron"], {"loan_count": 0})["loan_count"] == 0
    assert patrons[E["child_patron"]]["loan_count"] == 1
    assert latest(feed, "item")[E["available_item"]]["status"] == "on_loan"
    late = a if first == "van-02" else b
    verdicts = {**c1.verdicts(), **c2.verdicts()}
    assert verdicts[late["txn_id"]]["outcome"] == "exception"
    assert verdicts[late["txn_id"]]["code"] == "closed_loan_elsewhere"
    listed = [(x["txn_id"], x["code"]) for x in exceptions(hub)]
    assert (late["txn_id"], "closed_loan_elsewhere") in listed


def test_a_loan_to_a_blocked_patron_is_kept_and_flagged(hub):
    van = Device("van-01")
    ev = van.checkout(E["blocked_patron"], E["available_item"])
    c = Client(hub.url, "van-01")
    c.push([ev])
    feed, _ = c.pull_all()
    assert latest(feed, "loan")[ev["txn_id"]]["card"] == E["blocked_patron"]
    verdict = latest(feed, "verdict")[ev["txn_id"]]
    assert (verdict["outcome"], verdict["code"]) == ("exception", "patron_blocked")
    assert [x["code"] for x in exceptions(hub)] == ["patron_blocked"]


def test_an_unknown_book_is_lent_created_and_flagged(hub):
    van = Device("van-01")
    ev = van.checkout(E["ok_patron"], "00029999999999")
    c = Client(hub.url, "van-01")
    c.push([ev])
    feed, _ = c.pull_all()
    item = latest(feed, "item")["00029999999999"]
    assert (item["status"], item["flags"], item["title"]) == ("on_loan", "unknown", None)
    assert latest(feed, "verdict")[ev["txn_id"]]["code"] == "unknown_item"
    ret = van.checkin("00029999999999")
    c.push([ret])
    assert latest(c.pull_all()[0], "verdict")[ret["txn_id"]]["outcome"] == "ok"


def test_a_book_trapped_for_another_patron_is_lent_and_the_hold_retargeted(hub):
    van = Device("van-01")
    ev = van.checkout(E["ok_patron"], E["ready_hold_item"])
    c = Client(hub.url, "van-01")
    c.push([ev])
    feed, _ = c.pull_all()
    hold = latest(feed, "hold")[str(E["ready_hold"])]
    assert hold["status"] == "waiting" and hold["locker_slot"] is None
    assert hold["card"] == E["ready_hold_patron"]
    assert latest(feed, "loan")[ev["txn_id"]]["item"] == E["ready_hold_item"]
    assert latest(feed, "verdict")[ev["txn_id"]]["code"] == "hold_retargeted"


def test_a_return_of_a_book_not_on_loan_is_accepted_and_flagged(hub):
    van = Device("van-01", branch=CENTRAL)
    ev = van.checkin(E["available_item"])
    c = Client(hub.url, "van-01")
    c.push([ev])
    feed, _ = c.pull_all()
    item = latest(feed, "item")[E["available_item"]]
    # It belongs to the reading space, so from the central library it travels home.
    assert (item["status"], item["transit_to"]) == ("in_transit", SPACE)
    assert latest(feed, "verdict")[ev["txn_id"]]["code"] == "item_not_on_loan"


NEW_CARD = "431100900001"


@pytest.mark.parametrize("how", ["one batch, reversed", "loan first, registration later"])
def test_a_new_card_is_registered_before_the_loan_that_uses_it(hub, how):
    van = Device("van-01")
    reg = van.event("patron_registered", card=NEW_CARD, name="李春花", patron_type="adult",
                    home_branch=SPACE, expires_on="2029-11-25")
    loan = van.checkout(NEW_CARD, E["available_item"])
    c = Client(hub.url, "van-01")
    if how == "one batch, reversed":
        assert c.push([loan, reg]).json()["acked_through_seq"] == 2
    else:
        r = c.push([loan]).json()
        assert (r["acked_through_seq"], r["missing_seqs"]) == (0, [1])
        assert loan["txn_id"] not in c.verdicts()  # waits for the gap
        assert c.push([reg]).json()["acked_through_seq"] == 2
    feed, _ = c.pull_all()
    verdicts = latest(feed, "verdict")
    assert verdicts[reg["txn_id"]]["outcome"] == verdicts[loan["txn_id"]]["outcome"] == "ok"
    patron = latest(feed, "patron")[NEW_CARD]
    assert (patron["name"], patron["loan_count"]) == ("李春花", 1)


def test_a_loan_for_a_card_never_registered_gets_a_placeholder(hub):
    van = Device("van-01")
    ev = van.checkout("431100900077", E["available_item"])
    c = Client(hub.url, "van-01")
    c.push([ev])
    feed, _ = c.pull_all()
    assert latest(feed, "verdict")[ev["txn_id"]]["code"] == "patron_unknown"
    assert latest(feed, "patron")["431100900077"]["name"] == ""
    assert latest(feed, "loan")[ev["txn_id"]]["card"] == "431100900077"


def test_a_skewed_clock_is_corrected_by_anchors_and_a_future_time_is_flagged(hub):
    now = time.time_ns()
    van = Device("van-01", boot_id="boot-7")
    anchor = {"boot_id": "boot-7", "mono_ns": 100 * SECOND, "hub_time_ns": now - 3600 * SECOND,
              "rtt_ns": 50_000_000}
    # The van's wall clock thinks it is 2021; its monotonic clock is right.
    wrong_wall = 1_610_000_000 * SECOND
    placed = van.checkout(E["ok_patron"], E["available_item"], wall_ns=wrong_wall,
                          clock_synced=False, mono_ns=160 * SECOND)
    future = van.checkout(E["ok_patron"], E["available_item_2"], wall_ns=wrong_wall,
                          clock_synced=False, mono_ns=(100 + 2 * 86400) * SECOND)
    other_boot = Device("van-01", boot_id="boot-8", seq=2)
    unanchored = other_boot.checkout(E["ok_patron"], E["available_item_3"], wall_ns=now,
                                     clock_synced=False)
    c = Client(hub.url, "van-01")
    assert c.push([placed, future, unanchored], anchors=[anchor]).status_code == 200
    feed, _ = c.pull_all()
    loans, verdicts = latest(feed, "loan"), latest(feed, "verdict")
    expected = now - 3600 * SECOND + 60 * SECOND
    assert us(from_iso(loans[placed["txn_id"]]["loaned_at"], TZ)) == us(expected)
    assert verdicts[placed["txn_id"]]["corrected_time_ns"] == expected
    assert "clock_corrected" in verdicts[placed["txn_id"]]["codes"]
    assert "time_in_future" in verdicts[future["txn_id"]]["codes"]
    assert from_iso(loans[future["txn_id"]]["loaned_at"], TZ) <= time.time_ns()
    assert verdicts[unanchored["txn_id"]]["codes"] == ["clock_unverified"]
    assert us(from_iso(loans[unanchored["txn_id"]]["loaned_at"], TZ)) == us(now)


# -- the same end state, whatever the arrival order ----------------------------------------

PATRONS = ("431100000101", "431100000102", "431100000103", "431100000104")
ITEMS = ("00010000000101", "00020000000102", "00020000000103", "00029999999998")  # last unknown
BRANCHES = (SPACE, CENTRAL)


def _tiny_hub(path: Path) -> SqliteHubStore:
    store = SqliteHubStore.open(path)
    with Cache.open(path) as cache, cache.transaction() as conn:
        conn.execute("INSERT INTO branches (isil, name, kind) VALUES (?, '县图书馆', 'central'),"
                     " (?, '城东书房', '24h-space')", (CENTRAL, SPACE))
        conn.execute("INSERT INTO loan_rules (patron_type, loan_type, loan_days, max_renewals,"
                     " max_loans) VALUES ('*', '*', 30, 2, 10)")
        for card in PATRONS:
            conn.execute("INSERT INTO patrons (card_number, name, patron_type, home_branch)"
                         " VALUES (?, ?, 'adult', ?)", (card, f"读者{card[-3:]}", SPACE))
        for n, barcode in enumerate(ITEMS[:-1]):
            conn.execute("INSERT INTO items (barcode, title, owning_branch, current_branch)"
                         " VALUES (?, ?, ?, ?)", (barcode, f"书{n}", BRANCHES[n % 2],
                                                  BRANCHES[n % 2]))
        # One loan as loaded from the county's system: no event made it.
        conn.execute("INSERT INTO loans (item_id, patron_id, branch, loaned_at, due_date)"
                     " VALUES (1, 1, ?, '2026-01-05T09:00:00+08:00', '2026-02-04')", (SPACE,))
        conn.execute("UPDATE patrons SET loan_count = 1 WHERE id = 1")
    for device in DEVICES:
        store.add_device(device)
    return store


@st.composite
def timelines(draw):
    """A physically consistent day at two vans: who holds which book, step by step; some
    books come back through the book drop unscanned. Returns each van's events."""
    holder = {ITEMS[0]: PATRONS[0]}
    lent_by: dict[str, str] = {}
    devices = [Device("van-01", branch=SPACE), Device("van-02", branch=CENTRAL)]
    cards = list(PATRONS)
    base = time.time_ns() - 86400 * SECOND
    for step in range(draw(st.integers(4, 24))):
        wall = base + step * 7 * SECOND
        d = draw(st.integers(0, 1))
        dev = devices[d]
        item = draw(st.sampled_from(ITEMS))
        action = draw(st.sampled_from(("checkout", "checkout", "checkin", "drop", "renew",
                                       "register")))
        if action == "checkout" and holder.get(item) is None:
            card = draw(st.sampled_from(cards))
            dev.event("checkout", card=card, item=item, due_date=f"2027-01-{step + 1:02d}",
                      wall_ns=wall)
            holder[item], lent_by[item] = card, dev.device_id
        elif action == "checkin":
            dev.checkin(item, wall_ns=wall)
            holder[item] = None
            lent_by.pop(item, None)
        elif action == "drop" and holder.get(item):
            holder[item] = None  # returned through the book drop, never scanned
            lent_by.pop(item, None)
        elif action == "renew" and holder.get(item) and lent_by.get(item) == dev.device_id:
            dev.event("renew", card=holder[item], item=item, due_date=f"2027-02-{step + 1:02d}",
                      wall_ns=wall)
        elif action == "register" and d == 0 and len(cards) < 6:
            card = f"43110090{len(cards):04d}"
            dev.event("patron_registered", card=card, name=f"新读者{len(cards)}", wall_ns=wall)
            cards.append(card)  # only van-01 knows it, and lends to it after this
    return devices[0].events, devices[1].events


def _schedule(rnd: random.Random, streams: list[list[dict]]) -> list[tuple[int, list[dict]]]:
    """Each van's events cut into batches, the vans interleaved, some batches sent twice,
    and some arriving before the batch that precedes them."""
    batches = []
    for d, events in enumerate(streams):
        i, mine = 0, []
        while i < len(events):
            n = rnd.randint(1, 4)
            mine.append((d, events[i:i + n]))
            i += n
        for k in range(len(mine) - 1):
            if rnd.random() < 0.25:
                mine[k], mine[k + 1] = mine[k + 1], mine[k]
        batches.append(mine)
    out = []
    while batches[0] or batches[1]:
        d = rnd.choice([k for k in (0, 1) if batches[k]])
        out.append(batches[d].pop(0))
        if rnd.random() < 0.3:
            out.append(rnd.choice(out))  # a resend after a lost answer
    return out


def _state(store: SqliteHubStore) -> dict:
    with Cache.open(store.path) as cache:
        q = cache.conn.execute
        return {
            "loans": sorted(q(
                "SELECT i.barcode, p.card_number, l.loaned_at, l.due_date, l.renewals,"
                " l.returned_at, l.return_branch, l.checkout_txn, l.checkin_txn FROM loans l"
                " JOIN items i ON i.id = l.item_id JOIN patrons p ON p.id = l.patron_id"
            ).fetchall(), key=repr),
            "items": q("SELECT barcode, status, current_branch, transit_to, flags, updated_at"
                       " FROM items ORDER BY barcode").fetchall(),
            "patrons": q("SELECT card_number, name, loan_count FROM patrons"
                         " ORDER BY card_number").fetchall(),
            "events": q("SELECT device_id, count(*), count(DISTINCT txn_id), max(seq),"
                        " sum(state = 'stored') FROM hub_events GROUP BY device_id"
                        " ORDER BY device_id").fetchall(),
        }


def _run(folder: str, name: str, pushes: list[tuple[int, list[dict]]]) -> dict:
    store = _tiny_hub(Path(folder) / f"{name}.db")
    try:
        for n, (d, events) in enumerate(pushes):
            device = ("van-01", "van-02")[d]
            store.push(device, {"device_id": device, "events": events}, f"{name}-{n:04d}",
                       f"{name}-{n:04d}")
        store.apply_pending()
        return _state(store)
    finally:
        store.close()


@settings(max_examples=200 if os.environ.get("KIOSK_SOAK") else 30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(streams=timelines(), seed=st.integers(0, 2**32 - 1))
def test_any_arrival_order_ends_in_the_same_hub_state(streams, seed):
    one, two = streams
    in_time = sorted([(0, e) for e in one] + [(1, e) for e in two],
                     key=lambda de: de[1]["wall_ns"])
    with tempfile.TemporaryDirectory() as folder:
        expected = _run(folder, "in-time-order", [(d, [e]) for d, e in in_time])
        got = _run(folder, "shuffled", _schedule(random.Random(seed), [one, two]))
    assert got == expected
    for device_id, stored, distinct, last, unapplied in got["events"]:
        assert stored == distinct == last and unapplied == 0, device_id


def test_an_event_that_fails_to_apply_stays_stored_and_is_applied_later(hub, monkeypatch):
    import sync.hub.store as store_module

    real = store_module.apply_event

    def failing(conn, cfg, ev, now_ns):
        if ev.seq == 2:
            raise RuntimeError("a bug in the rules")
        return real(conn, cfg, ev, now_ns)

    monkeypatch.setattr(store_module, "apply_event", failing)
    van = Device("van-01")
    evs = [van.checkout(E["ok_patron"], E[k]) for k in
           ("available_item", "available_item_2", "available_item_3")]
    c = Client(hub.url, "van-01")
    r = c.push(evs)
    assert r.status_code == 200 and r.json()["acked_through_seq"] == 3  # stored: facts
    assert set(c.verdicts()) == {evs[0]["txn_id"]}  # 3 waits behind 2
    monkeypatch.setattr(store_module, "apply_event", real)
    assert c.push([van.checkin(E["available_item"])]).json()["acked_through_seq"] == 4
    assert set(c.verdicts()) == {e["txn_id"] for e in van.events}


def test_a_late_event_corrects_the_verdicts_of_earlier_returns(hub):
    now = time.time_ns()
    at = [now - (900 - 100 * k) * SECOND for k in range(6)]
    one, two = Device("van-01"), Device("van-02", branch=CENTRAL)
    c1, c2 = Client(hub.url, "van-01"), Client(hub.url, "van-02")
    # A return scanned at van-02 arrives before the loan it ends (lent at van-01 earlier).
    back = two.checkin(E["available_item"], wall_ns=at[1])
    c2.push([back])
    assert c2.verdicts()[back["txn_id"]]["code"] == "item_not_on_loan"
    lent = one.checkout(E["ok_patron"], E["available_item"], wall_ns=at[0])
    c1.push([lent])
    assert c2.verdicts()[back["txn_id"]]["outcome"] == "ok"
    assert latest(c1.pull_all()[0], "loan")[lent["txn_id"]]["checkin_txn"] == back["txn_id"]
    # The other way round: a return at van-01 arrives after a later scan at van-02.
    lent2 = one.checkout(E["ok_patron"], E["available_item_2"], wall_ns=at[2])
    c1.push([lent2])
    scan = two.checkin(E["available_item_2"], wall_ns=at[4])
    c2.push([scan])
    assert c2.verdicts()[scan["txn_id"]]["outcome"] == "ok"
    returned = one.checkin(E["available_item_2"], wall_ns=at[3])
    c1.push([returned])
    assert c2.verdicts()[scan["txn_id"]]["code"] == "item_not_on_loan"
    loan = latest(c1.pull_all()[0], "loan")[lent2["txn_id"]]
    assert loan["checkin_txn"] == returned["txn_id"]
    state = {(x["txn_id"], x["code"]): x["status"] for x in exceptions(hub)}
    assert state == {(back["txn_id"], "item_not_on_loan"): "resolved",
                     (scan["txn_id"], "item_not_on_loan"): "open"}


def test_anchors_from_a_heartbeat_place_later_events(hub):
    now = time.time_ns()
    c = Client(hub.url, "van-01")
    beat = {"device_id": "van-01", "sent_at_ns": 0, "state": "ready", "queue_depth": 1,
            "anchors": [{"boot_id": "boot-1", "mono_ns": 40 * SECOND,
                         "hub_time_ns": now - 1800 * SECOND}]}
    r = c.http.post(c.path("heartbeat"), json=beat, timeout=5)
    assert r.status_code == 200 and r.json()["hub_time_ns"] >= now
    bad = c.http.post(c.path("heartbeat"), json={**beat, "device_id": "van-02"}, timeout=5)
    assert bad.status_code == 422
    ev = Device("van-01").checkout(E["ok_patron"], E["available_item"], mono_ns=70 * SECOND,
                                   wall_ns=0, clock_synced=False)
    c.push([ev])
    verdict = c.verdicts()[ev["txn_id"]]
    assert verdict["corrected_time_ns"] == now - 1770 * SECOND
