"""``evolve``: the pure, total fold. Replay gives the same state; events round-trip the codec."""

from __future__ import annotations

import msgspec
import pytest

from evo_core import events as ev
from evo_core.evolve import evolve, fold
from evo_core.state import CandidateStatus, Phase, State
from msgspec.structs import replace

from tests.core.helpers import BETTER, GENESIS, GOOD, Driver, snapshot, vfold


def lifecycle() -> Driver:
    d = Driver().genesis()
    d.promote()
    d.window(["fail", "breach", "fail"])
    d.promote([BETTER, "fail", GOOD])
    d.rollback()
    return d


def test_replay_of_the_events_rebuilds_the_state_decide_saw() -> None:
    d = lifecycle()
    assert vfold(d.events, State()) == d.state
    assert snapshot(vfold(d.events, State())) == snapshot(d.state)
    # the plain fold is the same but for what only the verified one knows: the ledger id
    assert fold(d.events) == replace(d.state, ledger_id="")


def test_replay_through_the_codec_rebuilds_the_same_state() -> None:
    d = lifecycle()
    decoded = [ev.decode_event(ev.encode_event(e)) for e in d.events]
    assert decoded == d.events
    assert vfold(decoded, State()) == d.state


def test_evolve_does_not_mutate_its_input() -> None:
    d = lifecycle()
    states = [State()]
    for e in d.events:
        states.append(evolve(states[-1], e))
    frozen = [snapshot(s) for s in states]
    assert [snapshot(fold(d.events[:i])) for i in range(len(d.events) + 1)] == frozen


def test_encoded_event_carries_its_type_tag_first() -> None:
    data = ev.encode_event(ev.Heartbeat(cycle=7))
    assert data == b'{"type":"Heartbeat","cycle":7}'


def test_unknown_event_tag_is_an_error_not_skipped() -> None:
    with pytest.raises(msgspec.ValidationError):
        ev.decode_event(b'{"type":"Teleported","cycle":1}')


def test_old_records_without_defaulted_fields_still_decode() -> None:
    e = ev.decode_event(b'{"type":"TrainingStarted","candidate":"x"}')
    assert e == ev.TrainingStarted(candidate="x", attempt=1)


def test_event_names_are_unique_and_are_the_ledger_tag() -> None:
    from tests.core.samples import SAMPLES

    assert len(ev.EVENT_TYPES) == len(ev.AnyEvent.__args__)  # type: ignore[attr-defined]
    for name, cls in ev.EVENT_TYPES.items():
        sample = SAMPLES[cls]
        assert ev.event_name(sample) == name
        assert msgspec.json.decode(ev.encode_event(sample))["type"] == name
        assert ev.decode_event(ev.encode_event(sample)) == sample


def test_folded_state_fields() -> None:
    d = Driver().genesis()
    d.window(["breach", GOOD, BETTER])
    s = d.state
    a = s.candidates[d.candidates()[0]]
    assert a.status is CandidateStatus.FAILED and a.failure == "budget: steps" and a.frozen
    assert s.phase is Phase.PROPOSED and s.generations[d.candidates()[2]].parent == GENESIS
    assert s.head == GENESIS and s.promoted == (GENESIS,)
    assert s.parent is None and s.busy
