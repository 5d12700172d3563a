"""Property tests: random sequences of checkouts, returns, renewals and pickups keep the
cache's invariants (see tests/invariants.py) and agree with a simple model."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from sync.policy import OfflineLimits, Policy, Station
from tests.conftest import CENTRAL, HERE, NOON_ISH, ManualClock, build_world
from tests.invariants import violations

CARDS = ["C0", "C1", "C2", "C3"]
BARCODES = [f"B{n}" for n in range(8)] + ["UNKNOWN-1", "UNKNOWN-2"]
SOAK = bool(os.environ.get("KIOSK_SOAK"))


class Circulating(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.world = build_world(Path(self.tmp.name) / "k.db", ManualClock(NOON_ISH))
        w = self.world
        w.patron("C0")
        w.patron("C1", patron_type="child")
        w.patron("C2")
        w.patron("C3", expires_on="2026-12-10")
        for n in range(8):
            w.item(f"B{n}", owning_branch=CENTRAL if n % 3 == 0 else HERE,
                   loan_type="reference" if n == 7 else "normal")
        w.sql("INSERT INTO holds (patron_id, item_id, pickup_branch, placed_at) VALUES"
              " ((SELECT id FROM patrons WHERE card_number = 'C2'),"
              " (SELECT id FROM items WHERE barcode = 'B5'), ?, '2026-11-01')", HERE)
        policy = Policy(offline=OfflineLimits(max_loans_per_patron=4))
        self.circ = w.circulation(policy)
        self.model: dict[str, str] = {}  # barcode -> card, for items lent by this device
        self.events = 0

    def teardown(self):
        self.world.cache.close()
        self.tmp.cleanup()

    def _count(self, outcome):
        self.events += len(outcome.events)
        if outcome.decision.changes_state and outcome.allowed:
            assert outcome.events, "a state change without an event"
        else:
            assert not outcome.events, "an event without a state change"

    @rule(card=st.sampled_from(CARDS), barcode=st.sampled_from(BARCODES),
          desk=st.booleans())
    def checkout(self, card, barcode, desk):
        out = self.circ.checkout(card, barcode, station=Station.DESK if desk else None)
        self._count(out)
        if out.allowed:
            self.model[barcode] = card
        elif out.decision.reason == "already_on_loan_to_patron":
            assert self.model.get(barcode) == card

    @rule(barcode=st.sampled_from(BARCODES))
    def checkin(self, barcode):
        out = self.circ.checkin(barcode)
        self._count(out)
        assert out.allowed  # a return is always accepted
        self.model.pop(barcode, None)

    @rule(card=st.sampled_from(CARDS), barcode=st.sampled_from(BARCODES))
    def renew(self, card, barcode):
        out = self.circ.renew(card, barcode)
        self._count(out)
        if out.allowed:
            assert self.model.get(barcode) == card

    @rule(days=st.integers(min_value=0, max_value=20))
    def time_passes(self, days):
        self.world.clock.advance(days * 86400)

    @rule()
    def clock_jumps_back(self):
        self.world.clock.advance(-2 * 86400)
        self.world.clock.sync = False

    @invariant()
    def cache_is_consistent(self):
        if not hasattr(self, "world"):
            return
        assert violations(self.world.cache.conn) == []
        assert self.world.one("SELECT count(*) FROM outbox") == self.events
        open_loans = dict(self.world.sql(
            "SELECT i.barcode, p.card_number FROM loans l JOIN items i ON i.id = l.item_id"
            " JOIN patrons p ON p.id = l.patron_id WHERE l.returned_at IS NULL"))
        assert open_loans == self.model
        hlcs = [r[0] for r in self.world.sql("SELECT hlc FROM outbox ORDER BY seq")]
        assert hlcs == sorted(set(hlcs))


Circulating.TestCase.settings = settings(
    max_examples=400 if SOAK else 60, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow], database=None,
)
test_circulation_keeps_invariants = Circulating.TestCase
