"""The reference hub over real HTTP on loopback: the contract of docs/hub-api.yaml.

Each test starts the hub (uvicorn, in a thread) on its own database; clients are plain
``requests`` sessions, as a device's would be.
"""

from __future__ import annotations

import concurrent.futures
import gzip
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from kiosk.cli import main
from sync.hub.config import HubConfig
from sync.hub.server import TLSFiles
from sync.hub.testing import HubServer
from tests.daemon_helpers import free_port
from tests.hub_helpers import STAFF, Client, Device, E, latest, make_certs, token_for

ROOT = Path(__file__).resolve().parent.parent
DEVICES = {d: token_for(d) for d in ("van-01", "van-02", "kiosk-03")}


@pytest.fixture
def hub(tmp_path):
    with HubServer(tmp_path / "hub.db", sample="small", devices=DEVICES,
                   staff_token=STAFF) as server:
        yield server


def assert_error(r: requests.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert int(r.headers["X-Hub-Time-Ns"]) > 0  # exactly one, a number
    body = r.json()
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert isinstance(body["error"]["retryable"], bool)
    return body["error"]


def test_health_answers_without_a_token_and_every_response_has_the_hub_time(hub):
    before = time.time_ns()
    r = requests.get(f"{hub.url}/health", timeout=5)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["api_version"] == "1"
    assert before <= int(r.headers["X-Hub-Time-Ns"]) <= time.time_ns()


def test_a_batch_pushed_twice_is_stored_once(hub):
    van = Device("van-01")
    events = [van.checkout(E["ok_patron"], E["available_item"]), van.checkin(E["on_loan_item"])]
    c = Client(hub.url, "van-01")
    first = c.push(events)
    assert first.status_code == 200
    assert first.json() | {"hub_time_ns": 0} == {
        "device_id": "van-01", "stored": 2, "duplicates": 0, "acked_through_seq": 2,
        "missing_seqs": [], "hub_time_ns": 0}
    again = c.push(events)  # a new key: the client rebuilt the batch after a crash
    assert again.json()["stored"] == 0 and again.json()["duplicates"] == 2
    assert again.json()["acked_through_seq"] == 2
    loans = latest(c.pull_all()[0], "loan")
    assert sum(1 for v in loans.values() if v["item"] == E["available_item"]) == 1


def test_idempotency_key_replays_the_first_answer_and_refuses_another_body(hub):
    van = Device("van-01")
    c = Client(hub.url, "van-01")
    ev = van.checkout(E["ok_patron"], E["available_item"])
    first = c.push([ev], key="batch-0001")
    replay = c.push([ev], key="batch-0001")
    assert replay.status_code == 200 and replay.json() == first.json()
    other = c.push([ev, van.checkin(E["available_item"])], key="batch-0001")
    assert_error(other, 422, "idempotency_mismatch")
    # The mismatch stored nothing: seq 2 is still unknown to the hub.
    assert c.push([van.events[1]]).json()["stored"] == 1


def test_a_gap_stops_the_acknowledgement_and_waits_until_it_is_filled(hub):
    van = Device("van-01")
    evs = [van.checkout(E["ok_patron"], E[k]) for k in
           ("available_item", "available_item_2", "available_item_3", "children_item")]
    c = Client(hub.url, "van-01")
    r = c.push([evs[3], evs[0], evs[1]])  # out of order, seq 3 missing
    assert r.json()["acked_through_seq"] == 2 and r.json()["missing_seqs"] == [3]
    verdicts = c.verdicts()
    assert evs[0]["txn_id"] in verdicts and evs[3]["txn_id"] not in verdicts
    r = c.push([evs[2]])
    assert r.json()["acked_through_seq"] == 4 and r.json()["missing_seqs"] == []
    assert {e["txn_id"] for e in evs} <= set(c.verdicts())


def test_an_oversized_batch_is_413(hub):
    van = Device("van-01")
    events = [van.checkin(E["available_item"]) for _ in range(5001)]
    err = assert_error(Client(hub.url, "van-01").push(events, gzipped=True), 413,
                       "payload_too_large")
    assert err["details"]["max_events"] == 5000


def test_tokens_act_only_for_their_own_device_and_staff_reads_exceptions(hub):
    url = f"{hub.url}/devices/van-01/changes"
    assert_error(requests.get(url, timeout=5), 401, "unauthorized")
    assert_error(requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=5), 401,
                 "unauthorized")
    other = {"Authorization": f"Bearer {token_for('van-02')}"}
    assert_error(requests.get(url, headers=other, timeout=5), 403, "forbidden")
    assert_error(Client(hub.url, "van-01", token=token_for("van-02")).push(
        [Device("van-01").checkin(E["available_item"])]), 403, "forbidden")
    ex = f"{hub.url}/exceptions"
    assert_error(requests.get(ex, timeout=5), 401, "unauthorized")
    assert_error(requests.get(ex, headers=other, timeout=5), 403, "forbidden")
    r = requests.get(ex, headers={"Authorization": f"Bearer {STAFF}"}, timeout=5)
    assert r.status_code == 200 and r.json() == {"exceptions": []}
    staff_on_device = {"Authorization": f"Bearer {STAFF}"}
    assert_error(requests.get(url, headers=staff_on_device, timeout=5), 403, "forbidden")


def test_gzip_both_ways(hub):
    van = Device("van-01")
    c = Client(hub.url, "van-01")
    r = c.push([van.checkout(E["ok_patron"], E["available_item"])], gzipped=True)
    assert r.status_code == 200 and r.json()["stored"] == 1
    raw = c.http.get(c.path("changes"), headers={"Accept-Encoding": "gzip"}, stream=True,
                     timeout=10)
    assert raw.headers["Content-Encoding"] == "gzip"
    body = json.loads(gzip.decompress(raw.raw.read(decode_content=False)))
    assert any(ch["feed"] == "loan" for ch in body["changes"])
    plain = c.http.get(c.path("changes"), headers={"Accept-Encoding": "identity"}, timeout=10)
    assert "Content-Encoding" not in plain.headers


@pytest.mark.parametrize(("headers", "body", "status", "code"), [
    ({"Content-Type": "application/json"}, b"{not json", 400, "bad_request"),
    ({"Content-Type": "text/plain"}, b"{}", 400, "bad_request"),
    ({"Content-Type": "application/json", "Content-Encoding": "gzip"}, b"not gzip at all",
     400, "bad_request"),
    ({"Content-Type": "application/json", "Content-Encoding": "gzip"},
     gzip.compress(b'{"device_id": "van-01", "events": []}')[:-9], 400, "bad_request"),
    ({"Content-Type": "application/json"}, b'["a list"]', 422, "validation_failed"),
    ({"Content-Type": "application/json"}, b'{"device_id": "van-01", "events": []}', 422,
     "validation_failed"),
])
def test_bad_requests_get_the_error_shape(hub, headers, body, status, code):
    c = Client(hub.url, "van-01")
    r = c.http.post(c.path("events"), data=body,
                    headers={"Idempotency-Key": "bad-request-1", **headers}, timeout=10)
    assert_error(r, status, code)
    assert requests.get(f"{hub.url}/health", timeout=5).status_code == 200


def test_schema_violations_list_every_problem(hub):
    ev = Device("van-01").checkin(E["available_item"])
    ev["seq"], ev["clock_synced"] = 0, "yes"
    del ev["boot_id"]
    err = assert_error(Client(hub.url, "van-01").push([ev]), 422, "validation_failed")
    paths = {p["path"] for p in err["details"]["problems"]}
    assert {"$.events[0].seq", "$.events[0].clock_synced", "$.events[0].boot_id"} <= paths
    c = Client(hub.url, "van-01")
    assert_error(c.http.get(c.path("changes"), params={"limit": "0"}, timeout=5), 422,
                 "validation_failed")
    assert_error(c.http.get(c.path("changes"), params={"cursor": "%%%"}, timeout=5), 400,
                 "bad_request")
    assert_error(c.http.get(f"{hub.url}/nowhere", timeout=5), 404, "not_found")


def test_change_feed_pages_and_resumes_from_a_saved_cursor(hub):
    van = Device("van-01")
    c = Client(hub.url, "van-01")
    c.push([van.checkout(E["ok_patron"], E[k]) for k in
            ("available_item", "available_item_2", "available_item_3")])
    seen, cursor, pages = [], None, 0
    while True:
        page = c.http.get(c.path("changes"), params={"limit": 3, **(
            {"cursor": cursor} if cursor else {})}, timeout=5).json()
        pages += 1
        assert len(page["changes"]) <= 3
        seen += page["changes"]
        cursor = page["cursor"]
        if not page["has_more"]:
            break
    # Three loans: per event a patron, an item, a loan and a verdict.
    assert len(seen) == 12 and pages == 4
    assert [ch["version"] for ch in seen] == sorted(ch["version"] for ch in seen)
    later, _ = c.pull_all(cursor)
    assert later == []
    c.push([van.checkin(E["available_item"])])
    later, _ = c.pull_all(cursor)
    assert {ch["feed"] for ch in later} == {"patron", "item", "loan", "verdict"}
    assert all(ch["version"] > seen[-1]["version"] for ch in later)


def test_a_cursor_older_than_the_log_is_410_after_compaction(hub):
    van = Device("van-01")
    c = Client(hub.url, "van-01")
    _, old = c.pull_all()
    c.push([van.checkout(E["ok_patron"], E["available_item"])])
    assert hub.store.compact(keep_days=0) > 0
    assert_error(c.http.get(c.path("changes"), params={"cursor": old}, timeout=5), 410,
                 "cursor_expired")
    _, fresh = c.pull_all()  # from the start of what is kept: works again
    c.push([van.checkin(E["available_item"])])
    assert any(ch["feed"] == "verdict" for ch in c.pull_all(fresh)[0])


def test_card_ranges_and_verdicts_go_only_to_their_device(hub):
    one, two = Client(hub.url, "van-01"), Client(hub.url, "van-02")
    r1 = one.http.post(one.path("card-ranges"), json={"size": 50}, timeout=5)
    r2 = two.http.post(two.path("card-ranges"), timeout=5)
    assert r1.status_code == r2.status_code == 200
    assert r1.json()["last_number"] - r1.json()["first_number"] == 49
    assert r2.json()["last_number"] - r2.json()["first_number"] == 999
    ev = Device("van-01").checkout(E["ok_patron"], E["available_item"])
    one.push([ev])
    feed1, feed2 = one.pull_all()[0], two.pull_all()[0]
    assert latest(feed1, "card_range") == {str(r1.json()["range_id"]): r1.json()}
    assert set(latest(feed2, "card_range")) == {str(r2.json()["range_id"])}
    assert set(latest(feed1, "verdict")) == {ev["txn_id"]}
    assert latest(feed2, "verdict") == {}
    assert ev["txn_id"] in {ch["data"].get("checkout_txn") for ch in feed2
                            if ch["feed"] == "loan"}  # loans are county-wide


def test_card_ranges_never_overlap_under_concurrent_leases(hub):
    clients = [Client(hub.url, d) for d in DEVICES]

    def lease(n: int) -> dict:
        c = clients[n % len(clients)]
        r = c.http.post(c.path("card-ranges"), json={"size": 10 + n}, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ranges = sorted(pool.map(lease, range(24)), key=lambda r: r["first_number"])
    assert len({r["range_id"] for r in ranges}) == 24
    for a, b in itertools.pairwise(ranges):
        assert a["last_number"] < b["first_number"]
    assert {r["prefix"] for r in ranges} == {"4311"}


def test_snapshot_streams_ndjson_and_its_cursor_pulls_only_later_changes(hub):
    van = Device("van-01")
    c = Client(hub.url, "van-01")
    c.push([van.checkout(E["ok_patron"], E["available_item"])])
    r = c.http.get(c.path("snapshot"), headers={"Accept-Encoding": "gzip"}, stream=True,
                   timeout=30)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/x-ndjson")
    assert r.headers["Content-Encoding"] == "gzip" and "Content-Length" not in r.headers
    lines = [json.loads(x) for x in r.iter_lines()]
    header, rows, end = lines[0], lines[1:-1], lines[-1]
    assert header["type"] == "header" and end == {"type": "end", "rows": len(rows)}
    assert sum(header["counts"].values()) == len(rows)
    assert header["counts"]["patron"] == 200 and header["counts"]["item"] == 2000
    loans = [x for x in rows if x["type"] == "loan"]
    assert all(x["data"]["returned_at"] is None for x in loans)
    assert any(x["data"]["item"] == E["available_item"] for x in loans)
    assert {"type", "key", "version", "data"} <= set(rows[0])
    c.push([van.checkin(E["available_item"])])
    after, _ = c.pull_all(header["cursor"])
    assert {ch["feed"] for ch in after} == {"patron", "item", "loan", "verdict"}
    assert latest(after, "loan")[van.events[0]["txn_id"]]["returned_at"] is not None


def test_hub_over_tls_verified_with_the_county_ca(tmp_path):
    certs = make_certs(tmp_path)
    tls = TLSFiles(certs.server_cert, certs.server_key)
    with HubServer(tmp_path / "hub.db", devices=DEVICES, tls=tls) as hub:
        assert hub.url.startswith("https://127.0.0.1:")
        assert requests.get(f"{hub.url}/health", verify=str(certs.ca), timeout=5).ok
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{hub.url}/health", timeout=5)  # the system CAs do not know it
        c = Client(hub.url, "van-01", verify=str(certs.ca))
        assert c.push([Device("van-01").checkin(E["available_item"])]).status_code == 200


def test_mtls_needs_a_client_certificate_with_the_device_cn(tmp_path):
    certs = make_certs(tmp_path)
    tls = TLSFiles(certs.server_cert, certs.server_key, client_ca=certs.ca)
    with HubServer(tmp_path / "hub.db", devices=DEVICES, tls=tls) as hub:
        good = Client(hub.url, "van-01", verify=str(certs.ca), cert=certs.client("van-01"))
        assert good.push([Device("van-01").checkin(E["available_item"])]).status_code == 200
        wrong = Client(hub.url, "van-01", verify=str(certs.ca), cert=certs.client("van-02"))
        assert_error(wrong.http.get(wrong.path("changes"), timeout=5), 403, "forbidden")
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"{hub.url}/health", verify=str(certs.ca), timeout=5)




def test_kiosk_hub_serve_runs_as_a_process_and_stops_on_sigterm(tmp_path):
    port = free_port()
    db = tmp_path / "county-hub.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiosk", "--lang", "en", "hub", "serve", "--db", str(db),
         "--port", str(port), "--sample", "small"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "kiosk hub serve did not answer"
                time.sleep(0.1)
        assert r.json()["status"] == "ok"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "County hub running at" in out and "Loaded sample data small" in out
    assert '"GET /api/v1/health" 200' in err  # one access line per request
    assert db.exists()


def test_kiosk_hub_exceptions_lists_them_as_json(tmp_path, capsys):
    db = tmp_path / "hub.db"
    with HubServer(db, sample="small", devices=DEVICES) as hub:
        van = Device("van-01")
        Client(hub.url, "van-01").push([van.checkin(E["available_item"])])
    assert main(["hub", "exceptions", "--db", str(db), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["exceptions"]
    assert [(x["device_id"], x["seq"], x["code"], x["status"]) for x in listed] == [
        ("van-01", 1, "item_not_on_loan", "open")]
    assert main(["--lang", "en", "hub", "exceptions", "--db", str(db), "--device",
                 "van-02"]) == 0
    assert "No open exceptions" in capsys.readouterr().out
    assert main(["--lang", "en", "hub", "exceptions", "--db", str(db)]) == 0
    assert "not on loan when it was returned" in capsys.readouterr().out


def _row_schemas(text: str) -> dict[str, set[str]]:
    """Property names of each ``*Row`` schema in the contract (indentation is enough)."""
    found: dict[str, set[str]] = {}
    current = None
    in_props = False
    for line in text.splitlines():
        if line.startswith("    ") and not line.startswith("     ") and line.strip().endswith(
                ":"):
            name = line.strip()[:-1]
            current = name if name.endswith("Row") else None
            in_props = False
            if current:
                found[current] = set()
        elif current and line.startswith("      ") and not line.startswith("       "):
            in_props = line.strip() == "properties:"
        elif current and in_props and line.startswith("        ") and \
                not line.startswith("         "):
            found[current].add(line.strip().split(":")[0])
    return found


def test_the_contract_documents_every_path_and_every_feed_row():
    from sync.hub import rows
    from sync.hub.app import API, create_app

    text = (ROOT / "docs" / "hub-api.yaml").read_text(encoding="utf-8")
    documented = {line.strip()[:-1] for line in text.splitlines()
                  if line.startswith("  /") and line.strip().endswith(":")}
    no_store = SimpleNamespace(config=HubConfig())  # building the routes reads only config
    routes = create_app(no_store).routes
    served = {r.path.removeprefix(API) for r in routes if r.path.startswith(API)}
    assert documented == served
    # The county page is HTML for people, not API: docs/hub.md describes each of its paths.
    guide = (ROOT / "docs" / "hub.md").read_text(encoding="utf-8")
    pages = {r.path for r in routes if not r.path.startswith(API)}
    assert pages and all(f"`{path}`" in guide or f"`GET {path}" in guide
                         or f"`POST {path}" in guide for path in pages), pages
    schemas = _row_schemas(text)
    names = {"branch": "BranchRow", "calendar": "CalendarRow", "loan_rule": "LoanRuleRow",
             "patron": "PatronRow", "block": "BlockRow", "item": "ItemRow",
             "loan": "LoanRow", "hold": "HoldRow", "staff": "StaffRow"}
    for feed, schema in names.items():
        assert schemas[schema] == set(rows.FEEDS[feed].columns), feed


def test_an_unexpected_failure_is_500_in_the_error_shape_and_the_hub_keeps_serving(
        hub, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(hub.store, "changes", broken)
    c = Client(hub.url, "van-01")
    r = c.http.get(c.path("changes"), timeout=5)
    err = assert_error(r, 500, "internal")
    assert err["retryable"] is True and "disk on fire" not in r.text
    assert "Traceback" not in r.text
    assert requests.get(f"{hub.url}/health", timeout=5).status_code == 200
