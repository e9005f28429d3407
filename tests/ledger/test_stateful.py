"""The real ledger against a trivial model (a list of events) and against the in-memory ledger
(the same bytes, whatever crashed in between), driven by Hypothesis."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from evo_core import events as ev
from ledger import EMPTY, ConcurrencyError, Ledger, MemoryLedger, encode_batch
from tests.ledger.contract import fixed_clock

EVENTS = st.one_of(
    st.builds(ev.Heartbeat, cycle=st.integers(0, 10**6)),
    st.builds(ev.NoPromotion, window=st.integers(0, 99), reason=st.text(max_size=20)),
)


class LedgerMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.led = Ledger(self.dir, fsync=False, clock=fixed_clock)
        self.memory = MemoryLedger(clock=fixed_clock)
        self.model: list[ev.Event] = []
        self.hashes: list[str] = []
        self.pending = b""  # bytes after the last committed record (a crash left them)

    def teardown(self) -> None:
        self.led.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _last_seq(self) -> int:
        return len(self.model) - 1

    @rule(events=st.lists(EVENTS, min_size=1, max_size=5))
    def append(self, events: list[ev.Event]) -> None:
        cp = self.led.append(events, expected_seq=self._last_seq())
        assert self.memory.append(events, expected_seq=self._last_seq()) == cp
        self.model += events
        self.pending = b""
        assert cp.seq == self._last_seq()
        self.hashes = [r.hash for r in self.led.records()]
        assert cp.hash == self.hashes[-1]

    @rule(events=st.lists(EVENTS, min_size=1, max_size=3), back=st.integers(1, 3))
    def stale_append(self, events: list[ev.Event], back: int) -> None:
        before = (self.dir / "ledger.jsonl").read_bytes() if (self.dir / "ledger.jsonl").exists() else b""
        try:
            self.led.append(events, expected_seq=self._last_seq() - back)
        except ConcurrencyError as err:
            assert err.actual == self._last_seq()
        else:
            raise AssertionError("a stale expected_seq was accepted")
        try:
            self.memory.append(events, expected_seq=self._last_seq() - back)
        except ConcurrencyError as err:
            assert err.actual == self._last_seq()
        else:
            raise AssertionError("the in-memory ledger accepted a stale expected_seq")
        after = (self.dir / "ledger.jsonl").read_bytes() if (self.dir / "ledger.jsonl").exists() else b""
        # the append recovered the torn tail (if any) but wrote nothing of its own
        assert after == before[: len(before) - len(self.pending)]
        self.pending = b""

    @precondition(lambda self: not self.pending)
    @rule(events=st.lists(EVENTS, min_size=1, max_size=6), data=st.data())
    def crash_mid_batch(self, events: list[ev.Event], data: st.DataObject) -> None:
        prev = self.hashes[-1] if self.hashes else EMPTY.hash
        raw, _ = encode_batch(len(self.model), prev, events, "2026-01-01T00:00:00.000Z")
        cut = data.draw(st.integers(1, len(raw) - 1), label="cut")
        note(f"batch of {len(events)} cut at byte {cut} of {len(raw)}")
        self.pending = raw[:cut]
        with open(self.dir / "ledger.jsonl", "ab") as f:
            f.write(self.pending)

    @rule()
    def recover(self) -> None:
        torn = self.led.recover()
        if self.pending:
            assert torn is not None and torn.path.read_bytes() == self.pending
            assert torn.seq == len(self.model)
        else:
            assert torn is None
        self.pending = b""

    @rule()
    def reopen(self) -> None:
        self.led.close()
        self.led = Ledger(self.dir, fsync=False, clock=fixed_clock)

    @invariant()
    def tail_matches(self) -> None:
        if not hasattr(self, "led"):
            return
        tail = self.led.tail()
        assert tail.seq == self._last_seq()
        assert tail.hash == (self.hashes[-1] if self.hashes else EMPTY.hash)

    @invariant()
    def records_match(self) -> None:
        if not hasattr(self, "led"):
            return
        assert [r.event for r in self.led.records()] == self.model

    @invariant()
    def the_in_memory_ledger_holds_the_same_bytes(self) -> None:
        if not hasattr(self, "led"):
            return
        path = self.dir / "ledger.jsonl"
        data = path.read_bytes() if path.exists() else b""
        assert data[: len(data) - len(self.pending)] == self.memory.to_bytes()
        assert list(self.memory.records()) == list(self.led.records())

    @invariant()
    def verifies(self) -> None:
        if not hasattr(self, "led"):
            return
        rep = self.led.verify()
        assert rep.ok and rep.count == len(self.model), rep
        assert (rep.torn is not None) == bool(self.pending), rep


TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
