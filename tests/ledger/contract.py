"""The contract of the ledger port (``ledger/port.py``): one suite every ledger passes.

As eventsourcing's recorder test cases do, ``LedgerContract`` holds the tests and each ledger
gets a subclass (``test_contract.py``) that provides the ``backend`` fixture: a way to open
handles on one ledger and its snapshots, and to read the bytes it holds. Every test runs on the
file ledger and on the in-memory one alike.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Iterator

import msgspec
import pytest

from evo_core import events as ev
from evo_core.commands import Beat, RegisterGenesis
from evo_core.decide import decide
from evo_core.evolve import fold as core_fold_events
from evo_core.state import State
from ledger import (
    EMPTY,
    GENESIS_PREV,
    Checkpoint,
    ConcurrencyError,
    CorruptRecord,
    EventStore,
    Fold,
    LedgerPort,
    Snapshot,
    SnapshotStore,
    encode_batch,
    latest_valid,
    record_hash,
)
from tests.ledger.conftest import audit, sample_events

AT = "2026-01-02T03:04:05.678Z"


def fixed_clock() -> str:
    return AT


class Backend(ABC):
    """One ledger (and its snapshots) that a test may open several handles on."""

    @abstractmethod
    def open(self) -> LedgerPort:
        """A new handle on this ledger whose appends are stamped ``AT``."""

    @abstractmethod
    def snapshots(self) -> SnapshotStore:
        """The snapshots beside this ledger."""

    @abstractmethod
    def data(self) -> bytes:
        """The ledger's bytes, as its file holds them."""

    def store(self, *, snapshot_every: int = 10**9, fold: Fold[State] | None = None) -> EventStore[State]:
        return EventStore(self.open(), snapshots=self.snapshots(), snapshot_every=snapshot_every, fold=fold)


def names_fold() -> Fold[tuple[str, ...]]:
    """A fold that is not the core's: the event type names in order."""
    return Fold(
        initial=tuple,
        evolve=lambda acc, e: (*acc, type(e).__name__),
        encode=msgspec.json.encode,
        decode=lambda b: tuple(msgspec.json.decode(b, type=list[str])),
        version="names/1",
    )


def expected_bytes(batches: list[list[ev.Event]]) -> bytes:
    """The contract's bytes for these batches, built without any ledger."""
    out, seq, prev = b"", 0, GENESIS_PREV
    for batch in batches:
        data, prev = encode_batch(seq, prev, batch, AT)
        out += data
        seq += len(batch)
    return out


BATCHES: list[list[ev.Event]] = [
    [ev.GenerationRegistered(generation="G000", source="base")],
    [ev.Heartbeat(cycle=1), ev.Heartbeat(cycle=2), ev.Heartbeat(cycle=3)],
    sample_events(),
    [ev.Heartbeat(cycle=4)],
]


class LedgerContract:
    @pytest.fixture
    def backend(self) -> Iterator[Backend]:
        raise NotImplementedError("a subclass provides the ledger under test")

    @pytest.fixture
    def led(self, backend: Backend) -> Iterator[LedgerPort]:
        handle = backend.open()
        yield handle
        handle.close()

    def fill(self, led: LedgerPort) -> list[Checkpoint]:
        return [led.append(batch) for batch in BATCHES]

    # ------------------------------------------------------------------ reading and appending

    def test_it_is_a_ledger_port(self, led: LedgerPort) -> None:
        assert isinstance(led, LedgerPort)

    def test_an_empty_ledger(self, led: LedgerPort, backend: Backend) -> None:
        assert led.tail() == EMPTY and list(led.records()) == [] and backend.data() == b""
        assert led.fold(lambda n, _e: n + 1, 0) == (0, EMPTY, 0, 0)
        report = led.verify()
        assert report.ok and report.count == 0 and report.last == EMPTY

    def test_appends_get_consecutive_seqs_and_read_back_in_order(self, led: LedgerPort) -> None:
        cps = self.fill(led)
        sizes = [len(b) for b in BATCHES]
        assert [cp.seq for cp in cps] == [sum(sizes[: i + 1]) - 1 for i in range(len(sizes))]
        records = list(led.records())
        assert [r.seq for r in records] == list(range(sum(sizes)))
        assert [r.event for r in records] == [e for b in BATCHES for e in b]  # floats, unicode, nesting
        assert led.tail() == cps[-1] == Checkpoint(records[-1].seq, records[-1].hash)
        assert all(r.at == AT for r in records)

    def test_the_hashes_chain_as_the_contract_says(self, led: LedgerPort, backend: Backend) -> None:
        cps = self.fill(led)
        records = list(led.records())
        assert [r.prev for r in records] == [GENESIS_PREV] + [r.hash for r in records[:-1]]
        audited = audit(backend.data())
        assert [a["seq"] for a in audited] == [r.seq for r in records]
        lines = backend.data().splitlines(keepends=True)
        assert [record_hash(line[:-76] + b"}") for line in lines] == [r.hash for r in records]
        assert [r.end for r in records] == [sum(map(len, lines[: i + 1])) for i in range(len(lines))]
        assert [r.more for r in records if r.seq <= cps[1].seq] == [0, 2, 1, 0]  # batch markers

    def test_the_bytes_are_the_contracts_whichever_ledger_holds_them(self, led: LedgerPort, backend: Backend) -> None:
        self.fill(led)
        assert backend.data() == expected_bytes(BATCHES)
        assert led.last_append_end == len(backend.data())

    def test_reading_resumes_from_a_position(self, led: LedgerPort) -> None:
        self.fill(led)
        records = list(led.records())
        for k in (1, 4, len(records) - 1):
            before = records[k - 1]
            assert list(led.records(k)) == records[k:]
            assert list(led.records(k, before.end, prev=before.hash)) == records[k:]
        assert list(led.records(len(records), records[-1].end, prev=records[-1].hash)) == []
        assert list(led.records(len(records) + 5)) == []

    def test_a_resume_point_that_does_not_chain_is_corruption(self, led: LedgerPort) -> None:
        self.fill(led)
        records = list(led.records())
        before = records[3]
        with pytest.raises(CorruptRecord):
            list(led.records(4, before.end, prev="f" * 64))
        with pytest.raises(CorruptRecord):
            led.fold(lambda n, _e: n + 1, 0, start_seq=4, start_offset=before.end, prev="f" * 64)
        with pytest.raises(CorruptRecord):
            led.fold(lambda n, _e: n + 1, 0, start_seq=5, start_offset=before.end, prev=before.hash)

    # ------------------------------------------------------------------ folding

    def test_the_fold_equals_folding_the_events(self, led: LedgerPort) -> None:
        self.fill(led)
        records = list(led.records())
        events = [r.event for r in records]

        def names(acc: tuple[str, ...], e: ev.Event) -> tuple[str, ...]:
            return (*acc, type(e).__name__)

        acc, last, end, count = led.fold(names, ())
        assert acc == functools.reduce(names, events, ())
        assert last == led.tail() and end == records[-1].end and count == len(records)
        k = 4
        acc, last, end, count = led.fold(names, ("x",), start_seq=k, start_offset=records[k - 1].end,
                                         prev=records[k - 1].hash)
        assert acc == functools.reduce(names, events[k:], ("x",)) and count == len(records) - k
        past = led.fold(names, ("x",), start_seq=len(records), start_offset=end, prev=last.hash)
        assert past == (("x",), last, end, 0)

    def test_holds_names_only_committed_records_where_they_end(self, led: LedgerPort) -> None:
        self.fill(led)
        records = list(led.records())
        for rec in records:
            cp = Checkpoint(rec.seq, rec.hash)
            assert led.holds(cp, rec.end) == (rec.more == 0)  # mid-batch records are not resume points
            assert not led.holds(cp, rec.end - 1)
            assert not led.holds(Checkpoint(rec.seq, "0" * 64), rec.end)
        last = records[-1]
        assert not led.holds(Checkpoint(last.seq + 1, last.hash), last.end)
        assert not led.holds(Checkpoint(0, records[0].hash), 0)

    # ------------------------------------------------------------------ concurrency and refusals

    def test_an_expected_seq_that_matches_appends(self, led: LedgerPort) -> None:
        first = led.append([ev.Heartbeat(cycle=1)], expected_seq=-1)
        second = led.append([ev.Heartbeat(cycle=2)], expected_seq=first.seq)
        assert (first.seq, second.seq) == (0, 1)

    @pytest.mark.parametrize("expected", [-1, 0, 2, 7])
    def test_a_stale_expected_seq_raises_and_writes_nothing(self, led: LedgerPort, backend: Backend,
                                                           expected: int) -> None:
        led.append([ev.Heartbeat(cycle=1), ev.Heartbeat(cycle=2)])
        before, tail = backend.data(), led.tail()
        with pytest.raises(ConcurrencyError) as err:
            led.append([ev.Heartbeat(cycle=3)], expected_seq=expected)
        assert (err.value.expected, err.value.actual) == (expected, 1)
        assert backend.data() == before and led.tail() == tail and len(list(led.records())) == 2

    def test_two_handles_see_each_other_and_conflict(self, backend: Backend) -> None:
        a, b = backend.open(), backend.open()
        try:
            seen = a.tail()
            b.append([ev.Heartbeat(cycle=1)], expected_seq=seen.seq)
            assert [r.event for r in a.records()] == [ev.Heartbeat(cycle=1)] and a.tail() == b.tail()
            with pytest.raises(ConcurrencyError):
                a.append([ev.Heartbeat(cycle=1)], expected_seq=seen.seq)
            a.append([ev.Heartbeat(cycle=2)], expected_seq=a.tail().seq)
            assert [r.seq for r in b.records()] == [0, 1] and b.verify().ok
        finally:
            a.close()
            b.close()

    @pytest.mark.parametrize(
        "batch, error",
        [
            ([], ValueError),
            ([ev.Heartbeat(cycle=9), "not an event"], TypeError),
            ([ev.Heartbeat(cycle=9), ev.ShadowCompared(generation="G", cycle=1, exact=False,
                                                       similarity=float("nan"), query_id="q")], ValueError),
        ],
    )
    def test_a_refused_append_leaves_nothing_half_written(self, led: LedgerPort, backend: Backend,
                                                          batch: list[ev.Event], error: type[Exception]) -> None:
        self.fill(led)
        before, tail, records = backend.data(), led.tail(), list(led.records())
        with pytest.raises(error):
            led.append(batch)
        assert backend.data() == before and led.tail() == tail and list(led.records()) == records
        after = led.append([ev.Heartbeat(cycle=10)], expected_seq=tail.seq)
        assert after.seq == tail.seq + 1 and led.verify().ok

    # ------------------------------------------------------------------ verifying

    def test_verify_checks_the_chain_and_an_auditors_checkpoint(self, led: LedgerPort) -> None:
        self.fill(led)
        records = list(led.records())
        report = led.verify()
        assert report.ok and report.count == len(records) and report.last == led.tail()
        kept = Checkpoint(records[3].seq, records[3].hash)
        assert led.verify(kept).ok
        rewritten = led.verify(Checkpoint(kept.seq, "a" * 64))
        assert not rewritten.ok and "history rewritten" in rewritten.problems[0]
        ahead = led.verify(Checkpoint(len(records) + 2, "a" * 64))
        assert not ahead.ok and "truncated or rolled back" in ahead.problems[0]

    # ------------------------------------------------------------------ the event store over it

    def test_the_store_decides_then_persists_with_the_core(self, backend: Backend) -> None:
        es = backend.store()
        es.execute(lambda s: decide(s, RegisterGenesis(generation="G000")))
        for i in range(10):
            es.execute(lambda s: decide(s, Beat(period=1000, count=1 + i % 3)))
        loaded = es.load()
        events = [r.event for r in es.ledger.records()]
        assert loaded.state == core_fold_events(events) and loaded.state.head == "G000"
        assert loaded.state.cycle == sum(1 + i % 3 for i in range(10))
        assert loaded.checkpoint == es.ledger.tail() and loaded.offset == len(backend.data())
        assert backend.store().load() == loaded  # a fresh store folds the same

    def test_snapshot_plus_tail_equals_the_full_fold(self, backend: Backend) -> None:
        es = backend.store(snapshot_every=7)
        es.execute(lambda s: decide(s, RegisterGenesis(generation="G000")))
        for _ in range(40):
            es.execute(lambda s: decide(s, Beat(period=1000)))
        snaps = list(backend.snapshots().newest_first())
        assert 1 <= len(snaps) <= 2 and snaps[0].seq > 30
        full = core_fold_events(r.event for r in es.ledger.records())
        fresh = backend.store(snapshot_every=7)
        assert fresh.load().state == full == es.load().state
        other: EventStore[tuple[str, ...]] = EventStore(backend.open(), snapshots=backend.snapshots(),
                                                        fold=names_fold(), snapshot_every=5)
        assert other.load().state == tuple(type(r.event).__name__ for r in es.ledger.records())
        assert backend.store(snapshot_every=7).load().state == full  # the names snapshots change nothing

    def test_a_snapshot_the_ledger_backs_is_what_a_load_starts_from(self, backend: Backend) -> None:
        es = backend.store()
        es.execute(lambda s: decide(s, RegisterGenesis(generation="G000")))
        es.execute(lambda s: decide(s, Beat(period=1000, count=5)))
        rec = list(es.ledger.records())[-1]
        forged = State(cycle=424242)  # proof the snapshot is read: a forged valid one shows
        snap = Snapshot(version=es.fold.version, seq=rec.seq, hash=rec.hash, offset=rec.end,
                        state=msgspec.Raw(msgspec.json.encode(forged)))
        backend.snapshots().write(msgspec.structs.replace(snap, hash="0" * 64))  # not backed
        assert backend.store().load().state == es.load().state
        backend.snapshots().write(snap)
        assert backend.store().load().state == forged
        assert latest_valid(es.ledger, backend.snapshots(), es.fold.version) == snap

    def test_an_empty_decision_or_a_domain_error_appends_nothing(self, backend: Backend) -> None:
        es = backend.store()
        es.execute(lambda s: decide(s, RegisterGenesis(generation="G000")))
        es.execute(lambda s: decide(s, Beat(period=10, count=3)))
        before = backend.data()
        state, cp, events = es.execute(lambda s: [])
        assert events == [] and cp == es.ledger.tail() and state == es.load().state

        class Boom(Exception):
            pass

        def refuses(state: State) -> list[ev.Event]:
            raise Boom("illegal")

        with pytest.raises(Boom):
            es.execute(refuses)
        with pytest.raises(Exception) as err:
            es.execute(lambda s: decide(s, Beat(period=10, cycle=1)))  # the cycle does not increase
        assert not isinstance(err.value, ConcurrencyError)
        assert backend.data() == before

    def test_a_conflict_is_decided_again_on_the_fresh_state(self, backend: Backend) -> None:
        a, b = backend.store(), backend.store()
        a.execute(lambda s: decide(s, RegisterGenesis(generation="G000")))
        a.load()
        seen: list[int] = []

        def interfered_once(state: State) -> list[ev.Event]:
            seen.append(state.cycle)
            if len(seen) == 1:
                b.execute(lambda s: [ev.Heartbeat(cycle=s.cycle + 1)])
            return [ev.Heartbeat(cycle=state.cycle + 1)]

        state, _cp, events = a.execute(interfered_once)
        assert seen == [0, 1] and events == [ev.Heartbeat(cycle=2)] and state.cycle == 2
        assert a.load().state == core_fold_events(r.event for r in a.ledger.records())
        assert a.ledger.verify().ok


__all__ = ["AT", "Backend", "LedgerContract", "fixed_clock"]
