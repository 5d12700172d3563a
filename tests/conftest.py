"""Shared fixtures: a real cache file in a temporary folder with a small, explicit world.

The sample county (sync.sample) is tested on its own; these tests build the few rows each
case needs so a reader sees the whole situation in the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from sync import db
from sync.circulation import Circulation, Identity
from sync.policy import Policy

HERE = "CN-431121-0002"
CENTRAL = "CN-431121-0001"


class ManualClock:
    """A clock the test moves by hand; wall time may jump backwards like a Pi's after a
    power cut."""

    def __init__(self, when: datetime, synchronised: bool = True, boot_id: str = "boot-a"):
        self.wall = int(when.timestamp() * 1e9)
        self.mono = 1_000_000_000
        self.sync = synchronised
        self.boot = boot_id

    def wall_ns(self) -> int:
        return self.wall

    def monotonic_ns(self) -> int:
        self.mono += 1000
        return self.mono

    def boot_id(self) -> str:
        return self.boot

    def synchronised(self) -> bool:
        return self.sync

    def advance(self, seconds: float) -> None:
        self.wall += int(seconds * 1e9)
        self.mono += int(seconds * 1e9)


# 2026-11-25 10:00 in Shanghai.
NOON_ISH = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
TODAY = date(2026, 11, 25)


@dataclass
class World:
    cache: db.Cache
    clock: ManualClock
    path: Path

    def circulation(self, policy: Policy | None = None, **identity: object) -> Circulation:
        ident = Identity(**{"device_id": "test-01", "branch": HERE, **identity})  # type: ignore[arg-type]
        return Circulation(self.cache, ident, policy or Policy(), self.clock)

    def sql(self, statement: str, *args: object) -> list[tuple]:
        return self.cache.conn.execute(statement, args).fetchall()

    def one(self, statement: str, *args: object) -> object:
        row = self.cache.conn.execute(statement, args).fetchone()
        return None if row is None else row[0]

    def patron(self, card: str, patron_type: str = "adult", **cols: object) -> int:
        values = {"card_number": card, "name": f"读者{card}", "patron_type": patron_type,
                  "home_branch": HERE, **cols}
        return self._insert("patrons", values)

    def item(self, barcode: str, **cols: object) -> int:
        values = {"barcode": barcode, "title": f"书{barcode}", "owning_branch": HERE,
                  "current_branch": HERE, **cols}
        return self._insert("items", values)

    def _insert(self, table: str, values: dict[str, object]) -> int:
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        cur = self.cache.conn.execute(
            f"INSERT INTO {table} ({names}) VALUES ({marks})", tuple(values.values()))
        return int(cur.lastrowid)

    def events(self) -> list[tuple[int, str]]:
        return [tuple(r) for r in self.sql("SELECT seq, kind FROM outbox ORDER BY seq")]


def build_world(path: Path, clock: ManualClock) -> World:
    cache = db.create(path)
    w = World(cache, clock, path)
    conn = cache.conn
    conn.execute("INSERT INTO branches (isil, name, kind, closed_weekdays) VALUES "
                 f"('{CENTRAL}', '县图书馆', 'central', '1'), "
                 f"('{HERE}', '城东24小时城市书房', '24h-space', '')")
    conn.executemany(
        "INSERT INTO loan_rules (patron_type, loan_type, loan_days, max_renewals, max_loans)"
        " VALUES (?, ?, ?, ?, ?)",
        [("*", "*", 30, 2, 10), ("child", "*", 21, 1, 5), ("*", "reference", 0, 0, 0),
         ("*", "new_book", 14, 0, 10)],
    )
    return w


@pytest.fixture(autouse=True)
def _private_runtime_dir(tmp_path_factory, monkeypatch):
    """Commands without a config talk to a running daemon on the default sim socket under
    $XDG_RUNTIME_DIR: each test gets its own, so neither a developer's demo nor another
    test's daemon is ever reached by accident."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path_factory.mktemp("runtime")))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOON_ISH)


@pytest.fixture
def world(tmp_path: Path, clock: ManualClock):
    w = build_world(tmp_path / "kiosk.db", clock)
    yield w
    w.cache.close()


@pytest.fixture
def folder():
    """A short private folder with a simulated kiosk's world database (``kiosk.db``) and its
    config (``kiosk.toml``, control socket inside): see :mod:`tests.daemon_helpers`."""
    from tests.daemon_helpers import make_world, remove_tree, short_dir, write_config

    path = short_dir()
    make_world(path / "kiosk.db")
    write_config(path, path / "kiosk.db")
    yield path
    remove_tree(path)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium, one per test module (see tests/browser.py)."""
    from tests.browser import launch

    yield from launch()
