"""Offline replay to a SIP2 library system (sync.sip2.replay), end to end: the kiosk lends
from its cache with no link, then the test ILS (tests/sip2_server.py, real TCP on loopback)
comes up and every event reaches it once; refusals are listed for staff."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from kiosk.cli import main
from kiosk.daemon.db import queue_report
from sync import outbox
from sync.clock import read
from sync.sip2.client import Sip2Client
from sync.sip2.messages import Checkin, Checkout, Renew
from sync.sip2.profiles import profile
from sync.sip2.replay import Replayer, pending
from tests.daemon_helpers import wait_until
from tests.sip2_server import INSTITUTION, Ils, Item, Patron, Sip2TestServer

SHANGHAI = ZoneInfo("Asia/Shanghai")
CARDS = ("C1", "C2")
BOOKS = ("B1", "B2", "B3", "B4")


def make_ils() -> Ils:
    ils = Ils()
    for card in CARDS:
        ils.add_patron(Patron(card, f"Reader {card}", "1234"))
    for book in BOOKS:
        ils.add_item(Item(book, f"Book {book}"))
    return ils


def client_for(port: int, **kwargs) -> Sip2Client:
    return Sip2Client("127.0.0.1", port, institution_id=INSTITUTION, login_user_id="kiosk",
                      login_password="secret", location_code="KIOSK-1", timeout=2.0,
                      connect_timeout=1.0, **kwargs)


def lend_offline(world) -> list[outbox.Event]:
    """Three loans and a return made by the kiosk from its cache, with no link at all."""
    for card in CARDS:
        world.patron(card)
    for book in BOOKS:
        world.item(book)
    circ = world.circulation()
    events = []
    for card, book in (("C1", "B1"), ("C1", "B2"), ("C2", "B3")):
        out = circ.checkout(card, book)
        assert out.allowed
        events += out.events
        world.clock.advance(60)
    events += circ.checkin("B2").events
    world.clock.advance(60)
    events += circ.renew("C1", "B1").events
    assert [e.kind for e in events] == ["checkout", "checkout", "checkout", "checkin", "renew"]
    return events


def replayer(world, port: int, name: str = "koha", **kwargs) -> Replayer:
    return Replayer(world.cache, client_for(port), profile(name), timezone=SHANGHAI, **kwargs)


def checkouts(server: Sip2TestServer) -> list[Checkout]:
    return [m for m in server.decoded() if isinstance(m, Checkout)]


def test_offline_loans_reach_the_ils_once_with_their_own_dates(world):
    events = lend_offline(world)
    with Sip2TestServer(make_ils()) as server:
        r = replayer(world, server.port)
        report = r.run_once()
        assert report.error is None and report.ok == 5 and report.pending == 0
        sent = checkouts(server)
        assert [(m.patron_identifier, m.item_identifier) for m in sent] == [
            ("C1", "B1"), ("C1", "B2"), ("C2", "B3")]
        assert all(m.no_block for m in sent)
        first = events[0]
        assert sent[0].transaction_date == datetime(2026, 11, 25, 10, 0, 0)
        assert sent[0].nb_due_date == datetime(2026, 12, 25, 23, 59, 59)
        assert first.payload["due_date"] == "2026-12-25"
        (checkin,) = [m for m in server.decoded() if isinstance(m, Checkin)]
        assert checkin.no_block and checkin.return_date == datetime(2026, 11, 25, 10, 3)
        (renew,) = [m for m in server.decoded() if isinstance(m, Renew)]
        assert renew.no_block and renew.item_identifier == "B1"
        ils = server.ils
        assert ils.checkouts == 3 and ils.items["B1"].charged_to == "C1"
        assert ils.items["B2"].charged_to is None and ils.items["B3"].charged_to == "C2"
        # Delivered events are acknowledged; a second pass sends nothing at all.
        assert outbox.depth(world.cache.conn) == 0
        before = len(server.received)
        again = r.run_once()
        assert again.ok == 0 and again.error is None
        assert [m for m in server.decoded()[before:] if m.code != "93"] == []


def test_nothing_listening_keeps_everything_queued(world):
    lend_offline(world)
    with Sip2TestServer(make_ils()) as server:
        port = server.port
    report = replayer(world, port).run_once()
    assert report.error is not None and not report.online
    assert report.pending == 5 and outbox.depth(world.cache.conn) == 5


@pytest.mark.parametrize("fault", ["drop_after", "drop_before"])
def test_dropped_connection_mid_replay_still_delivers_each_loan_once(world, fault):
    lend_offline(world)
    with Sip2TestServer(make_ils()) as server:
        r = replayer(world, server.port)
        r.client.connect()  # logged in; the fault hits the second checkout
        server.faults.skip = 1
        setattr(server.faults, fault, 1)
        first = r.run_once()
        assert first.error is not None and first.ok == 1
        state = world.one("SELECT state FROM sip2_outcomes WHERE seq = 2")
        assert state == "sending"  # sent, answer lost: on record before the request left
        second = r.run_once()
        assert second.error is None and second.pending == 0
        if fault == "drop_after":
            # Processed before the hang-up: the lookup finds it charged, no resend.
            assert second.confirmed == 1 and second.resent == 0
            assert [m.item_identifier for m in checkouts(server)] == ["B1", "B2", "B3"]
        else:
            assert second.confirmed == 0 and second.resent == 1
        ils = server.ils
        assert ils.checkouts == 3
        assert ils.items["B1"].renewals == 1  # the one renewal the kiosk made, no more
        assert ils.items["B3"].renewals == 0 and ils.items["B3"].charged_to == "C2"
        assert outbox.depth(world.cache.conn) == 0
        attempts = world.one("SELECT attempts FROM sip2_outcomes WHERE seq = 2")
        assert attempts == (1 if fault == "drop_after" else 2)


def test_a_system_refusing_no_block_leaves_exceptions_for_staff(world, capsys):
    lend_offline(world)
    with Sip2TestServer(make_ils()) as server:
        server.faults.refuse_no_block = True
        report = replayer(world, server.port, "folio").run_once()
        # Three loans refused; the renewal of a loan the system never recorded with them.
        assert report.error is None and report.refused == 4 and report.ok == 1
        assert {r["code"] for r in report.refusals} == {"no_block_ignored"}
        assert server.ils.checkouts == 0
    listed = queue_report(world.cache.conn, 50)
    assert listed["flagged_total"] == 4 and listed["depth"] == 0
    rows = [f for f in listed["flagged"] if f.get("source") == "sip2"]
    assert [(f["kind"], f["card"], f["item"], f["outcome"]) for f in rows] == [
        ("checkout", "C1", "B1", "refused"), ("checkout", "C1", "B2", "refused"),
        ("checkout", "C2", "B3", "refused"), ("renew", "C1", "B1", "refused")]
    assert rows[0]["message"] == "No-block transactions are not accepted"
    assert main(["--lang", "en", "--db", str(world.path), "queue"]) == 0
    out = capsys.readouterr().out
    assert "Transactions the library system refused over SIP2" in out
    assert "no_block_ignored  No-block transactions are not accepted" in out


def test_unknown_item_on_a_system_honouring_no_block_is_refused(world):
    world.patron("C1")
    world.item("B9")  # the cache knows it, the library system does not
    world.circulation().checkout("C1", "B9")
    with Sip2TestServer(make_ils()) as server:
        report = replayer(world, server.port, "koha").run_once()
    assert report.refused == 1 and report.refusals[0]["code"] == "refused"


def register_offline(world, card: str) -> None:
    with world.cache.transaction() as conn:
        outbox.append(conn, device_id="test-01", kind="patron_registered",
                      payload={"card": card, "name": "新读者"}, reading=read(world.clock))
        outbox.append(conn, device_id="test-01", kind="staff_action",
                      payload={"action": "desk_register"}, reading=read(world.clock))
    world.patron(card)
    world.item("B1")
    assert world.circulation().checkout(card, "B1").allowed


def test_new_reader_waits_for_staff_then_goes_through(world, capsys):
    register_offline(world, "N1")
    ils = make_ils()
    with Sip2TestServer(ils, charset="gb18030") as server:
        r = Replayer(world.cache, client_for(server.port, charset="gb18030"), profile("koha"),
                     timezone=SHANGHAI)
        report = r.run_once()
        assert report.error is None and report.waiting == 2 and report.not_applicable == 1
        assert checkouts(server) == []  # the new reader's loan waits with the registration
        listed = queue_report(world.cache.conn, 50)
        assert [(w["kind"], w["code"], w["system"]) for w in listed["sip2_waiting"]] == [
            ("patron_registered", "no_registration_path", "Koha"),
            ("checkout", "card_not_registered", "Koha")]
        assert listed["depth"] == 2  # the staff action was acknowledged locally
        code = main(["--lang", "en", "--db", str(world.path), "queue"])
        out = capsys.readouterr().out
        assert code == 0
        assert ("waiting: the library system has no registration path over SIP2; register "
                "the reader in Koha by hand (card N1)") in out
        assert "waiting: the reader's card N1 is not in Koha yet" in out
        # Staff enter the reader in Koha by hand: the next pass sees it and sends the loan.
        ils.add_patron(Patron("N1", "新读者", "0000"))
        again = r.run_once()
        assert again.ok == 2 and again.waiting == 0 and again.pending == 0
        assert [m.patron_identifier for m in checkouts(server)] == ["N1"]
    assert queue_report(world.cache.conn, 50)["sip2_waiting"] == []


def test_beside_a_hub_events_the_hub_already_had_are_not_replayed(world):
    events = lend_offline(world)
    with world.cache.transaction() as conn:
        outbox.acknowledge(conn, "test-01", events[1].seq, "2026-11-25T02:10:00+00:00")
    with Sip2TestServer(make_ils()) as server:
        r = replayer(world, server.port, acknowledge=False)
        r.run_once()  # remembers where SIP2 began: after seq 2
        assert [m.item_identifier for m in checkouts(server)] == ["B3"]
        # The hub acknowledges the rest: SIP2 still owes nothing, and sends nothing twice.
        with world.cache.transaction() as conn:
            outbox.acknowledge(conn, "test-01", events[-1].seq, "2026-11-25T02:20:00+00:00")
        assert pending(world.cache.conn) == []
        assert len(checkouts(server)) == 1
    row = world.one("SELECT value FROM local_state WHERE key = 'sip2.replay_from'")
    assert json.loads(row) == {"test-01": 2}


# -- the daemon's SIP2 worker ---------------------------------------------------------------




def test_daemon_replays_its_loans_to_the_ils_while_lending_goes_on(capsys):
    from tests.daemon_helpers import (
        BOOKS as D_BOOKS,
    )
    from tests.daemon_helpers import (
        CARDS as D_CARDS,
    )
    from tests.daemon_helpers import (
        kiosk,
        make_world,
        remove_tree,
        running,
        settings_for,
        short_dir,
        write_config,
    )

    ils = Ils()
    ils.add_patron(Patron(D_CARDS[0], "Reader", "1234"))
    for book in D_BOOKS[:2]:
        ils.add_item(Item(book, "Book"))
    folder = short_dir()
    try:
        make_world(folder / "kiosk.db")
        (folder / "pw").write_text("secret\n", encoding="utf-8")
        with Sip2TestServer(ils) as server:
            extra = (f'[sip2]\nenabled = true\nhost = "127.0.0.1"\nport = {server.port}\n'
                     f'login_user = "kiosk"\npassword_file = "pw"\n'
                     f'institution_id = "{INSTITUTION}"\nprofile = "koha"\nretry_s = 1\n'
                     "timeout_ms = 2000\nconnect_timeout_ms = 1000\n")
            config = write_config(folder, folder / "kiosk.db", extra=extra)
            with running(settings_for(config)) as d:
                code, out, err = kiosk(capsys, folder, "circ", "checkout", "--card",
                                       D_CARDS[0], "--item", D_BOOKS[0])
                assert code == 0, (out, err)
                assert wait_until(lambda: ils.items[D_BOOKS[0]].charged_to == D_CARDS[0])
                assert d.daemon is not None and d.daemon.unhealthy() == []
                code, out, _ = kiosk(capsys, folder, "status", "--json")
                sip2 = json.loads(out)["sip2"]
                assert sip2["online"] is True and sip2["profile"] == "koha"
                assert wait_until(lambda: json.loads(
                    kiosk(capsys, folder, "queue", "--json")[1])["depth"] == 0)
            assert len(checkouts(server)) == 1 and ils.checkouts == 1
    finally:
        remove_tree(folder)
