"""Registering readers offline: every field checked, one transaction with its card number
and outbox event, personal data never in plain text, and the hub's view of it."""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from sync import cardnumbers, db
from sync.cardnumbers import CardNumbersExhausted
from sync.circulation import Circulation, Identity
from sync.hub import validate as hub_validate
from sync.hub.errors import ValidationFailed
from sync.hub.testing import HubServer
from sync.idnumbers import check_character
from sync.personal import create_key_file, load_keys
from sync.policy import Policy, Station
from sync.registration import Application, Registrar, RegistrationRefused
from sync.sample import EDGE_CASES as E
from sync.syncer import Syncer
from tests.conftest import HERE, NOON_ISH, ManualClock
from tests.test_sync_client import FAST, client_for

ID = "43010219850715341" + check_character("43010219850715341")
CHILD_ID = "43010220180301123" + check_character("43010220180301123")
PHONE = "13812345678"
COUNTY_SECRET = b"county-secret-for-the-tests-0001"

APP = Application(name="王秀兰", id_type="resident_id", id_number=ID, village="石门村",
                  phone=PHONE, address="石门村三组12号", patron_type="adult", consent=True)
CHILD = replace(APP, name="王小明", id_number=CHILD_ID, patron_type="child",
                guardian_name="王秀兰", guardian_relation="parent")


@pytest.fixture
def keys(tmp_path: Path):
    return load_keys(create_key_file(tmp_path / "personal.keys", COUNTY_SECRET))


def _lease(w, first: int = 900_000, last: int = 900_999) -> None:
    w._insert("card_ranges", {"prefix": "4311", "first_number": first, "last_number": last,
                              "next_number": first, "leased_at": "2026-11-01T00:00:00+00:00",
                              "expires_on": "2027-11-01"})


@pytest.fixture
def registrar(world, keys):
    _lease(world)
    return Registrar(world.cache, Identity("van-01", HERE, station=Station.DESK), keys,
                     world.clock)


def test_a_reader_is_registered_with_card_patron_and_event(world, registrar, keys):
    done = registrar.register(APP)
    assert done.card_number == cardnumbers.card_number("4311", 900_000)
    assert done.expires_on.isoformat() == "2029-11-25"
    assert done.id_masked == "430102********" + ID[-4:]
    assert done.phone_masked == "138****5678"
    row = world.sql("SELECT name, patron_type, status, id_type, id_number_enc, id_hash,"
                    " phone_enc, village, consent_at, registered_txn FROM patrons"
                    " WHERE card_number = ?", done.card_number)[0]
    name, ptype, status, id_type, enc, id_hash, phone_enc, village, consent, txn = row
    assert (name, ptype, status, id_type, village) == ("王秀兰", "adult", "active",
                                                       "resident_id", "石门村")
    assert keys.decrypt(enc, "id_number").reveal() == ID
    assert keys.decrypt(phone_enc, "phone").reveal() == PHONE
    assert id_hash == keys.person_hash("resident_id", ID)
    assert consent and txn == done.event.txn_id
    assert world.events() == [(1, "patron_registered")]
    p = done.event.payload
    assert {k: p[k] for k in ("card", "name", "patron_type", "home_branch", "expires_on",
                              "id_type", "id_hash")} == {
        "card": done.card_number, "name": "王秀兰", "patron_type": "adult",
        "home_branch": HERE, "expires_on": "2029-11-25", "id_type": "resident_id",
        "id_hash": id_hash}
    assert keys.unseal(p["id_sealed"], "id_number").reveal() == ID
    assert world.one("SELECT value FROM daily_stats WHERE metric = 'new_cards'") == 1
    assert done.supply.left == 999


def test_a_child_needs_a_guardian(registrar):
    done = registrar.register(CHILD)
    assert done.event.payload["guardian_name"] == "王秀兰"
    assert done.event.payload["guardian_relation"] == "parent"
    with pytest.raises(RegistrationRefused) as err:
        registrar.register(replace(CHILD, guardian_name="", guardian_relation=""))
    assert err.value.reasons == {"guardian_name": "missing", "guardian_relation": "missing"}


INVALID = [
    ({"name": ""}, "name", "missing"),
    ({"name": "王" * 41}, "name", "too_long"),
    ({"name": "王2兰"}, "name", "bad_characters"),
    ({"id_type": "library_card"}, "id_type", "bad_type"),
    ({"id_number": ""}, "id_number", "missing"),
    ({"id_number": ID[:-1]}, "id_number", "bad_length"),
    ({"id_number": ID[:-1] + "Y"}, "id_number", "bad_characters"),
    ({"id_number": "99" + ID[2:]}, "id_number", "bad_region"),
    ({"id_number": ID[:10] + "13" + ID[12:]}, "id_number", "bad_birth_date"),
    ({"id_number": ID[:-1] + str((int(ID[-1]) + 1) % 10)}, "id_number", "bad_check_digit"),
    ({"id_type": "passport", "id_number": "护照"}, "id_number", "bad_characters"),
    ({"id_type": "passport", "id_number": "ABCDEFG"}, "id_number", "bad_format"),
    ({"phone": "12345"}, "phone", "bad_format"),
    ({"village": " "}, "village", "missing"),
    ({"village": "村" * 61}, "village", "too_long"),
    ({"address": "地" * 121}, "address", "too_long"),
    ({"patron_type": "vip"}, "patron_type", "unknown"),
    ({"patron_type": "child", "guardian_name": "王秀兰", "guardian_relation": "parent"},
     "patron_type", "not_a_child"),
    ({"patron_type": "child", "guardian_name": "王秀兰", "guardian_relation": "boss",
      "id_number": CHILD_ID}, "guardian_relation", "unknown"),
    ({"consent": False}, "consent", "missing"),
]


@pytest.mark.parametrize("change, field, reason", INVALID,
                         ids=[f"{f}-{r}" for _, f, r in INVALID])
def test_every_invalid_field_is_refused_with_its_reason(world, registrar, change, field,
                                                        reason):
    with pytest.raises(RegistrationRefused) as err:
        registrar.register(replace(APP, **change))
    assert err.value.reasons == {field: reason}
    problem = err.value.problems[0]
    assert problem.message_key.startswith("registration.")
    assert ID not in str(err.value)
    assert world.events() == []
    assert world.one("SELECT next_number FROM card_ranges") == 900_000
    assert world.one("SELECT value FROM daily_stats WHERE metric = ?",
                     f"refused.registration.{field}.{reason}") == 1


def test_every_problem_is_reported_at_once(registrar):
    with pytest.raises(RegistrationRefused) as err:
        registrar.register(Application(name="", id_type="resident_id", id_number="123",
                                       village="", phone="1", consent=False))
    assert err.value.reasons == {"name": "missing", "village": "missing",
                                 "id_number": "bad_length", "phone": "bad_format",
                                 "consent": "missing"}


def test_the_same_document_twice_on_one_device_is_refused(world, registrar):
    first = registrar.register(APP)
    with pytest.raises(RegistrationRefused) as err:
        registrar.register(replace(APP, name="王秀蘭", id_number=ID.lower()))
    assert err.value.reasons == {"id_number": "already_registered"}
    assert err.value.problems[0].params == {"card": first.card_number}
    assert world.one("SELECT count(*) FROM outbox") == 1


def test_no_card_numbers_left_refuses_and_stores_nothing(world, keys):
    registrar = Registrar(world.cache, Identity("van-01", HERE), keys, world.clock)
    with pytest.raises(CardNumbersExhausted) as err:
        registrar.register(APP)
    assert err.value.message_key == "registration.card.none"
    assert world.one("SELECT count(*) FROM patrons") == 0
    assert world.events() == []


def test_the_supply_warning_comes_with_the_registration(world, keys):
    _lease(world, 1, 50)
    registrar = Registrar(world.cache, Identity("van-01", HERE), keys, world.clock)
    done = registrar.register(APP)
    assert done.supply.state == "low" and done.supply.left == 49
    assert registrar.supply().message_key == "registration.card.low"


def test_a_new_reader_borrows_at_once_offline(world, registrar):
    world.item("B001")
    done = registrar.register(APP)
    circ = world.circulation(device_id="van-01")
    assert circ.checkout(done.card_number, "B001").allowed
    assert world.events() == [(1, "patron_registered"), (2, "checkout")]


def test_the_id_number_is_never_in_plain_text(world, registrar, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    world.item("B001")
    done = registrar.register(APP)
    world.circulation(device_id="van-01").checkout(done.card_number, "B001")
    with pytest.raises(RegistrationRefused):
        registrar.register(replace(APP, consent=False))
    logging.getLogger("test").info("application %r %s", APP, APP)
    payloads = " ".join(r[0] for r in world.sql("SELECT payload FROM outbox"))
    stored = b""
    for suffix in ("", "-wal"):
        path = Path(str(world.path) + suffix)
        if path.exists():
            stored += path.read_bytes()
    assert stored, "the database files were read"
    for secret in (ID, ID[:17], PHONE, "三组12号"):
        assert secret not in payloads
        assert secret not in caplog.text
        assert secret.encode() not in stored
        assert secret.encode("utf-16-le") not in stored
    assert "430102********" in caplog.text  # logged, masked


def test_a_plain_id_number_is_refused_by_the_hub_schema():
    event = {"txn_id": "t" * 32, "seq": 1, "kind": "patron_registered", "boot_id": "b",
             "mono_ns": 1, "wall_ns": 1, "clock_synced": True, "hlc": 1,
             "payload": {"card": "1", "name": "x", "id_number": ID, "id_hash": "A" * 64}}
    with pytest.raises(ValidationFailed) as err:
        hub_validate.event_batch({"device_id": "d", "events": [event]}, "d", 10)
    paths = {p["path"] for p in err.value.details["problems"]}
    assert paths == {"$.events[0].payload.id_number", "$.events[0].payload.id_hash"}


# -- with the reference hub -------------------------------------------------------------

VANS = {"van-01": "van-01-token-0123456789", "van-02": "van-02-token-0123456789"}


class Van:
    def __init__(self, hub: HubServer, folder: Path, device: str):
        self.clock = ManualClock(NOON_ISH, boot_id=f"boot-{device}")
        self.cache = db.create(folder / f"{device}.db")
        self.client = client_for(hub.url, self.clock, device=device, token=VANS[device])
        self.syncer = Syncer(self.cache, self.client, options=FAST)
        identity = Identity(device, "CN-431121-0002", station=Station.DESK)
        self.circ = Circulation(self.cache, identity, Policy(), self.clock)
        keys = load_keys(create_key_file(folder / f"{device}.keys", COUNTY_SECRET))
        self.registrar = Registrar(self.cache, identity, keys, self.clock)

    def sync(self):
        report = self.syncer.run_once()
        assert report.ok, report.error
        return report


@pytest.fixture
def county(tmp_path: Path):
    with HubServer(tmp_path / "hub.db", sample="small", devices=VANS) as hub:
        vans = [Van(hub, tmp_path, d) for d in VANS]
        for van in vans:
            van.sync()
            van.client.lease_card_range(size=20)
            van.sync()
        yield hub, vans
        for van in vans:
            van.client.close()
            van.cache.close()


TIME_CODES = {"clock_corrected", "clock_unverified", "time_in_future"}


def _codes(codes: str) -> str:
    """An event's codes without the time flags (the test clocks are not the hub's)."""
    return ",".join(c for c in codes.split(",") if c and c not in TIME_CODES)


def _hub(hub: HubServer, sql: str, *args: object) -> list[tuple]:
    hub.store.apply_pending()
    with sqlite3.connect(hub.db_path) as h:
        return h.execute(sql, args).fetchall()


def test_registration_then_loans_reach_the_hub_in_order(county):
    hub, (van, _) = county
    done = van.registrar.register(APP)
    for book in (E["available_item"], E["available_item_2"]):
        assert van.circ.checkout(done.card_number, book).allowed
    van.sync()
    events = _hub(hub, "SELECT seq, kind, state, codes FROM hub_events"
                       " WHERE device_id = 'van-01' ORDER BY seq")
    assert [(seq, kind, state, _codes(codes)) for seq, kind, state, codes in events] == [
        (1, "patron_registered", "applied", ""), (2, "checkout", "applied", ""),
        (3, "checkout", "applied", "")]
    patron = _hub(hub, "SELECT name, id_hash, id_masked, loan_count FROM patrons"
                       " WHERE card_number = ?", done.card_number)
    assert patron == [("王秀兰", done.event.payload["id_hash"], done.id_masked, 2)]
    with sqlite3.connect(hub.db_path) as h:
        assert not h.execute("SELECT count(*) FROM hub_events WHERE payload LIKE ?",
                             (f"%{ID}%",)).fetchone()[0]


def test_two_vans_never_issue_the_same_number(county):
    _, vans = county
    cards = []
    for i, van in enumerate(vans):
        for n in range(20):
            number = f"4301021985{(n % 12) + 1:02d}{i + 10:02d}{n + 100:03d}"
            app = replace(APP, id_number=number + check_character(number))
            cards.append(van.registrar.register(app).card_number)
        with pytest.raises(CardNumbersExhausted):
            van.registrar.register(replace(APP, id_type="passport", id_number="E99999999"))
    assert len(set(cards)) == 40


def test_a_duplicate_person_is_flagged_at_the_hub(county):
    hub, (a, b) = county
    first = a.registrar.register(APP)
    second = b.registrar.register(replace(APP, name="王秀兰", phone=None))
    a.sync()
    b.sync()
    verdicts = _hub(hub, "SELECT device_id, state, codes FROM hub_events"
                         " WHERE kind = 'patron_registered' ORDER BY device_id")
    assert [(d, s, _codes(c)) for d, s, c in verdicts] == [
        ("van-01", "applied", ""), ("van-02", "applied", "duplicate_person")]
    flagged = _hub(hub, "SELECT device_id, code, message FROM hub_exceptions"
                        " WHERE code = 'duplicate_person'")
    assert len(flagged) == 1 and first.card_number in flagged[0][2]
    assert ID not in flagged[0][2]
    cards = _hub(hub, "SELECT card_number FROM patrons WHERE id_hash = ? ORDER BY 1",
                 first.event.payload["id_hash"])
    assert cards == sorted([(first.card_number,), (second.card_number,)])
    b.sync()
    mine = b.cache.conn.execute("SELECT outcome, message FROM sync_verdicts WHERE txn_id = ?",
                                (second.event.txn_id,)).fetchone()
    assert mine[0] == "exception" and "same identity document" in mine[1]
