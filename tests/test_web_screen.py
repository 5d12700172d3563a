"""The touchscreen's model (kiosk.web.screen) and account helpers, without a browser: what
the page is told to draw for each sequence of daemon events."""

from __future__ import annotations

import subprocess

import pytest

from kiosk.messages import Catalogue
from kiosk.web.account import mask_name, record_rating
from kiosk.web.screen import Screen
from kiosk.web.server import ESPEAK_VOICES
from sync import db


def started(screen: Screen, session: int = 1, card: str | None = "4311****0001") -> None:
    screen.feed({"event": "session_started", "session": session, "mode": "lend", "card": card})


def lines(screen: Screen) -> dict[str, str]:
    return {line["barcode"]: line["state"] for line in screen.view()["session"]["lines"]}


def test_a_book_shows_lent_only_when_the_daemon_says_lent() -> None:
    screen = Screen()
    started(screen)
    screen.feed({"event": "loan_committed", "session": 1, "uid": "E0", "barcode": "B1"})
    assert lines(screen) == {"B1": "working"}  # committed, flag not yet verified
    screen.feed({"event": "lent", "session": 1, "uid": "E0", "barcode": "B1",
                 "message_key": "circ.checkout.ok",
                 "params": {"title": "活着", "due_date": "2026-12-26"}})
    line = screen.view()["session"]["lines"][0]
    assert (line["state"], line["title"], line["due_date"]) == ("lent", "活着", "2026-12-26")


def test_a_loan_undone_after_its_flag_failed_ends_not_lent() -> None:
    screen = Screen()
    started(screen)
    screen.feed({"event": "loan_committed", "session": 1, "uid": "E0", "barcode": "B1"})
    screen.feed({"event": "not_lent", "session": 1, "uid": "E0", "barcode": "B1",
                 "message_key": "daemon.book.not_secured", "params": {"title": "T"}})
    line = screen.view()["session"]["lines"][0]
    assert (line["state"], line["message_key"]) == ("not_lent", "daemon.book.not_secured")


def test_hand_to_staff_is_added_to_a_returned_book_not_replacing_it() -> None:
    screen = Screen()
    started(screen, card=None)
    screen.feed({"event": "returned", "session": 1, "uid": "E0", "barcode": "B1",
                 "message_key": "circ.checkin.ok", "params": {"title": "T"}})
    screen.feed({"event": "hand_to_staff", "session": 1, "uid": "E0", "barcode": "B1",
                 "message_key": "daemon.book.flag_not_reset", "params": {"title": "T"}})
    line = screen.view()["session"]["lines"][0]
    assert line["state"] == "returned"
    assert line["staff"]["message_key"] == "daemon.book.flag_not_reset"


def test_events_of_another_session_are_ignored() -> None:
    screen = Screen()
    started(screen, session=2)
    assert not screen.feed({"event": "lent", "session": 1, "uid": "E0", "barcode": "B1",
                            "params": {}})
    assert lines(screen) == {}


def test_a_new_session_starts_with_no_lines_of_the_previous_patron() -> None:
    screen = Screen()
    started(screen, session=1)
    screen.feed({"event": "lent", "session": 1, "uid": "E0", "barcode": "B1", "params": {}})
    screen.feed({"event": "session_ended", "session": 1, "reason": "new_card", "receipts": 1})
    started(screen, session=2, card="4311****0002")
    view = screen.view()
    assert view["screen"] == "session" and view["session"]["lines"] == []
    assert view["session"]["card"] == "4311****0002"


def test_the_done_screen_tracks_the_receipt_and_asks_for_a_rating_once() -> None:
    screen = Screen(done_s=20)
    started(screen)
    screen.feed({"event": "lent", "session": 1, "uid": "E0", "barcode": "B1", "params": {}})
    screen.feed({"event": "session_ended", "session": 1, "reason": "finished", "receipts": 1,
                 "mono": 100.0})
    done = screen.view()["done"]
    assert (done["receipt"], done["ask_rating"], len(done["lines"])) == ("printing", True, 1)
    screen.feed({"event": "receipt_failed", "session": 1, "kind": "loan",
                 "message_key": "daemon.receipt.not_printed_loan", "params": {}})
    assert screen.view()["done"]["receipt"] == "failed"
    assert screen.rated(1) and not screen.rated(1)
    assert not screen.tick(119.0)
    assert screen.tick(120.0)
    assert screen.view()["screen"] == "idle"


def test_a_timed_out_session_asks_no_rating() -> None:
    screen = Screen()
    started(screen)
    screen.feed({"event": "session_ended", "session": 1, "reason": "timeout", "receipts": 0})
    done = screen.view()["done"]
    assert (done["ask_rating"], done["receipt"]) == (False, "none")
    assert not screen.rated(1)


def test_the_warning_shows_until_the_patron_answers_or_something_happens() -> None:
    screen = Screen()
    started(screen)
    screen.feed({"event": "warning", "session": 1, "message_key": "daemon.session.warning",
                 "params": {"seconds": 15}})
    assert screen.view()["session"]["warning"]["params"] == {"seconds": 15}
    assert screen.still_here()
    assert screen.view()["session"]["warning"] is None
    screen.feed({"event": "warning", "session": 1, "params": {"seconds": 15}})
    screen.feed({"event": "lent", "session": 1, "uid": "E1", "barcode": "B2", "params": {}})
    assert screen.view()["session"]["warning"] is None


def test_devices_offline_and_door_alarm_are_shown() -> None:
    screen = Screen()
    screen.feed({"event": "device", "device": "tag_reader", "online": False})
    screen.feed({"event": "door_alarm", "name": "door"})
    view = screen.view()
    assert view["daemon"]["offline"] == ["tag_reader"] and view["door_alarm"]
    screen.feed({"event": "device", "device": "tag_reader", "online": True})
    screen.feed({"event": "door_alarm_cleared", "name": "door"})
    view = screen.view()
    assert view["daemon"]["offline"] == [] and not view["door_alarm"]


def test_the_view_is_a_copy() -> None:
    screen = Screen()
    started(screen)
    screen.view()["session"]["lines"].append("x")
    assert screen.view()["session"]["lines"] == []


@pytest.mark.parametrize(("name", "shown"), [
    ("王芳", "王*"), ("欧阳修", "欧*修"), ("司马相如", "司**如"), ("Anna Lee", "A*** L**"),
    ("", ""), ("李", "李"),
])
def test_names_on_the_screen_are_masked(name: str, shown: str) -> None:
    assert mask_name(name) == shown


def test_a_rating_outside_1_to_5_is_refused(tmp_path) -> None:
    cache = db.create(tmp_path / "kiosk.db")  # the real schema of daily_stats
    conn = cache.conn
    record_rating(conn, "2026-11-25", "B", 5)
    with pytest.raises(ValueError, match="1 to 5"):
        record_rating(conn, "2026-11-25", "B", 6)
    assert conn.execute("SELECT metric, value FROM daily_stats").fetchall() == [("rating.5", 1)]
    cache.close()


@pytest.mark.parametrize("lang", sorted(ESPEAK_VOICES))
def test_each_language_has_an_espeak_voice_that_speaks(tmp_path, lang: str) -> None:
    """The voice names the server gives espeak-ng exist: a prompt becomes real audio."""
    wav = tmp_path / "prompt.wav"
    prompt = Catalogue(lang).text("ui.idle.tap_card")
    done = subprocess.run(["espeak-ng", "-v", ESPEAK_VOICES[lang], "-w", str(wav), "--", prompt],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "does not exist" not in done.stderr.lower()
    assert wav.stat().st_size > 8000  # about half a second of speech, not a bare header
