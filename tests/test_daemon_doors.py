"""Scenario tests of the daemon's doors: hold pickup from a locker, night entry through the
entrance door, and the alarm for a door left open.

The whole daemon runs in this process (tests/daemon_helpers.py) on the simulated 24-hour
space: lockers and the entrance door are gpiozero mock pins driven by the simulated doors
(a person pushes a door once its latch is released, unless the lock is jammed), and the
entrance card reader is a second simulated MFRC522 read by the real driver.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiosk.cli import main
from kiosk.daemon.control import ControlError
from kiosk.daemon.entrance import ENTRY_REASONS
from kiosk.daemon.state import Finish
from kiosk.messages import texts
from sync import db
from sync.rules import Reason
from tests.daemon_helpers import (
    BOOKS,
    CARDS,
    make_world,
    remove_tree,
    running,
    settings_for,
    short_dir,
    write_config,
)
from tests.invariants import violations

HERE = "CN-431121-0002"
# A short wait for a locker door: a jammed lock is given up on within a second.
FAST_LOCKERS = "[lockers]\nopen_timeout_ms = 1000\n"


@pytest.fixture
def space():
    folder = short_dir()
    make_world(folder / "kiosk.db")
    yield folder
    remove_tree(folder)


def _settings(folder: Path, extra: str = FAST_LOCKERS):
    return settings_for(write_config(folder, folder / "kiosk.db", doors=True, extra=extra))


def _sql(folder: Path, statement: str, *args: object) -> list[tuple]:
    with db.Cache.open(folder / "kiosk.db") as cache:
        return cache.conn.execute(statement, args).fetchall()


def _add_hold(folder: Path, card: str, barcode: str, slot: str | None) -> int:
    """A hold of ``card`` on ``barcode``, ready in locker ``slot`` at this branch."""
    with db.Cache.open(folder / "kiosk.db") as cache, cache.transaction() as conn:
        conn.execute("UPDATE items SET status = 'on_hold_shelf' WHERE barcode = ?", (barcode,))
        return conn.execute(
            "INSERT INTO holds (patron_id, item_id, pickup_branch, status, locker_slot,"
            " placed_at, ready_at, pickup_expires_on) SELECT p.id, i.id, ?, 'ready', ?,"
            " '2026-11-20T10:00:00+08:00', '2026-11-24T10:00:00+08:00', '2099-12-31'"
            " FROM patrons p, items i WHERE p.card_number = ? AND i.barcode = ?"
            " RETURNING id", (HERE, slot, card, barcode)).fetchone()[0]


def _block(folder: Path, card: str) -> None:
    with db.Cache.open(folder / "kiosk.db") as cache, cache.transaction() as conn:
        conn.execute("INSERT INTO patron_blocks (patron_id, reason, created_at) SELECT id,"
                     " 'lost_items', '2026-11-01' FROM patrons WHERE card_number = ?", (card,))


def _hold_status(folder: Path, hold_id: int) -> str:
    return _sql(folder, "SELECT status FROM holds WHERE id = ?", hold_id)[0][0]


def _loans(folder: Path) -> dict[str, str]:
    with db.Cache.open(folder / "kiosk.db") as cache:
        assert violations(cache.conn) == []
        return dict(cache.conn.execute(
            "SELECT i.barcode, p.card_number FROM loans l JOIN items i ON i.id = l.item_id"
            " JOIN patrons p ON p.id = l.patron_id WHERE l.returned_at IS NULL").fetchall())


def _outbox(folder: Path) -> list[str]:
    return [r[0] for r in _sql(folder, "SELECT kind FROM outbox ORDER BY seq")]


def _stats(folder: Path) -> dict[str, int]:
    return dict(_sql(folder, "SELECT metric, sum(value) FROM daily_stats GROUP BY metric"))


def _door_events(k, name: str) -> list[str]:
    sims = k.sims.entrance if name == "door" else k.sims.locker_doors
    return [e.what for e in sims.events[name]]


# -- hold pickup ------------------------------------------------------------------------------


def test_a_ready_hold_is_collected_only_once_its_locker_opened(space):
    card, book = CARDS[0], BOOKS[0]
    hold = _add_hold(space, card, book, "A02")
    with running(_settings(space)) as k:
        k.tap(card)
        started = k.wait_for("session_started", mode="lend")
        assert started["holds"] == [{"hold_id": hold, "title": f"书{book}", "barcode": book,
                                     "slot": "A02", "expires_on": "2099-12-31"}]
        assert k.control("status")["session"]["holds"][0]["state"] == "ready"
        assert k.control("session", action="pickup", hold=hold) == {"done": "pickup",
                                                                    "hold": hold}
        told = k.wait_for("picked_up", hold_id=hold)
        opened = k.wait_for("locker_opened", hold_id=hold)
        assert opened["slot"] == "A02" and opened["seq"] < told["seq"]
        assert told["slot"] == "A02" and told["barcode"] == book
        assert told["message_key"] == "circ.pickup.ok"
        assert told["params"]["title"] == f"书{book}" and told["params"]["due_date"]
        # The door really moved: its latch was released and the person opened it.
        moved = [e for e in _door_events(k, "A02") if e in ("energised", "opened")]
        assert moved[:2] == ["energised", "opened"]
        assert "energised" not in _door_events(k, "A01")
        k.put(Finish())
        printed = k.wait_for("receipt_printed", kind="loan")
        assert printed["items"] == 1
        receipt = k.sims.printer.jobs[-1].text
        assert "借书凭条" in receipt and f"书{book}" in receipt
    assert _hold_status(space, hold) == "fulfilled"
    assert _loans(space) == {book: card}
    assert _outbox(space) == ["pickup"]
    txn = _sql(space, "SELECT fulfilled_txn FROM holds WHERE id = ?", hold)[0][0]
    assert txn == told["txn_id"]
    assert _stats(space)["pickups"] == 1


def test_a_jammed_locker_leaves_the_hold_ready_and_records_nothing(space, capsys):
    card, book = CARDS[1], BOOKS[1]
    hold = _add_hold(space, card, book, "A01")
    config = write_config(space, space / "kiosk.db", doors=True, extra=FAST_LOCKERS)
    with running(settings_for(config)) as k:
        assert main(["--lang", "en", "--config", str(config), "sim", "door", "jam",
                     "--name", "A01"]) == 0
        k.tap(card)
        k.wait_for("session_started")
        code = main(["--lang", "en", "--config", str(config), "sim", "pickup", str(hold)])
        assert code == 0 and f"Hold {hold} chosen" in capsys.readouterr().out
        failed = k.wait_for("pickup_failed", hold_id=hold)
        assert failed["message_key"] == "daemon.pickup.not_opened"
        assert failed["params"]["slot"] == "A01" and failed["params"]["title"] == f"书{book}"
        assert "jammed" in _door_events(k, "A01") and "opened" not in _door_events(k, "A01")
        assert k.kinds("picked_up", "locker_opened") == []
        assert _hold_status(space, hold) == "ready" and _outbox(space) == []
        # Once the lock works again the patron tries again, and gets the book.
        k.sims.locker_doors.clear("A01")
        mark = k.mark()
        k.control("session", action="pickup", hold=hold)
        k.wait_for("picked_up", start=mark, hold_id=hold)
    assert _hold_status(space, hold) == "fulfilled" and _outbox(space) == ["pickup"]


def test_another_patrons_hold_is_refused_and_nothing_opens(space):
    owner, other = CARDS[2], CARDS[3]
    hold = _add_hold(space, owner, BOOKS[2], "A03")
    with running(_settings(space)) as k:
        k.tap(other)
        started = k.wait_for("session_started")
        assert started["holds"] == []
        k.control("session", action="pickup", hold=hold)
        refused = k.wait_for("pickup_failed", hold_id=hold)
        assert refused["message_key"] == "daemon.pickup.unknown_hold"
        assert "title" not in refused["params"]  # another patron's book is not named
        k.control("session", action="pickup", hold=9999)
        assert k.wait_for("pickup_failed", hold_id=9999)["message_key"] == (
            "daemon.pickup.unknown_hold")
        assert not any("energised" in _door_events(k, slot) for slot in ("A01", "A02", "A03",
                                                                           "A04"))
    assert _hold_status(space, hold) == "ready" and _outbox(space) == [] and _loans(space) == {}


def test_the_rules_are_asked_before_a_locker_opens(space):
    card = CARDS[4]
    hold = _add_hold(space, card, BOOKS[4], "A04")
    _block(space, card)
    with running(_settings(space)) as k:
        k.tap(card)
        assert [h["hold_id"] for h in k.wait_for("session_started")["holds"]] == [hold]
        k.control("session", action="pickup", hold=hold)
        refused = k.wait_for("pickup_failed", hold_id=hold)
        assert refused["message_key"] == "circ.reason.patron_blocked"
        assert "energised" not in _door_events(k, "A04")
    assert _hold_status(space, hold) == "ready" and _outbox(space) == []


def test_a_pickup_needs_a_card_session(space):
    with running(_settings(space)) as k:
        from kiosk.daemon.control import ControlError

        with pytest.raises(ControlError) as caught:
            k.control("session", action="pickup", hold=1)
        assert caught.value.code == "no_card_session"
        with pytest.raises(ControlError):
            k.control("session", action="pickup", hold="1")


# -- night entry -----------------------------------------------------------------------------


def _at_entrance(k, card: str) -> dict:
    return k.control("sim", device="entrance_card", action="place", card_number=card)


def test_a_valid_card_at_the_entrance_opens_the_door_and_counts_a_visit(space, capsys):
    config = write_config(space, space / "kiosk.db", doors=True)
    with running(settings_for(config)) as k:
        code = main(["--lang", "en", "--config", str(config), "sim", "entry-card",
                     "--card", CARDS[5]])
        assert code == 0 and "entrance reader" in capsys.readouterr().out
        entry = k.wait_for("entry")
        assert entry["card"].endswith(CARDS[5][-4:]) and CARDS[5] not in entry["card"]
        assert entry["message_key"] == "daemon.entry.welcome" and not entry["was_open"]
        assert "opened" in _door_events(k, "door")
        # The entrance is not the kiosk: no patron session started.
        assert k.kinds("session_started") == [] and k.control("status")["session"] is None
        assert k.control("status")["devices"]["entrance_reader"]["online"]
    assert _stats(space).get("visits") == 1
    assert _outbox(space) == []


@pytest.mark.parametrize(("who", "reason"), [("blocked", "patron_blocked"),
                                             ("unknown", "patron_unknown")])
def test_a_blocked_or_unknown_card_leaves_the_door_shut(space, who, reason):
    card = CARDS[6] if who == "blocked" else "431100009999"
    if who == "blocked":
        _block(space, card)
    with running(_settings(space)) as k:
        _at_entrance(k, card)
        refused = k.wait_for("entry_refused")
        assert refused["reason"] == reason
        assert refused["message_key"] == f"daemon.entry.{reason}"
        assert "energised" not in _door_events(k, "door")
        assert not k.sims.entrance.is_open("door")
        assert k.kinds("entry") == []
    stats = _stats(space)
    assert "visits" not in stats and stats[f"refused.entry.{reason}"] == 1


def test_every_reason_to_refuse_entry_has_a_text():
    reasons = {str(r) for r in Reason}
    assert set(ENTRY_REASONS) <= reasons
    for language in ("zh-CN", "en"):
        known = texts(language)
        assert all(f"daemon.entry.{r}" in known for r in ENTRY_REASONS)


def test_an_entrance_door_that_does_not_open_counts_no_visit(space):
    with running(_settings(space)) as k:
        k.sims.entrance.inject("door", "jammed")
        # Shorten the wait for the jammed door (the default is 8 s).
        door = k.devices.door.latched_door
        door.open_timeout_s = 0.5
        door.pulse_s = 0.3
        _at_entrance(k, CARDS[7])
        failed = k.wait_for("entry_failed")
        assert failed["message_key"] == "daemon.entry.door_failed"
        assert "jammed" in _door_events(k, "door")
    assert "visits" not in _stats(space)


# -- doors left open ---------------------------------------------------------------------------


def test_a_door_left_open_raises_the_alarm_until_it_closes(space, capsys):
    extra = "[door]\nleft_open_after_s = 1\n[lockers]\nleft_open_after_s = 1\n"
    config = write_config(space, space / "kiosk.db", doors=True, extra=extra)
    with running(settings_for(config)) as k:
        k.control("sim", device="door", action="open")
        k.wait_for("door", name="door", open=True)
        assert k.kinds("door_alarm") == []
        alarm = k.wait_for("door_alarm", name="door", timeout=5)
        assert alarm["message_key"] == "device.door_left_open"
        status = k.control("status")
        assert status["door_alarms"] == ["door"] and status["devices"]["door"]["left_open"]
        k.control("sim", device="door", action="close")
        k.wait_for("door_alarm_cleared", name="door")
        assert k.control("status")["door_alarms"] == []
        # A locker slot left open after a pickup: the same.
        k.control("sim", device="door", action="open", name="A03")
        k.wait_for("door_alarm", name="A03", timeout=5)
        assert k.control("status")["door_alarms"] == ["A03"]
        main(["--lang", "en", "--config", str(config), "status"])
        assert "lockers A03" in capsys.readouterr().out
        k.control("sim", device="door", action="close", name="A03")
        k.wait_for("door_alarm_cleared", name="A03")
        assert k.control("status")["door_alarms"] == []


# -- the self-test ------------------------------------------------------------------------------


def test_the_daemons_selftest_releases_latches_only_when_asked(space, capsys):
    config = write_config(space, space / "kiosk.db", doors=True, extra=FAST_LOCKERS)
    slots = ["A01", "A02", "A03", "A04"]
    with running(settings_for(config)) as k:
        code = main(["--lang", "en", "--config", str(config), "selftest", "lockers", "door",
                     "--json"])
        report = json.loads(capsys.readouterr().out)
        assert code == 0 and report["ok"]
        assert [c["check"] for c in report["devices"][0]["checks"]] == \
            [f"sensor:{s}" for s in slots] + ["latches"]
        assert [c["check"] for c in report["devices"][1]["checks"]] == ["sensor", "latches"]
        for name in [*slots, "door"]:
            assert "energised" not in _door_events(k, name), name
        # With --latches every locker's latch is pulsed and its door seen to open.
        code = main(["--lang", "en", "--config", str(config), "selftest", "--latches",
                     "lockers", "--json"])
        report = json.loads(capsys.readouterr().out)
        assert code == 0 and report["ok"]
        assert [c["check"] for c in report["devices"][0]["checks"]] == \
            [f"latch:{s}" for s in slots]
        for name in slots:
            assert {"energised", "opened"} <= set(_door_events(k, name)), name
        assert "energised" not in _door_events(k, "door")
        with pytest.raises(ControlError) as refused:
            k.control("selftest", devices=["door"], latches="yes")
        assert refused.value.code == "bad_arguments"
        assert "energised" not in _door_events(k, "door")
