"""The conversation store: ingest all-or-nothing with FILE:LINE errors, duplicates by id,
one locked append, a torn tail set aside, and the typed load."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.data.conversations import (
    Conversation,
    IngestError,
    Message,
    add,
    encode,
    ingest,
    load,
    new_since,
    store_path,
)
from adapters.runtime.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]


def conv(cid: str, cycle: int = 1, karma: float = 0.5, text: str = "hi") -> Conversation:
    return Conversation(
        id=cid, cycle=cycle, karma=karma, messages=[Message("user", text), Message("assistant", "ok")]
    )


def as_dict(c: Conversation) -> dict[str, object]:
    return json.loads(encode(c))


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    """One row a line: dicts as JSON, text and bytes as they are."""
    def raw(row: object) -> bytes:
        return row if isinstance(row, bytes) else (row if isinstance(row, str) else json.dumps(row)).encode()
    path.write_bytes(b"".join(raw(r) + b"\n" for r in rows))
    return path


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "home")


def test_ingest_then_load_round_trips_and_stores_one_compact_line_each(ws: Workspace, tmp_path: Path) -> None:
    convs = [conv("a", 1), conv("b", 5, -0.25, "ünïcode ✓"), conv("c", 0)]
    report = ingest(ws, write_jsonl(tmp_path / "in.jsonl", [as_dict(c) for c in convs]))
    assert (report.added, report.duplicates, report.total) == (3, 0, 3)
    assert load(ws) == convs
    assert store_path(ws).read_bytes() == b"".join(encode(c) + b"\n" for c in convs)


def test_duplicates_within_the_file_and_in_the_store_are_ignored_and_counted(ws: Workspace, tmp_path: Path) -> None:
    first = write_jsonl(tmp_path / "1.jsonl", [as_dict(conv("a")), as_dict(conv("b"))])
    assert ingest(ws, first).added == 2
    second = write_jsonl(
        tmp_path / "2.jsonl",
        [as_dict(conv("b", text="changed")), as_dict(conv("c")), as_dict(conv("c", text="again")), as_dict(conv("a"))],
    )
    report = ingest(ws, second)
    assert (report.added, report.duplicates, report.total) == (1, 3, 3)
    stored = {c.id: c for c in load(ws)}
    assert stored["b"].messages[0].content == "hi"  # the first occurrence wins
    assert stored["c"].messages[0].content == "hi"
    assert ingest(ws, second).added == 0


GOOD = {"id": "x", "cycle": 3, "karma": 0.5, "messages": [{"role": "user", "content": "hi"}]}
BAD_LINES: dict[str, tuple[str | bytes, str]] = {
    "invalid JSON": ('{"id": "x", "cycle": 3,', "invalid JSON"),
    "not an object": ("[1, 2]", "not a JSON object"),
    "missing field": (json.dumps({k: v for k, v in GOOD.items() if k != "karma"}), "karma"),
    "wrong type": (json.dumps({**GOOD, "cycle": "three"}), "$.cycle"),
    "infinite karma": ('{"id":"x","cycle":3,"karma":1e999,"messages":[{"role":"user","content":"hi"}]}', "karma must be finite"),
    "NaN karma": (json.dumps({**GOOD, "karma": float("nan")}), "invalid JSON"),
    "empty messages": (json.dumps({**GOOD, "messages": []}), "$.messages"),
    "bad role": (json.dumps({**GOOD, "messages": [{"role": "robot", "content": "hi"}]}), "role"),
    "negative cycle": (json.dumps({**GOOD, "cycle": -1}), "$.cycle"),
    "empty id": (json.dumps({**GOOD, "id": ""}), "$.id"),
    "not UTF-8": (b'{"id":"\xff","cycle":3,"karma":0,"messages":[{"role":"user","content":"x"}]}', "not UTF-8"),
    "content not text": (json.dumps({**GOOD, "messages": [{"role": "user", "content": 5}]}), "content"),
}


@pytest.mark.parametrize("kind", sorted(BAD_LINES))
def test_a_bad_line_is_reported_with_file_and_line_and_nothing_is_written(
    ws: Workspace, tmp_path: Path, kind: str
) -> None:
    ingest(ws, write_jsonl(tmp_path / "seed.jsonl", [as_dict(conv("old"))]))
    before = store_path(ws).read_bytes()
    line, reason = BAD_LINES[kind]
    path = write_jsonl(tmp_path / "in.jsonl", [as_dict(conv("new1")), "", line, as_dict(conv("new2"))])
    with pytest.raises(IngestError) as err:
        ingest(ws, path)
    assert err.value.summary == f"{path}: 1 bad line; nothing ingested"
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith(f"{path}:3: ")
    assert reason in err.value.problems[0]
    assert store_path(ws).read_bytes() == before


def test_many_bad_lines_list_the_first_five_then_how_many_more(ws: Workspace, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", [as_dict(conv("ok"))] + ["nope"] * 8)
    with pytest.raises(IngestError) as err:
        ingest(ws, path)
    assert err.value.summary == f"{path}: 8 bad lines; nothing ingested"
    assert [p.split(": ")[0] for p in err.value.problems[:5]] == [f"{path}:{n}" for n in range(2, 7)]
    assert err.value.problems[5] == "and 3 more"
    assert not store_path(ws).exists()


def test_blank_lines_are_skipped_and_an_empty_file_adds_nothing(ws: Workspace, tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n  \n")
    assert ingest(ws, tmp_path / "empty.jsonl").added == 0
    assert load(ws) == []


def test_a_torn_tail_is_ignored_by_load_and_set_aside_by_the_next_ingest(ws: Workspace, tmp_path: Path) -> None:
    add(ws, [conv("a")])
    with open(store_path(ws), "ab") as f:
        f.write(b'{"id":"b","cyc')  # a crash in the middle of an append
    assert [c.id for c in load(ws)] == ["a"]
    assert add(ws, [conv("c")]).added == 1
    assert [c.id for c in load(ws)] == ["a", "c"]
    aside = store_path(ws).with_name("conversations.jsonl.torn-0")
    assert aside.read_bytes() == b'{"id":"b","cyc'
    assert store_path(ws).read_bytes().endswith(b"\n")


def test_ingest_waits_for_the_lock_so_concurrent_ingests_never_interleave(ws: Workspace, tmp_path: Path) -> None:
    add(ws, [conv("seed")])
    files = []
    for k in range(2):  # overlapping ids: 0..2999 and 1500..4499
        rows = [as_dict(conv(f"id-{i:05d}", i)) for i in range(1500 * k, 1500 * k + 3000)]
        files.append(write_jsonl(tmp_path / f"in{k}.jsonl", rows))
    lock = os.open(ws.data / "conversations.lock", os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)
    code = (
        "import sys, json; from adapters.data.conversations import ingest; "
        "r = ingest(sys.argv[1], sys.argv[2]); print(json.dumps([r.added, r.duplicates]))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(ws.home), str(f)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for f in files
    ]
    try:
        time.sleep(1.0)
        assert all(p.poll() is None for p in procs), "an ingest did not wait for the lock"
        assert [c.id for c in load(ws)] == ["seed"]
    finally:
        os.close(lock)
    results = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    ids = [c.id for c in load(ws)]
    assert len(ids) == len(set(ids)) == 1 + 4500
    assert sum(r[0] for r in results) == 4500 and sum(r[1] for r in results) == 1500


def test_new_since_is_the_half_open_window_of_cycles() -> None:
    convs = [conv(str(c), c) for c in (0, 1, 10, 11, 20, 21)]
    assert [c.cycle for c in new_since(convs, 10, 20)] == [11, 20]
    assert [c.cycle for c in new_since(convs, 0, 10)] == [1, 10]
    assert new_since(convs, 21, 30) == []


def test_load_of_a_workspace_without_a_store_is_empty(ws: Workspace) -> None:
    assert load(ws) == []


def test_a_conversation_with_non_finite_karma_cannot_be_built_either() -> None:
    for karma in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="finite"):
            Conversation(id="x", cycle=0, karma=karma, messages=[Message("user", "hi")])


messages = st.lists(
    st.builds(Message, st.sampled_from(["system", "user", "assistant"]), st.text(max_size=30)), min_size=1, max_size=4
)
conversations = st.builds(
    Conversation,
    id=st.text(min_size=1, max_size=8),
    cycle=st.integers(0, 10**12),
    karma=st.floats(allow_nan=False, allow_infinity=False),
    messages=messages,
)


@settings(max_examples=40, deadline=None)
@given(st.lists(conversations, max_size=20))
def test_any_valid_conversations_round_trip_through_a_file(tmp_path_factory: pytest.TempPathFactory, convs: list[Conversation]) -> None:
    tmp = tmp_path_factory.mktemp("rt")
    ws = Workspace(tmp / "home")
    path = tmp / "in.jsonl"
    path.write_bytes(b"".join(encode(c) + b"\n" for c in convs))
    report = ingest(ws, path)
    first: dict[str, Conversation] = {}
    for c in convs:
        first.setdefault(c.id, c)
    expected = list(first.values())
    assert load(ws) == expected
    assert report.added == len(expected) and report.duplicates == len(convs) - len(expected)
