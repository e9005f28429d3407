from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from blake3 import blake3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evo_core import events as ev
from ledger import (
    EMPTY,
    GENESIS_PREV,
    Checkpoint,
    ConcurrencyError,
    CorruptRecord,
    Ledger,
    parse_checkpoint,
)
from tests.ledger.conftest import audit, sample_events

# ---------------------------------------------------------------- basics


def test_empty_ledger(home: Path) -> None:
    led = Ledger(home)
    assert led.tail() == EMPTY == Checkpoint(-1, GENESIS_PREV)
    assert list(led.records()) == []
    rep = led.verify()
    assert rep.ok and rep.count == 0 and rep.last == EMPTY


def test_round_trip_and_independent_audit(home: Path) -> None:
    led = Ledger(home)
    events = sample_events()
    cp1 = led.append(events[:1], expected_seq=-1)
    cp2 = led.append(events[1:], expected_seq=0)
    assert cp1.seq == 0 and cp2.seq == len(events) - 1
    assert led.tail() == cp2 == led.head()
    recs = list(led.records())
    assert [r.event for r in recs] == events
    assert [r.seq for r in recs] == list(range(len(events)))
    assert recs[-1].hash == cp2.hash and recs[-1].end == (home / "ledger.jsonl").stat().st_size
    audited = audit(home / "ledger.jsonl")
    assert [a["event"]["type"] for a in audited] == [type(e).__name__ for e in events]  # type: ignore[index]
    assert all(str(a["at"]).endswith("Z") and len(str(a["at"])) == 24 for a in audited)
    assert json.loads((home / "ledger.head").read_text()) == {"seq": cp2.seq, "hash": cp2.hash}
    rep = led.verify(checkpoint=cp1)
    assert rep.ok and rep.count == len(events) and rep.last == cp2


def test_records_from_offset_and_seq(home: Path) -> None:
    led = Ledger(home, fsync=False)
    for i in range(10):
        led.append([ev.Heartbeat(cycle=i)])
    recs = list(led.records())
    mid = recs[4]
    tail = list(led.records(5, mid.end, prev=mid.hash))
    assert tail == recs[5:] == list(led.records(5))
    with pytest.raises(CorruptRecord):
        list(led.records(5, mid.end, prev="f" * 64))
    acc, last, end, n = led.fold(lambda a, e: a + [e], [], start_seq=5, start_offset=mid.end, prev=mid.hash)
    assert acc == [r.event for r in recs[5:]] and last == led.tail() and n == 5
    assert end == recs[-1].end


def test_conflict_appends_nothing(home: Path) -> None:
    led = Ledger(home)
    led.append([ev.Heartbeat(cycle=1)], expected_seq=-1)
    before = (home / "ledger.jsonl").read_bytes()
    with pytest.raises(ConcurrencyError) as err:
        led.append([ev.Heartbeat(cycle=2)], expected_seq=-1)
    assert (err.value.expected, err.value.actual) == (-1, 0)
    assert (home / "ledger.jsonl").read_bytes() == before


def test_empty_batch_and_nan_write_nothing(home: Path) -> None:
    led = Ledger(home)
    led.append([ev.Heartbeat(cycle=1)])
    before = (home / "ledger.jsonl").read_bytes()
    with pytest.raises(ValueError):
        led.append([])
    with pytest.raises(ValueError, match="finite"):
        led.append([ev.Heartbeat(cycle=2), ev.ShadowCompared(generation="g", cycle=2, exact=True, similarity=float("nan"))])
    assert (home / "ledger.jsonl").read_bytes() == before
    assert led.tail().seq == 0


@pytest.mark.parametrize("text", ["", "12", "x:" + "a" * 64, "1:" + "A" * 64, "1:abc", "-1:" + "a" * 64])
def test_parse_checkpoint_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="checkpoint"):
        parse_checkpoint(text)


def test_parse_checkpoint_round_trip() -> None:
    cp = Checkpoint(12, "ab" * 32)
    assert parse_checkpoint(str(cp)) == cp


def test_unknown_type_reported_with_seq(home: Path) -> None:
    led = Ledger(home)
    cp = led.append([ev.Heartbeat(cycle=1)])
    body = b'{"seq":1,"prev":"%s","event":{"type":"Foo"}}' % cp.hash.encode()
    with open(home / "ledger.jsonl", "ab") as f:
        f.write(body[:-1] + b',"hash":"' + blake3(body).hexdigest().encode() + b'"}\n')
    with pytest.raises(CorruptRecord, match="seq 1: unknown event type 'Foo'"):
        list(led.records())
    rep = led.verify()
    assert not rep.ok and rep.first_bad_seq == 1 and "unknown event type 'Foo'" in rep.problems[0]


# ---------------------------------------------------------------- tampering (Hypothesis)


def _build_base() -> tuple[bytes, bytes, list[tuple[int, int]], list[int]]:
    """A ledger with single and multi-record batches: (bytes, head, line spans, batch start of each seq)."""
    with tempfile.TemporaryDirectory() as d:
        led = Ledger(d, fsync=False)
        events = sample_events()
        starts: list[int] = []
        for size in (1, 3, 1, 2, 4, 1):
            first = led.tail().seq + 1
            led.append(events[:size] if size <= len(events) else events)
            starts += [first] * size
        data = (Path(d) / "ledger.jsonl").read_bytes()
        head = (Path(d) / "ledger.head").read_bytes()
    spans, pos = [], 0
    for line in data.splitlines(keepends=True):
        spans.append((pos, pos + len(line)))
        pos += len(line)
    return data, head, spans, starts


BASE, HEAD, SPANS, BATCH_START = _build_base()
N = len(SPANS)




def _report(data: bytes, head: bytes | None = HEAD, checkpoint: Checkpoint | None = None):  # type: ignore[no-untyped-def]
    d = tempfile.mkdtemp()
    try:
        Path(d, "ledger.jsonl").write_bytes(data)
        if head is not None:
            Path(d, "ledger.head").write_bytes(head)
        with Ledger(d) as led:
            return led.verify(checkpoint)
    finally:
        shutil.rmtree(d)


def _line_of(pos: int) -> int:
    return next(i for i, (a, b) in enumerate(SPANS) if a <= pos < b)


def _first_missing(k: int) -> int:
    """Seq first reported missing when line k and everything after it is gone."""
    return BATCH_START[k]


def test_base_verifies() -> None:
    rep = _report(BASE)
    assert rep.ok and rep.count == N and not rep.problems and rep.torn is None


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.integers(0, len(BASE) - 1), st.integers(0, 255))
def test_any_changed_byte_is_detected(pos: int, value: int) -> None:
    if BASE[pos] == value:
        value = (value + 1) % 256
    data = BASE[:pos] + bytes([value]) + BASE[pos + 1 :]
    rep = _report(data)
    assert not rep.ok
    k = _line_of(pos)
    expected = _first_missing(k) if pos == len(BASE) - 1 else k
    assert rep.first_bad_seq == expected, rep


@SETTINGS
@given(st.integers(0, N - 1))
def test_deleted_line_is_detected(k: int) -> None:
    a, b = SPANS[k]
    rep = _report(BASE[:a] + BASE[b:])
    assert not rep.ok
    assert rep.first_bad_seq == (k if k < N - 1 else _first_missing(k)), rep


@SETTINGS
@given(st.integers(0, N - 1), st.integers(0, N - 1))
def test_swapped_lines_are_detected(i: int, j: int) -> None:
    if i == j:
        j = (i + 1) % N
    i, j = min(i, j), max(i, j)
    lines = BASE.splitlines(keepends=True)
    lines[i], lines[j] = lines[j], lines[i]
    rep = _report(b"".join(lines))
    assert not rep.ok and rep.first_bad_seq == i, rep


def _oob_line(prev: str, wrong: str) -> bytes:
    body = b'{"seq":%d,"prev":"%s","at":"2026-01-01T00:00:00.000Z","event":{"type":"Heartbeat","cycle":99}}' % (N, prev.encode())
    h = blake3(body).hexdigest()
    if wrong == "hash":
        h = "0" * 64 if h != "0" * 64 else "1" * 64
    return body[:-1] + b',"hash":"' + h.encode() + b'"}\n'


@SETTINGS
@given(st.sampled_from(["prev", "hash"]), st.text("0123456789abcdef", min_size=64, max_size=64))
def test_out_of_band_append_is_detected(wrong: str, fake_prev: str) -> None:
    last_hash = json.loads(HEAD)["hash"]
    prev = fake_prev if wrong == "prev" else last_hash
    if prev == last_hash and wrong == "prev":
        prev = "f" * 64 if last_hash != "f" * 64 else "e" * 64
    rep = _report(BASE + _oob_line(prev, wrong))
    assert not rep.ok and rep.first_bad_seq == N, rep


@SETTINGS
@given(st.integers(1, N))
def test_truncation_detected_by_head_and_by_checkpoint(m: int) -> None:
    k = N - m  # first removed line
    data = BASE[: SPANS[k][0]]
    rep = _report(data)
    assert not rep.ok and rep.first_bad_seq == _first_missing(k) and "truncated" in rep.problems[0]
    cp = Checkpoint(N - 1, json.loads(HEAD)["hash"])
    rep = _report(data, head=None, checkpoint=cp)
    assert not rep.ok and rep.first_bad_seq == _first_missing(k) and "checkpoint" in rep.problems[0]


def test_rewritten_history_detected_by_checkpoint(home: Path) -> None:
    led = Ledger(home, fsync=False)
    for i in range(5):
        led.append([ev.Heartbeat(cycle=i)])
    cp = Checkpoint(2, next(r.hash for r in led.records() if r.seq == 2))
    other = home.parent / "other"
    led2 = Ledger(other, fsync=False)
    for i in range(5):
        led2.append([ev.Heartbeat(cycle=i + 100)])
    assert led.verify(cp).ok
    rep = led2.verify(cp)
    assert not rep.ok and rep.first_bad_seq == 2 and "history rewritten" in rep.problems[0]


# ---------------------------------------------------------------- torn tails


def test_torn_final_line_is_moved_aside(home: Path) -> None:
    led = Ledger(home)
    led.append([ev.Heartbeat(cycle=1)])
    good = (home / "ledger.jsonl").read_bytes()
    torn = b'{"seq":1,"prev":"abc'
    with open(home / "ledger.jsonl", "ab") as f:
        f.write(torn)
    rep = led.verify()
    assert rep.ok and rep.torn is not None and "torn tail" in rep.torn
    assert list(led.records())[-1].seq == 0
    cp = led.append([ev.Heartbeat(cycle=2)], expected_seq=0)
    assert cp.seq == 1
    moved = list(home.glob("ledger.jsonl.torn-*"))
    assert [p.name for p in moved] == ["ledger.jsonl.torn-1-0"]
    assert moved[0].read_bytes() == torn
    assert (home / "ledger.jsonl").read_bytes().startswith(good)
    assert len(audit(home / "ledger.jsonl")) == 2
    assert led.verify().ok and led.verify().torn is None


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 6), st.data())
def test_cut_inside_a_batch_moves_the_whole_batch_aside(size: int, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as d:
        home = Path(d)
        led = Ledger(home, fsync=False)
        led.append([ev.Heartbeat(cycle=0)])
        before = (home / "ledger.jsonl").read_bytes()
        head_before = (home / "ledger.head").read_bytes()
        led.append([ev.Heartbeat(cycle=i + 1) for i in range(size)])
        full = (home / "ledger.jsonl").read_bytes()
        cut = data.draw(st.integers(len(before) + 1, len(full) - 1), label="cut")
        with open(home / "ledger.jsonl", "r+b") as f:
            f.truncate(cut)
        rep = Ledger(home).verify()
        assert rep.torn is not None and rep.last.seq == 0 and rep.count == 1
        # ledger.head names the lost batch's last record: the loss is reported, never hidden
        assert not rep.ok and rep.first_bad_seq == 1
        # a real crash inside the write leaves the head as it was before the batch
        (home / "ledger.head").write_bytes(head_before)
        rep = Ledger(home).verify()
        assert rep.ok and rep.torn is not None and rep.count == 1
        with Ledger(home) as led2:
            assert led2.tail().seq == 0
            assert [r.seq for r in led2.records()] == [0]
            torn = led2.recover()
            assert torn is not None and torn.seq == 1 and torn.offset == len(before)
            assert torn.path.read_bytes() == full[len(before) : cut]
            assert (home / "ledger.jsonl").read_bytes() == before
            assert led2.recover() is None
            cp = led2.append([ev.Heartbeat(cycle=9)], expected_seq=0)
            assert cp.seq == 1 and led2.verify().ok
            assert len(audit(home / "ledger.jsonl")) == 2


def test_corruption_is_never_repaired(home: Path) -> None:
    led = Ledger(home)
    for i in range(3):
        led.append([ev.Heartbeat(cycle=i)])
    path = home / "ledger.jsonl"
    data = bytearray(path.read_bytes())
    data[-10] = ord("0") if data[-10] != ord("0") else ord("1")
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptRecord) as err:
        led.append([ev.Heartbeat(cycle=3)])
    assert err.value.seq == 2
    assert path.read_bytes() == bytes(data)
    assert led.verify().first_bad_seq == 2
    assert not list(home.glob("ledger.jsonl.torn-*"))


def test_directory_is_created_and_files_listed(home: Path) -> None:
    led = Ledger(home / "nested")
    led.append([ev.Heartbeat(cycle=1)])
    assert sorted(os.listdir(home / "nested")) == ["ledger.head", "ledger.jsonl", "ledger.lock"]


def test_append_refuses_to_hide_a_truncation(home: Path) -> None:
    led = Ledger(home)
    for i in range(3):
        led.append([ev.Heartbeat(cycle=i)])
    path = home / "ledger.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2]))  # roll back the last record, leave ledger.head alone
    head_before = (home / "ledger.head").read_bytes()
    for writer in (led, Ledger(home)):
        with pytest.raises(CorruptRecord, match="ledger.head names seq 2") as err:
            writer.append([ev.Heartbeat(cycle=9)])
        assert err.value.seq == 2
    assert path.read_bytes() == b"".join(lines[:2])
    assert (home / "ledger.head").read_bytes() == head_before
    rep = led.verify()
    assert not rep.ok and rep.first_bad_seq == 2


def test_a_replaced_ledger_file_is_reopened(home: Path) -> None:
    led = Ledger(home)
    led.append([ev.Heartbeat(cycle=0)])
    path = home / "ledger.jsonl"
    copy = home / "copy"
    copy.write_bytes(path.read_bytes())
    os.replace(copy, path)  # e.g. restored from a backup by rename
    led.append([ev.Heartbeat(cycle=1)])
    assert [r.event for r in Ledger(home).records()] == [ev.Heartbeat(cycle=0), ev.Heartbeat(cycle=1)]
    assert led.verify().ok


def test_head_file_is_fixed_size_json(home: Path) -> None:
    led = Ledger(home)
    for i in range(12):
        cp = led.append([ev.Heartbeat(cycle=i)])
        raw = (home / "ledger.head").read_bytes()
        assert len(raw) == 128 and raw.endswith(b"\n")
        assert json.loads(raw) == {"seq": cp.seq, "hash": cp.hash}
