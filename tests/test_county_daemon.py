"""The real kiosk daemon (``kiosk demo``: the reference hub and the daemon on simulated
hardware) sends the fleet heartbeat, and sends it again at once when the printer runs out
of paper, not at the next sync."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.daemon_helpers import ROOT, kiosk_env, remove_tree, short_dir


def _heartbeat(folder: Path) -> dict[str, Any] | None:
    for path in folder.glob("*hub*.db"):
        try:
            with sqlite3.connect(path) as conn:
                rows = conn.execute("SELECT body FROM hub_heartbeats").fetchall()
        except sqlite3.Error:
            continue
        if rows:
            return json.loads(rows[0][0])
    return None


def _wait(folder: Path, ok: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = _heartbeat(folder)
        if body is not None and ok(body):
            return body
        time.sleep(0.1)
    raise AssertionError(f"no such heartbeat; last: {_heartbeat(folder)}")


def test_the_daemon_reports_its_devices_and_an_alert_at_once() -> None:
    folder = short_dir()
    env = kiosk_env(XDG_RUNTIME_DIR=str(folder / "run"))
    (folder / "run").mkdir(mode=0o700)
    demo = subprocess.Popen([sys.executable, "-m", "kiosk", "demo", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            cwd=str(ROOT))
    try:
        body = _wait(folder, lambda b: "printer" in b and b.get("last_sync_at"), 90)
        assert body["state"] == "ready" and body["alerts"] == []
        assert body["devices"]["printer"] == {"online": True, "detail": ""}
        assert body["printer"]["paper"] == "ok"
        assert body["versions"]["schema"] >= 6 and body["disk_free_bytes"] > 0
        assert body["branch"] == "CN-431121-0002" and body["queue_depth"] == 0
        done = subprocess.run([sys.executable, "-m", "kiosk", "sim", "printer", "paper-out"],
                              env=env, cwd=str(ROOT), capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr
        asked = time.monotonic()
        body = _wait(folder, lambda b: b["alerts"], 15)
        assert time.monotonic() - asked < 10  # the sync interval is 60 s
        assert body["alerts"] == [{"code": "paper_out", "device": "printer"}]
        assert body["printer"]["paper"] == "out"
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
    remove_tree(folder)
