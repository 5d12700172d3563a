"""``kiosk selftest --watch``: a line per device, then a line whenever one changes (a cable
pulled and pushed back), from the running daemon; a quiet self-test without one."""

from __future__ import annotations

import subprocess
import sys
import time

from kiosk.cli import main
from tests.daemon_helpers import (
    ROOT,
    kiosk_env,
    running,
    settings_for,
)


def test_watch_shows_a_reader_going_away_and_coming_back(folder):
    with running(settings_for(folder / "kiosk.toml")) as k:
        watch = subprocess.Popen(
            [sys.executable, "-m", "kiosk", "--lang", "en", "--config",
             str(folder / "kiosk.toml"), "selftest", "--watch", "--interval", "0.2",
             "--rounds", "40", "tag_reader", "printer"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            env=kiosk_env())
        time.sleep(3.0)
        k.control("sim", device="reader", action="unplug", fault=None)
        time.sleep(2.0)
        k.control("sim", device="reader", action="replug", fault=None)
        out, err = watch.communicate(timeout=60)
    lines = out.splitlines()
    marks = [line.split()[1] for line in lines if "book-tag reader" in line]
    # While it is away the reason may change (the port failed, then it is gone): a line
    # each time; the states in order are fine, away, fine.
    states = [m for i, m in enumerate(marks) if i == 0 or marks[i - 1] != m]
    assert states == ["✔", "✘", "✔"], out + err
    assert sum("receipt printer" in line for line in lines) == 1  # it never changed
    assert watch.returncode == 0


def test_without_a_daemon_the_watch_does_not_touch_the_latches(folder, capsys):
    config = folder / "kiosk.toml"
    config.write_text(config.read_text().replace(
        "[lockers]\nenabled = false\n[door]\nenabled = false\n", ""))
    code = main(["--lang", "en", "--config", str(config), "selftest", "--watch",
                 "--rounds", "1", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    assert '"tag_reader"' in out and '"printer"' in out
    assert '"lockers"' not in out and '"door"' not in out
