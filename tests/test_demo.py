"""`kiosk demo --walkthrough` runs the real commands on the sample county with the reference
hub, and leaves a consistent cache whose transactions the hub stored. (`kiosk demo` itself,
the daemon on simulated hardware, is tested in tests/test_daemon_demo.py.)"""

from __future__ import annotations

import json
import sqlite3

from kiosk.cli import main
from sync import db, sample
from tests.invariants import violations


def test_demo_walkthrough(tmp_path, capsys):
    assert main(["--lang", "en", "demo", "--walkthrough", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "reference hub runs at http://127.0.0.1:" in out
    assert out.count("✔ Lent") == 3
    assert "your card has expired" in out and "is not for loan" in out
    assert "belongs to 县图书馆" in out
    assert f"locker {sample.EDGE_CASES['ready_hold_locker']}" in out
    assert "5 transactions wait" in out
    assert "the hub acknowledged 5" in out and "Sync complete" in out
    with db.Cache.open(tmp_path / "demo.db") as cache:
        assert violations(cache.conn) == []
        kinds = [r[0] for r in cache.conn.execute("SELECT kind FROM outbox ORDER BY seq")]
        assert cache.conn.execute(
            "SELECT count(*) FROM outbox WHERE acked_at IS NULL").fetchone()[0] == 0
    assert kinds == ["checkout", "checkout", "checkout", "checkin", "pickup"]
    hub = sqlite3.connect(tmp_path / "hub.db")
    stored = hub.execute("SELECT count(*) FROM hub_events WHERE device_id = 'sim-01'")
    assert stored.fetchone()[0] == 5
    hub.close()
    # Running it again starts from fresh databases.
    assert main(["demo", "--walkthrough", "--dir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["--db", str(tmp_path / "demo.db"), "queue", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["depth"] == 0
