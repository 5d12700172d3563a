"""The benchmark harness runs and writes figures of the documented shape (no timing
asserted here: figures depend on the machine; docs/benchmarks.md has the targets)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
KEYS = {"name", "value", "unit", "baseline", "ratio"}
NAMES = {"checkout.p50", "checkout.p99", "checkin.p50", "checkin.p99",
         "bulk_load.rows_per_s", "bulk_load.seconds", "bulk_load.rows", "bulk_load.peak_rss",
         "idle_checkpoint.p99", "checkout.p99.sqlite_default_checkpoint",
         "rfid.pad10.wall", "rfid.pad10.lower_bound", "rfid.pad10.serial_bound",
         "rfid.pad10.rf_bound", "rfid.pad10.sim_processing", "rfid.pad10.serial_bytes",
         "rfid.pad10.commands", "rfid.pad10.wall_spread",
         "sync.bootstrap.rows_per_s", "sync.bootstrap.seconds", "sync.bootstrap.rows",
         "sync.bootstrap.peak_rss", "sync.push.events_per_s", "sync.push.bytes_per_event",
         "sync.push.events",
         "daemon.card_to_session.p50", "daemon.card_to_session.p95", "daemon.book_to_loan.p50",
         "daemon.book_to_loan.p95", "daemon.book_to_lent.p50", "daemon.book_to_lent.p95",
         "daemon.idle_rss", "daemon.start_to_ready",
         "desk.sign_in", "desk.card_issued.p50", "desk.card_issued.p95"}

pytestmark = pytest.mark.bench


def run_tiny(tmp_path: Path, *extra: str) -> tuple[list[dict], subprocess.CompletedProcess]:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(RUN), "--size", "tiny", "--out", str(out),
         "--workdir", str(tmp_path / "work"), *extra],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text(encoding="utf-8")), proc


def check_shape(figures: list[dict]) -> dict[str, dict]:
    assert isinstance(figures, list)
    by_name = {f["name"]: f for f in figures}
    assert len(by_name) == len(figures)
    assert set(by_name) == NAMES
    for f in figures:
        assert set(f) == KEYS, f
        assert isinstance(f["value"], (int, float)) and f["value"] > 0, f
        assert isinstance(f["unit"], str) and f["unit"], f
        if f["baseline"] is None:
            assert f["ratio"] is None, f
        else:
            assert f["baseline"] > 0, f
            assert math.isclose(f["ratio"], f["value"] / f["baseline"], rel_tol=1e-9), f
    return by_name


def test_tiny_run_writes_figures(tmp_path: Path) -> None:
    figures, proc = run_tiny(tmp_path)
    by_name = check_shape(figures)
    for name in ("checkout.p50", "checkout.p99", "checkin.p99"):
        assert by_name[name]["unit"] == "ms" and by_name[name]["baseline"] is not None
    assert by_name["bulk_load.peak_rss"]["unit"] == "MB"
    assert by_name["bulk_load.rows"]["value"] > 10_000
    if shutil.which("sqlite3"):
        assert by_name["bulk_load.rows_per_s"]["baseline"] is not None
    assert "checkout.p99" in proc.stdout and "target" in proc.stdout
    # The scratch databases are cleaned up.
    assert not list((tmp_path / "work").glob("*.db"))


def test_missing_sqlite3_shell_gives_null_baseline(tmp_path: Path) -> None:
    figures, proc = run_tiny(tmp_path, "--sqlite3", str(tmp_path / "no-such-sqlite3"))
    by_name = check_shape(figures)
    assert by_name["bulk_load.rows_per_s"]["baseline"] is None
    assert "install Debian's sqlite3" in proc.stderr
