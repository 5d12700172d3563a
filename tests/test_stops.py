"""Van stops: the stop staff chose goes on every event and daily figure written while it is
current, choosing it is audited, and a stop that is not configured is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from sync import stats, stops

STOPS = ("石门村", "柳树湾", "𠀀山村")  # one name outside GB2312 on purpose


def now_of(world) -> datetime:
    return datetime.fromtimestamp(world.clock.wall / 1e9, UTC)


def choose(world, stop):
    stops.choose(world.cache.conn, stop, known=STOPS, at=now_of(world), staff_id=None,
                 staff_card="9900000001")


def lend(world, card: str, barcode: str) -> None:
    outcome = world.circulation().checkout(card, barcode)
    assert outcome.allowed, outcome


def test_no_stop_until_one_is_chosen(world):
    world.patron("P1")
    world.item("B1")
    assert stops.current(world.cache.conn) is None
    lend(world, "P1", "B1")
    assert world.sql("SELECT stop FROM outbox") == [(None,)]
    assert world.sql("SELECT DISTINCT stop FROM daily_stats") == [("",)]


def test_every_event_and_figure_carries_the_current_stop(world):
    world.patron("P1")
    for b in ("B1", "B2", "B3"):
        world.item(b)
    choose(world, "石门村")
    lend(world, "P1", "B1")
    choose(world, "柳树湾")
    lend(world, "P1", "B2")
    world.circulation().checkin("B1")
    by_kind = world.sql("SELECT kind, stop FROM outbox ORDER BY seq")
    assert [s for k, s in by_kind if k == "checkout"] == ["石门村", "柳树湾"]
    assert [s for k, s in by_kind if k == "checkin"] == ["柳树湾"]
    loans = dict(world.sql("SELECT stop, value FROM daily_stats WHERE metric = 'loans'"))
    assert loans == {"石门村": 1, "柳树湾": 1}
    assert stats.totals(world.cache.conn)["loans"] == 2
    choose(world, None)  # back at the depot
    lend(world, "P1", "B3")
    assert world.one("SELECT stop FROM outbox ORDER BY seq DESC LIMIT 1") is None


def test_choosing_a_stop_is_audited(world):
    choose(world, "𠀀山村")
    choose(world, "石门村")
    rows = world.sql("SELECT action, staff_card, details FROM staff_audit ORDER BY id")
    assert [(a, c) for a, c, _ in rows] == [("stop_chosen", "9900000001")] * 2
    assert json.loads(rows[1][2]) == {"stop": "石门村", "previous": "𠀀山村"}


def test_an_unknown_stop_is_refused_and_changes_nothing(world):
    choose(world, "石门村")
    with pytest.raises(stops.UnknownStop, match="石门"):
        choose(world, "石门")
    assert stops.current(world.cache.conn) == "石门村"
    assert world.one("SELECT count(*) FROM staff_audit") == 1
