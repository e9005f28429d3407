"""The file event store's snapshots folder (what every ledger promises is in ``contract.py``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import msgspec
import pytest

from evo_core.commands import Beat, RegisterGenesis
from evo_core.decide import decide
from evo_core.evolve import evolve, fold
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


def test_snapshot_plus_tail_equals_full_replay(home: Path) -> None:
    es = _populate(home, 120, every=50)
    assert 1 <= len(snapshot_paths(home)) <= 2
    fresh: EventStore[State] = EventStore(home, snapshot_every=50, fsync=False)
    loaded = fresh.load()
    assert loaded.state == _full_fold(home) == es.load().state
    snap = latest_valid(fresh.ledger, fresh.snapshots, fresh.fold.version)
    assert snap is not None and snap.seq > 0
    upto = [r.event for r in fresh.ledger.records() if r.seq <= snap.seq]
    assert msgspec.json.decode(bytes(snap.state), type=State) == fold(upto)


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
        assert latest_valid(led, es.snapshots, es.fold.version) is None
    assert EventStore(home, fsync=False).load().state == truth.state


def test_older_snapshot_used_when_newest_is_stale(home: Path) -> None:
    es = _populate(home, 100, every=30)
    paths = snapshot_paths(home)
    assert len(paths) == 2
    paths[0].write_bytes(b"torn")
    assert latest_valid(es.ledger, es.snapshots, es.fold.version) is not None
    assert EventStore(home, fsync=False).load().state == _full_fold(home)
