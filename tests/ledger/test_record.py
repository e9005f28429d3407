from __future__ import annotations

import math

import pytest
from blake3 import blake3
from hypothesis import given
from hypothesis import strategies as st

from evo_core import events as ev
from evo_core.values import Metrics
from ledger.record import GENESIS_PREV, CorruptRecord, encode_batch, parse_line

AT = "2026-11-25T17:45:50.123Z"


def test_single_record_has_the_contract_shape() -> None:
    data, h = encode_batch(0, GENESIS_PREV, [ev.Heartbeat(cycle=1)], AT)
    body = (
        b'{"seq":0,"prev":"' + b"0" * 64 + b'","at":"' + AT.encode()
        + b'","event":{"type":"Heartbeat","cycle":1}}'
    )
    assert h == blake3(body).hexdigest()
    assert data == body[:-1] + b',"hash":"' + h.encode() + b'"}\n'


def test_batch_marks_all_but_the_last_record() -> None:
    data, h = encode_batch(5, "a" * 64, [ev.Heartbeat(cycle=i) for i in range(3)], AT)
    lines = data.splitlines(keepends=True)
    assert [b'"more":2,' in lines[0], b'"more":1,' in lines[1], b'"more"' in lines[2]] == [True, True, False]
    prev = "a" * 64
    end = 0
    for i, line in enumerate(lines):
        end += len(line)
        rec = parse_line(line, 5 + i, prev, end)
        assert rec.event == ev.Heartbeat(cycle=i) and rec.at == AT and rec.end == end
        prev = rec.hash
    assert prev == h


def test_empty_batch_is_an_error() -> None:
    with pytest.raises(ValueError):
        encode_batch(0, GENESIS_PREV, [], AT)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_rejected(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        encode_batch(0, GENESIS_PREV, [ev.ShadowCompared(generation="g", cycle=1, exact=True, similarity=bad)], AT)
    nested = ev.BaselineEvaluated(
        window=1, generation="g", score=0.0,
        metrics=Metrics(recall=bad, generalize=0.0, tone_drift=0.0, law_violations=0),
    )
    with pytest.raises(ValueError, match="metrics.recall"):
        encode_batch(0, GENESIS_PREV, [ev.Heartbeat(cycle=1), nested], AT)


def _line(body: bytes) -> bytes:
    return body[:-1] + b',"hash":"' + blake3(body).hexdigest().encode() + b'"}\n'


def test_unknown_event_type_is_named() -> None:
    line = _line(b'{"seq":12,"prev":"' + GENESIS_PREV.encode() + b'","event":{"type":"Foo","x":1}}')
    with pytest.raises(CorruptRecord) as err:
        parse_line(line, 12, GENESIS_PREV)
    assert str(err.value) == "seq 12: unknown event type 'Foo'"
    assert err.value.seq == 12


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"seq":0}\n', "does not end with"),
        (_line(b'{"seq":1,"prev":"' + GENESIS_PREV.encode() + b'","event":{"type":"Heartbeat","cycle":1}}'), "seq is 1"),
        (_line(b'{"seq":0,"prev":"' + b"1" * 64 + b'","event":{"type":"Heartbeat","cycle":1}}'), "prev"),
        (_line(b'{"seq":0,"prev":"' + GENESIS_PREV.encode() + b'","event":{"type":"Heartbeat","cycle":1}'), "invalid JSON"),
        (_line(b'{"seq":0,"prev":"' + GENESIS_PREV.encode() + b'","event":{"type":"Heartbeat","cycle":"x"}}'), "invalid record"),
        (_line(b'{"seq":0,"prev":"' + GENESIS_PREV.encode() + b'","event":{"type":"Heartbeat","cycle":1}}').replace(b'"cycle":1', b'"cycle":2'), "hash mismatch"),
        (_line(b'{"seq":0,"prev":"' + GENESIS_PREV.encode() + b'","event":{"type":"Heartbeat","cycle":1}}').upper(), "does not end with"),
    ],
)
def test_bad_lines_raise_typed_errors(line: bytes, reason: str) -> None:
    with pytest.raises(CorruptRecord, match=reason):
        parse_line(line, 0, GENESIS_PREV)


@given(st.lists(st.integers(min_value=0, max_value=2**62), min_size=1, max_size=20), st.text(max_size=30))
def test_round_trip(cycles: list[int], reason: str) -> None:
    events: list[ev.Event] = [ev.Heartbeat(cycle=c) for c in cycles] + [ev.NoPromotion(window=1, reason=reason)]
    data, last = encode_batch(0, GENESIS_PREV, events, AT)
    prev = GENESIS_PREV
    for i, line in enumerate(data.splitlines(keepends=True)):
        rec = parse_line(line, i, prev)
        assert rec.event == events[i]
        prev = rec.hash
    assert prev == last
