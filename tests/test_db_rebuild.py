"""``kiosk db rebuild``: a new cache from the county hub (the reference hub, over HTTP on
loopback), carrying over what exists only on the device: unacknowledged events, the outbox
counters, readers registered here, the numbers issued from card ranges. Corrupt files are
made by overwriting real pages with garbage."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from kiosk.cli import main
from sync import cardnumbers, db, outbox, rebuild
from sync.circulation import Circulation, Identity
from sync.hub.testing import HubServer
from sync.personal import create_key_file, load_keys
from sync.policy import Policy, Station
from sync.registration import Registrar
from sync.sample import EDGE_CASES as E
from sync.syncer import Syncer, SyncReport
from tests.conftest import NOON_ISH, ManualClock
from tests.daemon_helpers import remove_tree, running, settings_for, short_dir, write_config
from tests.test_registration import APP, COUNTY_SECRET
from tests.test_sync_client import FAST as _FAST
from tests.test_sync_client import client_for

DEVICE = "sim-01"  # the device id of tests.daemon_helpers.write_config
TOKEN = "sim-01-token-0123456789"
SPACE = "CN-431121-0002"
GARBAGE = bytes(range(256)) * 16  # one 4 KiB page
# Only the outbox and the feed matter here (the daily figures are sent by their own tests).
FAST = dataclasses.replace(_FAST, **({"stats": False} if hasattr(_FAST, "stats") else {}))


@pytest.fixture
def folder():
    path = short_dir("rb-")
    yield path
    remove_tree(path)


@pytest.fixture
def hub(folder):
    with HubServer(folder / "hub.db", sample="small", devices={DEVICE: TOKEN}) as server:
        yield server


class Kiosk:
    """A device's cache made the way the kiosk makes it: synced with the hub, a card range
    leased, then transactions of which the first are acknowledged and the rest are not."""

    def __init__(self, hub: HubServer, folder: Path) -> None:
        self.path = folder / "kiosk.db"
        self.clock = ManualClock(NOON_ISH, boot_id="boot-before")
        self.keys = load_keys(create_key_file(folder / "personal.keys", COUNTY_SECRET))
        self.acked: list[str] = []
        self.unacked: list[str] = []
        with db.create(self.path) as cache, client_for(hub.url, self.clock, device=DEVICE,
                                                        token=TOKEN) as client:
            syncer = Syncer(cache, client, options=FAST)
            assert syncer.run_once().ok
            client.lease_card_range(size=20)
            assert syncer.run_once().ok
            identity = Identity(DEVICE, SPACE, station=Station.DESK)
            circ = Circulation(cache, identity, Policy(), self.clock)
            registrar = Registrar(cache, identity, self.keys, self.clock)
            first = registrar.register(APP)  # acknowledged below
            assert circ.checkout(E["ok_patron"], E["available_item"]).allowed
            assert syncer.run_once().ok
            self.clock.advance(60)
            self.reader = registrar.register(
                replace(APP, id_number=_other_id(), name="李春花")).card_number
            assert circ.checkout(self.reader, E["available_item_2"]).allowed
            assert circ.checkin(E["available_item"]).allowed
            with cache.snapshot() as conn:
                rows = conn.execute("SELECT txn_id, acked_at FROM outbox ORDER BY seq")
                for txn, acked in rows:
                    (self.acked if acked else self.unacked).append(txn)
                self.max_hlc = conn.execute("SELECT max(hlc) FROM outbox").fetchone()[0]
                self.next_number = conn.execute(
                    "SELECT next_number FROM card_ranges").fetchone()[0]
            cache.checkpoint(truncate=True)
        self.first_card = first.card_number
        assert len(self.acked) == 2 and len(self.unacked) == 3


def _other_id() -> str:
    from sync.idnumbers import check_character

    return "43010219900101002" + check_character("43010219900101002")


def _pages(path: Path, table: str) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = ? ORDER BY pageno", (table,))]


def _overwrite(path: Path, pages: list[int], page_size: int = 4096) -> None:
    with open(path, "r+b") as fh:
        for page in pages:
            fh.seek((page - 1) * page_size)
            fh.write(GARBAGE[:page_size])


def _config(folder: Path, hub: HubServer | None, **hub_settings: str) -> Path:
    extra = ""
    if hub is not None:
        token = folder / "hub-token"
        token.write_text(TOKEN + "\n")
        extra = (f'[hub]\nurl = "{hub_settings.get("url", hub.url)}"\n'
                 f'token_file = "{token}"\nretry_initial_ms = 10\nretry_max_s = 1\n')
    return write_config(folder, folder / "kiosk.db", extra=extra)


def _rebuild(config: Path, *args: str, capsys) -> tuple[int, str, str]:
    code = main(["--lang", "en", "--config", str(config), "db", "rebuild", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _hub_events(hub: HubServer) -> list[tuple[int, str]]:
    hub.store.apply_pending()
    with sqlite3.connect(hub.db_path) as h:
        return h.execute("SELECT seq, txn_id FROM hub_events WHERE device_id = ?"
                         " ORDER BY seq", (DEVICE,)).fetchall()


def _damaged(path: Path) -> bool:
    try:
        with sqlite3.connect(path) as conn:
            return conn.execute("PRAGMA quick_check").fetchall() != [("ok",)]
    except sqlite3.DatabaseError:
        return True


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _kept(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if ".before-rebuild-" in p.name
                  and not p.name.endswith(("-wal", "-shm")))


# -- the whole story -----------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["items_pages", "outbox_and_schema_pages"])
def test_a_corrupt_cache_is_rebuilt_and_every_event_reaches_the_hub_once(
        hub, folder, capsys, damage):
    k = Kiosk(hub, folder)
    if damage == "items_pages":
        pages = _pages(k.path, "items")[1:6]
    else:
        # The schema page and the outbox's own pages: only sqlite3 .recover gets them back.
        pages = [1, *_pages(k.path, "outbox_unacked")]
    _overwrite(k.path, pages)
    assert _damaged(k.path)
    broken = _digest(k.path)
    code, out, err = _rebuild(_config(folder, hub), "--json", capsys=capsys)
    report = json.loads(out)
    assert code == 0, (report, err)
    assert report["replaced"] and report["pending"] == 0 and report["check"]["ok"]
    assert report["salvage"]["method"] == ("read" if damage == "items_pages" else "scan")
    carried = [e["txn_id"] for e in report["salvage"]["events"]]
    assert carried == k.unacked
    assert report["salvage"]["counters"][DEVICE]["last_seq"] == 5
    assert report["salvage"]["registrations"] == [k.reader]
    # The old file is kept beside the new one, byte for byte.
    (kept,) = _kept(folder)
    assert _digest(kept) == broken
    # The hub has every event exactly once, in a gap-free sequence.
    at_hub = _hub_events(hub)
    assert [s for s, _ in at_hub] == [1, 2, 3, 4, 5]
    assert sorted(t for _, t in at_hub) == sorted(k.acked + k.unacked)
    # A sync afterwards sends nothing again.
    with db.Cache.open(k.path) as cache, client_for(hub.url, ManualClock(NOON_ISH),
                                                    device=DEVICE, token=TOKEN) as client:
        again = Syncer(cache, client, options=FAST).run_once()
        assert again.ok and again.sent == 0
        assert len(_hub_events(hub)) == 5
        # The counters continue: the next event is seq 6, its HLC after every old one.
        clock = ManualClock(NOON_ISH)  # a wall clock that went back: the HLC must not
        circ = Circulation(cache, Identity(DEVICE, SPACE, station=Station.DESK), Policy(),
                           clock)
        result = circ.checkout(k.reader, E["available_item"])
        assert result.allowed, result
        (seq, hlc), = cache.conn.execute(
            "SELECT seq, hlc FROM outbox ORDER BY seq DESC LIMIT 1").fetchall()
        assert seq == 6 and hlc > k.max_hlc
        # Card numbers already issued are never issued again.
        assert cache.conn.execute("SELECT next_number FROM card_ranges").fetchone()[0] \
            == k.next_number
        # The reader registered here kept the personal data only this device had.
        enc = cache.conn.execute("SELECT id_number_enc FROM patrons WHERE card_number = ?",
                                 (k.reader,)).fetchone()[0]
        assert (enc is not None) == (damage == "items_pages")


def test_human_output_lists_what_was_carried_over(hub, folder, capsys):
    k = Kiosk(hub, folder)
    code, out, err = _rebuild(_config(folder, hub), capsys=capsys)
    assert code == 0, err
    assert "\x1b[" not in out
    assert "read directly" in out and "Unacknowledged transactions carried over" in out
    assert out.count("checkout") == 1 and "patron_registered" in out and "checkin" in out
    assert k.reader in out and "continues after 5" in out
    assert "Rebuilt" in out and ".before-rebuild-" in out


def test_a_reader_registered_here_borrows_before_the_hub_has_the_registration(hub, folder):
    """Carried over and the hub's data loaded, but nothing pushed yet: the new reader is in
    the cache (the hub's feed does not have them) and may borrow."""
    k = Kiosk(hub, folder)
    work = folder / "work"
    work.mkdir()
    found = rebuild.salvage(k.path, work)
    with db.create(folder / "new.db") as cache, client_for(
            hub.url, ManualClock(NOON_ISH), device=DEVICE, token=TOKEN) as client:
        rebuild.carry_over(cache, found)
        syncer = Syncer(cache, client, options=FAST)
        syncer.pull(SyncReport())  # the snapshot only: the registration is still ours alone
        rebuild.settle(cache, found, DEVICE)
        assert [e.txn_id for e in outbox.unacknowledged(cache.conn)] == k.unacked
        circ = Circulation(cache, Identity(DEVICE, SPACE, station=Station.DESK), Policy(),
                           ManualClock(NOON_ISH))
        assert circ.checkout(k.reader, E["available_item_3"]).allowed
        # A new registration takes a number after every one issued before the rebuild.
        registrar = Registrar(cache, Identity(DEVICE, SPACE, station=Station.DESK), k.keys,
                              ManualClock(NOON_ISH))
        third = registrar.register(replace(APP, name="赵一", id_number=_third_id()))
        prefix = cache.conn.execute("SELECT prefix FROM card_ranges").fetchone()[0]
        assert third.card_number == cardnumbers.card_number(prefix, k.next_number)
        assert third.card_number not in (k.reader, k.first_card)
        report = syncer.run_once()
        assert report.ok, report.error
    at_hub = _hub_events(hub)
    assert [s for s, _ in at_hub] == list(range(1, 8))
    assert len({t for _, t in at_hub}) == 7


def _third_id() -> str:
    from sync.idnumbers import check_character

    return "43010219920202003" + check_character("43010219920202003")


# -- refusals: nothing changes -------------------------------------------------------------


@pytest.mark.parametrize("as_json", [False, True])
def test_refused_while_the_daemon_runs(hub, folder, capsys, as_json):
    k = Kiosk(hub, folder)
    config = _config(folder, None)
    with running(settings_for(config)):
        code, out, err = _rebuild(config, *(["--json"] if as_json else []), capsys=capsys)
    assert code == 1
    if as_json:
        data = json.loads(out)
        assert data["daemon"] == "running" and data["error"]["code"] == "daemon_running"
        assert not data["replaced"]
    else:
        assert "daemon is running" in err and "--force" in err
    assert _kept(folder) == []
    with db.Cache.open(k.path) as cache:  # the same database, its queue as it was
        assert [e.txn_id for e in outbox.unacknowledged(cache.conn)] == k.unacked


def test_hub_unreachable_changes_nothing(hub, folder, capsys):
    k = Kiosk(hub, folder)
    before = _digest(k.path)
    config = _config(folder, hub, url="http://127.0.0.1:9/api/v1")
    code, out, _ = _rebuild(config, "--json", capsys=capsys)
    data = json.loads(out)
    assert code == 1 and not data["replaced"] and data["error"]["code"] == "unreachable"
    assert _digest(k.path) == before and _kept(folder) == []
    assert sorted(p.name for p in folder.iterdir() if "rebuild" in p.name) == []


def test_no_hub_configured_is_a_config_error(hub, folder, capsys):
    Kiosk(hub, folder)
    code, _, err = _rebuild(_config(folder, None), capsys=capsys)
    assert code == 3 and "hub" in err.lower()


def test_an_unreadable_file_is_refused_unless_the_loss_is_accepted(hub, folder, capsys):
    k = Kiosk(hub, folder)
    size = os.path.getsize(k.path)
    k.path.write_bytes(GARBAGE * (size // len(GARBAGE) + 1))
    config = _config(folder, hub)
    code, out, _ = _rebuild(config, "--json", capsys=capsys)
    assert code == 4 and json.loads(out)["error"]["code"] == "no_outbox"
    assert _kept(folder) == []
    code, out, _ = _rebuild(config, "--json", "--accept-loss", capsys=capsys)
    data = json.loads(out)
    assert data["replaced"] and data["salvage"]["method"] in ("recover", "none")
    assert len(_kept(folder)) == 1


def test_a_missing_database_is_a_data_error(folder, capsys, hub):
    code, _, err = _rebuild(_config(folder, hub), capsys=capsys)
    assert code == 4 and "No database" in err


def test_what_the_library_system_answered_survives_a_rebuild(hub, folder, capsys):
    """The SIP2 replayer's record (sync.sip2.replay) is carried over: an event the library
    system already answered is not sent to it again, and a refusal stays listed."""
    k = Kiosk(hub, folder)
    with sqlite3.connect(k.path) as conn:
        txns = [r[0] for r in conn.execute("SELECT txn_id FROM outbox ORDER BY seq LIMIT 2")]
        conn.executemany(
            "INSERT INTO sip2_outcomes (txn_id, device_id, seq, kind, state, code, message,"
            " attempts, updated_at) VALUES (?, ?, ?, 'checkout', ?, ?, ?, 1, '2026-11-25')",
            [(txns[0], DEVICE, 1, "ok", None, None),
             (txns[1], DEVICE, 2, "refused", "refused", "卡已挂失")])
    code, _, err = _rebuild(_config(folder, hub), capsys=capsys)
    assert code == 0, err
    with sqlite3.connect(k.path) as conn:
        rows = conn.execute("SELECT txn_id, state, message FROM sip2_outcomes ORDER BY seq"
                            ).fetchall()
    assert rows == [(txns[0], "ok", None), (txns[1], "refused", "卡已挂失")]
