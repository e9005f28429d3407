from __future__ import annotations

import shutil
from pathlib import Path

import msgspec
import pytest

from evo_core import events as ev
from evo_core.commands import Beat, RegisterGenesis
from evo_core.decide import decide
from evo_core.evolve import evolve
from evo_core.state import State
from ledger import EventStore, Ledger, latest_valid
from ledger.snapshot import Snapshot, snapshot_paths, write_snapshot


def _full_fold(home: Path) -> State:
    state = State()
    for rec in Ledger(home).records():
        state = evolve(state, rec.event)
    return state


def _populate(home: Path, beats: int, *, every: int = 50) -> EventStore[State]:
    es: EventStore[State] = EventStore(home, snapshot_every=every, fsync=False)
    es.execute(lambda s: decide(s, RegisterGenesis(generation="G000")))
    for i in range(beats):
        es.execute(lambda s: decide(s, Beat(period=1000, count=1 + i % 3)))
    return es


def test_execute_uses_the_core(home: Path) -> None:
    es = _populate(home, 10)
    loaded = es.load()
    assert loaded.state.cycle == sum(1 + i % 3 for i in range(10))
    assert loaded.state.head == "G000"
    assert loaded.state == _full_fold(home)
    assert loaded.checkpoint == es.ledger.tail()
    assert loaded.offset == (home / "ledger.jsonl").stat().st_size


def test_snapshot_plus_tail_equals_full_replay(home: Path) -> None:
    es = _populate(home, 120, every=50)
    assert 1 <= len(snapshot_paths(home)) <= 2
    fresh: EventStore[State] = EventStore(home, snapshot_every=50, fsync=False)
    loaded = fresh.load()
    assert loaded.state == _full_fold(home) == es.load().state
    snap = latest_valid(fresh.ledger, fresh.fold.version)
    assert snap is not None and snap.seq > 0
    assert msgspec.json.decode(bytes(snap.state), type=State) == [s for r, s in fresh.replay(snap.seq)][-1]


def test_deleting_snapshots_changes_nothing(home: Path) -> None:
    _populate(home, 80, every=20)
    a = EventStore(home, fsync=False).load()
    shutil.rmtree(home / "snapshots")
    b = EventStore(home, fsync=False, snapshot_every=10**9).load()
    assert a == b


@pytest.mark.parametrize("damage", ["garbage", "hash", "offset", "version", "seq", "state"])
def test_bad_snapshots_are_ignored(home: Path, damage: str) -> None:
    _populate(home, 60, every=10**9)
    es: EventStore[State] = EventStore(home, fsync=False, snapshot_every=10**9)
    truth = es.load()
    led = es.ledger
    recs = list(led.records())
    rec = recs[len(recs) // 2]
    wrong_state = msgspec.Raw(msgspec.json.encode(State(cycle=123456)))
    snap = Snapshot(version=es.fold.version, seq=rec.seq, hash=rec.hash, offset=rec.end, state=wrong_state)
    if damage == "garbage":
        path = write_snapshot(home, snap)
        path.write_bytes(b"{not json")
    elif damage == "hash":
        write_snapshot(home, msgspec.structs.replace(snap, hash="0" * 64))
    elif damage == "offset":
        write_snapshot(home, msgspec.structs.replace(snap, offset=rec.end - 1))
    elif damage == "version":
        write_snapshot(home, msgspec.structs.replace(snap, version="evo-ledger-snapshot/0;old"))
    elif damage == "seq":
        write_snapshot(home, msgspec.structs.replace(snap, seq=rec.seq + 1))
    else:  # a state that does not even decode
        write_snapshot(home, msgspec.structs.replace(snap, state=msgspec.Raw(b'{"cycle":"x"}')))
    if damage != "state":  # the ledger backs it; the store rejects it when decoding fails
        assert latest_valid(led, es.fold.version) is None
    assert EventStore(home, fsync=False).load().state == truth.state


def test_valid_snapshot_is_used(home: Path) -> None:
    """Proof the snapshot is really read: a (forged) valid one changes the folded state."""
    _populate(home, 30, every=10**9)
    es: EventStore[State] = EventStore(home, fsync=False)
    rec = list(es.ledger.records())[-1]
    forged = State(cycle=424242)
    write_snapshot(home, Snapshot(version=es.fold.version, seq=rec.seq, hash=rec.hash,
                                  offset=rec.end, state=msgspec.Raw(msgspec.json.encode(forged))))
    assert EventStore(home, fsync=False).load().state == forged


def test_older_snapshot_used_when_newest_is_stale(home: Path) -> None:
    es = _populate(home, 100, every=30)
    paths = snapshot_paths(home)
    assert len(paths) == 2
    paths[0].write_bytes(b"torn")
    assert latest_valid(es.ledger, es.fold.version) is not None
    assert EventStore(home, fsync=False).load().state == _full_fold(home)


def test_execute_empty_decision_appends_nothing(home: Path) -> None:
    es = _populate(home, 3)
    before = es.ledger.tail()
    state, cp, events = es.execute(lambda s: [])
    assert events == [] and cp == before == es.ledger.tail() and state.cycle == es.load().state.cycle


def test_domain_error_propagates_and_appends_nothing(home: Path) -> None:
    es = _populate(home, 3)
    before = (home / "ledger.jsonl").read_bytes()

    class Boom(Exception):
        pass

    def bad(state: State) -> list[ev.Event]:
        raise Boom("illegal")

    with pytest.raises(Boom):
        es.execute(bad)
    with pytest.raises(Exception) as err:
        es.execute(lambda s: decide(s, Beat(period=10, cycle=1)))  # cycle does not increase
    assert type(err.value).__name__ != "ConcurrencyError"
    assert (home / "ledger.jsonl").read_bytes() == before


def test_conflict_is_retried_on_fresh_state(home: Path) -> None:
    a = _populate(home, 2)
    b: EventStore[State] = EventStore(home, fsync=False)
    a.load()
    seen: list[int] = []

    def decide_once_interfered(state: State) -> list[ev.Event]:
        seen.append(state.cycle)
        if len(seen) == 1:
            b.execute(lambda s: [ev.Heartbeat(cycle=s.cycle + 1)])
        return [ev.Heartbeat(cycle=state.cycle + 1)]

    state, cp, events = a.execute(decide_once_interfered)
    assert seen == [seen[0], seen[0] + 1]
    assert events == [ev.Heartbeat(cycle=seen[0] + 2)] and state.cycle == seen[0] + 2
    assert a.load().state == _full_fold(home) and Ledger(home).verify().ok


def test_replay_yields_state_after_each_record(home: Path) -> None:
    _populate(home, 5)
    es: EventStore[State] = EventStore(home, fsync=False)
    pairs = list(es.replay())
    assert [r.seq for r, _ in pairs] == list(range(len(pairs)))
    assert pairs[-1][1] == es.load().state
    assert [r.seq for r, _ in es.replay(upto_seq=2)] == [0, 1, 2]
