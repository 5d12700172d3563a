"""`kiosk demo`: the reference hub and the daemon on simulated hardware, driven from another
"terminal" with `kiosk sim`, stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading

from sync import db, sample
from tests.daemon_helpers import ROOT, kiosk_env, remove_tree, short_dir
from tests.invariants import violations


def test_demo_runs_the_kiosk_until_ctrl_c():
    folder = short_dir()
    env = kiosk_env(XDG_RUNTIME_DIR=str(folder / "run"))
    (folder / "run").mkdir(mode=0o700)
    demo = subprocess.Popen([sys.executable, "-m", "kiosk", "demo", "--dir", str(folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=str(ROOT))
    lines: list[str] = []
    tried = threading.Event()
    lent = threading.Event()

    def read() -> None:
        for line in demo.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                tried.set()
            if "✔ Lent" in line:
                lent.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def kiosk(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "kiosk", *args], capture_output=True,
                              text=True, env=env, cwd=str(ROOT), timeout=60)

    try:
        assert tried.wait(90), "".join(lines)
        text = "".join(lines)
        assert "reference hub runs at http://127.0.0.1:" in text
        assert "sim card --card" in text and "until you press Ctrl-C" in text
        card, book = sample.EDGE_CASES["ok_patron"], sample.EDGE_CASES["available_item"]
        assert kiosk("sim", "card", "--card", str(card)).returncode == 0
        assert kiosk("sim", "place", str(book)).returncode == 0
        assert lent.wait(20), "".join(lines)
        assert kiosk("sim", "finish").returncode == 0
        status = json.loads(kiosk("status", "--json").stdout)
        assert status["daemon"] == "running" and status["sync"]["configured"]
        assert kiosk("sync").returncode == 0
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=30) == 0
        reader.join(10)
        text = "".join(lines)
        assert "The demo kiosk has stopped." in text
        # The van desk is there to try as well: the staff card, its PIN, the stops.
        assert "sim card --card 9900000001    (then PIN 2468 on the touchscreen" in text
        assert "石门村、柳树湾" in text
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    with db.Cache.open(folder / "demo.db") as cache:
        assert violations(cache.conn) == []
        rows = cache.conn.execute("SELECT kind, acked_at IS NOT NULL FROM outbox").fetchall()
    assert rows == [("checkout", 1)]  # lent, and stored by the hub
    remove_tree(folder)
