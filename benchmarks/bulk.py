"""Bulk load of the sample: ours in a child process, and the sqlite3 shell as the baseline.

Ours: ``sync.db.create`` + ``sync.sample.load`` + close, timed inside a child process
(``load_child.py``) whose peak RSS the parent reads from ``os.wait4``.

Baseline: the same rows, exported from our loaded database to CSV (export time excluded),
imported by the ``sqlite3`` command-line tool into a fresh cache made by ``sync.db.create``
(same schema, same disk). The shell cannot write NULL from CSV (an empty field is ``''``);
that is harmless except where a UNIQUE column holds many NULLs (``loans.checkout_txn``,
``holds.fulfilled_txn``...), so those tables go through a temporary staging table and
``INSERT ... SELECT nullif(...)``, the way one imports NULLs with the shell.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHILD = HERE / "load_child.py"

# Tables in load order (parents before children), as sync.sample loads them.
TABLES = ("branches", "branch_closed_days", "loan_rules", "staff", "card_ranges", "patrons",
          "patron_blocks", "items", "loans", "holds")
# Tables with UNIQUE columns that the sample leaves NULL.
STAGED = ("loans", "holds")


@dataclass(frozen=True)
class OurLoad:
    seconds: float
    rows: int
    peak_rss_bytes: int


class SqliteShellMissing(RuntimeError):
    pass


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def load_in_child(db: Path, sample_args: dict) -> OurLoad:
    """Run create + load in a fresh interpreter; its peak RSS is the loader's alone."""
    remove_db(db)
    cmd = [sys.executable, str(CHILD), str(db), json.dumps(sample_args)]
    repo = str(HERE.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (repo, os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.stdout.close()
    # wait4 rather than Popen.wait: it also returns the child's resource usage.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"sample load in child failed (exit {proc.returncode})")
    result = json.loads(out)
    # ru_maxrss is in kilobytes on Linux.
    return OurLoad(result["seconds"], result["rows"], usage.ru_maxrss * 1024)


def export_csv(db: Path, folder: Path) -> dict[str, Path]:
    """Every sample table as CSV with a header row, streamed row by row."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    conn = sqlite3.connect(db)
    try:
        for table in TABLES:
            path = folder / f"{table}.csv"
            cur = conn.execute(f"SELECT * FROM {table}")
            with path.open("w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow([d[0] for d in cur.description])
                writer.writerows(cur)
            out[table] = path
    finally:
        conn.close()
    return out


def find_shell(sqlite3_bin: str) -> str:
    found = shutil.which(sqlite3_bin)
    if found is None:
        raise SqliteShellMissing(
            f"the sqlite3 command-line tool ({sqlite3_bin!r}) was not found: install "
            "Debian's sqlite3 package (apt install sqlite3) for the bulk-load baseline")
    return found


def _script(db: Path, csvs: dict[str, Path]) -> str:
    conn = sqlite3.connect(db)
    try:
        lines = [".bail on", ".mode csv"]
        for table in TABLES:
            path = csvs[table]
            if table not in STAGED:
                lines.append(f".import --skip 1 '{path}' {table}")
                continue
            info = conn.execute(f"PRAGMA table_info({table})").fetchall()
            names = [c[1] for c in info]
            select = ", ".join(n if notnull else f"nullif({n}, '')"
                               for _cid, n, _type, notnull, _dflt, _pk in info)
            lines += [
                f"CREATE TEMP TABLE stage_{table} ({', '.join(names)});",
                f".import --skip 1 --schema temp '{path}' stage_{table}",
                f"INSERT INTO main.{table} SELECT {select} FROM temp.stage_{table};",
                f"DROP TABLE temp.stage_{table};",
            ]
        return "\n".join(lines) + "\n"
    finally:
        conn.close()


def shell_import(shell: str, db: Path, csvs: dict[str, Path]) -> float:
    """Seconds for the sqlite3 shell to import ``csvs`` into the empty cache ``db``."""
    script = _script(db, csvs)
    start = time.perf_counter()
    proc = subprocess.run([shell, str(db)], input=script, text=True, capture_output=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0 or proc.stderr.strip():
        raise RuntimeError(f"sqlite3 .import failed: {proc.stderr.strip()[:500]}")
    return seconds


def count_rows(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES)
    finally:
        conn.close()
