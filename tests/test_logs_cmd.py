"""``kiosk logs``: which journalctl command it runs (a stand-in journalctl on PATH prints
the arguments it was given), and what it says on a machine without the journal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def kiosk_logs(path: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kiosk", "--lang", "en", "logs", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={**os.environ, "PATH": path})


def fake_journalctl(folder: Path) -> str:
    script = folder / "journalctl"
    script.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$(dirname "$0")/args"\n'
                      'echo "2026-11-25T03:30:00+0800 pi kiosk[812]: ready"\n')
    script.chmod(0o755)
    return f"{folder}:/usr/bin:/bin"


def test_the_daemon_units_journal_is_shown(tmp_path: Path) -> None:
    done = kiosk_logs(fake_journalctl(tmp_path), "-n", "20")
    assert done.returncode == 0 and "kiosk[812]: ready" in done.stdout
    args = (tmp_path / "args").read_text().split("\n")
    assert args[:6] == ["--no-pager", "-n", "20", "-o", "short-iso", "-u"]
    assert args[6] == "library-kiosk.service" and "--follow" not in args


def test_several_units_json_and_follow(tmp_path: Path) -> None:
    done = kiosk_logs(fake_journalctl(tmp_path), "--unit", "daemon", "--unit", "screen",
                      "--json", "--follow")
    assert done.returncode == 0
    args = (tmp_path / "args").read_text().split("\n")
    assert "json" in args and "--follow" in args
    units = [args[i + 1] for i, a in enumerate(args) if a == "-u"]
    assert units == ["library-kiosk.service", "library-kiosk-ui.service"]


def test_without_journalctl_it_says_so(tmp_path: Path) -> None:
    done = kiosk_logs(str(tmp_path))
    assert done.returncode == 1 and "no journalctl" in done.stderr


def test_an_unknown_unit_is_refused(tmp_path: Path) -> None:
    done = kiosk_logs(fake_journalctl(tmp_path), "--unit", "printer")
    assert done.returncode == 2 and "invalid choice" in done.stderr
