"""The staff desk inside the real daemon (in this process, simulated hardware): a staff
card asks for the PIN, a patron tapping instead takes the kiosk back, and staff are signed
out automatically once idle, with the patron session they left ended and the sign-out
audited."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from sync import db, staff
from tests.daemon_helpers import (
    CARDS,
    make_world,
    remove_tree,
    running,
    settings_for,
    short_dir,
    wait_until,
    write_config,
)

STAFF_CARD, STAFF_PIN = "9900000031", "5172"


@pytest.fixture
def k() -> Iterator[Any]:
    folder = short_dir()
    try:
        make_world(folder / "kiosk.db")
        with db.Cache.open(folder / "kiosk.db") as cache, cache.transaction() as conn:
            staff.add_staff(conn, STAFF_CARD, "馆员周敏", "van", STAFF_PIN)
        with running(settings_for(write_config(folder, folder / "kiosk.db"))) as daemon:
            daemon.folder = folder
            yield daemon
    finally:
        remove_tree(folder)


def desk_view(k: Any) -> Any:
    return k.daemon.desk.view()




def audit(k: Any) -> list[str]:
    with db.Cache.open(k.folder / "kiosk.db") as cache:
        return [r[0] for r in cache.conn.execute("SELECT action FROM staff_audit ORDER BY id")]


def test_a_patron_tapping_during_the_staff_pin_prompt_takes_the_kiosk_back(k: Any) -> None:
    k.tap(STAFF_CARD)
    assert wait_until(lambda: (desk_view(k) or {}).get("state") == "pin")
    k.lift_card()
    time.sleep(0.3)
    mark = k.mark()
    k.tap(CARDS[0])
    k.wait_for("session_started", start=mark, mode="lend")
    assert desk_view(k) is None and k.daemon.desk.staff is None


def test_idle_staff_are_signed_out_and_their_patron_session_ends(k: Any) -> None:
    desk = k.daemon.desk
    desk.limits = staff.Limits(idle=timedelta(seconds=1))  # this test's patience
    k.tap(STAFF_CARD)
    assert wait_until(lambda: (desk_view(k) or {}).get("state") == "pin")
    assert k.call(lambda: desk.enter_pin(STAFF_PIN))["ok"]
    k.lift_card()
    time.sleep(0.3)
    mark = k.mark()
    k.tap(CARDS[1])  # a patron at the desk
    k.wait_for("session_started", start=mark, mode="lend")
    signed_out = k.wait_for("staff_signed_out", start=mark, timeout=10)
    assert signed_out["reason"] == "idle"
    k.wait_for("session_ended", start=mark, reason="staff_signed_out")
    assert desk_view(k) is None
    assert audit(k) == ["sign_in", "sign_out"]
    # Staff functions are gone with the session: the desk answers as to anybody.
    from kiosk.daemon.desk import DeskError

    with pytest.raises(DeskError) as refused:
        desk.require_staff()
    assert refused.value.status == 403
