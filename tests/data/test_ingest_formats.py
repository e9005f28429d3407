"""Ingest of every accepted chat format (evo's rows, OpenAI messages, Hugging Face chat rows,
ShareGPT), recognised per file; malformed files of each refused whole with FILE:LINE and the
fix; fields the store does not keep reported or, strict, refused; the committed JSON Schema in
step with the native row; and how a tool message trains."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import pytest

from adapters.data.chat_formats import NATIVE_ROLES, Role
from adapters.data.conversations import (
    SCHEMA_PATH,
    Conversation,
    IngestError,
    Message,
    encode,
    ingest,
    load,
    schema_text,
)
from adapters.data.format import render, render_plain
from adapters.runtime.workspace import Workspace


def write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "home")


def stored(ws: Workspace) -> list[dict[str, Any]]:
    return [json.loads(encode(c)) for c in load(ws)]


OPENAI = {
    "messages": [
        {"role": "developer", "content": "Answer briefly."},
        {"role": "user", "content": [{"type": "text", "text": "Weather"}, {"type": "text", "text": "in Paris?"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Paris\"}"}}
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
        {"role": "assistant", "content": "18 degrees and sunny."},
    ],
    "tools": [{"type": "function", "function": {"name": "weather"}}],
}


def test_the_committed_schema_is_the_native_row_the_parser_validates() -> None:
    assert SCHEMA_PATH.read_text() == schema_text(), (
        "stale: run python -c 'from adapters.data.conversations import SCHEMA_PATH, schema_text; "
        "SCHEMA_PATH.write_text(schema_text())'"
    )
    schema = json.loads(SCHEMA_PATH.read_text())
    row = schema["$defs"]["Conversation"]
    assert row["required"] == ["id", "cycle", "karma", "messages"]
    assert sorted(schema["$defs"]["Message"]["properties"]["role"]["enum"]) == sorted(NATIVE_ROLES)
    assert set(get_args(Role)) == set(NATIVE_ROLES)


def test_openai_messages_are_stored_as_native_rows_with_defaults(ws: Workspace, tmp_path: Path) -> None:
    path = write(tmp_path / "openai.jsonl", [OPENAI])
    report = ingest(ws, path, default_cycle=lambda: 41)
    assert (report.added, report.format) == (1, "openai")
    assert dict(report.dropped) == {"tools": 1, "messages[].tool_call_id": 1}
    [row] = stored(ws)
    assert row["id"].startswith("c-") and len(row["id"]) == 34
    assert (row["cycle"], row["karma"]) == (41, 0.0)
    assert row["messages"] == [
        {"role": "system", "content": "Answer briefly."},  # developer is the system prompt
        {"role": "user", "content": "Weather\nin Paris?"},  # text parts joined with a newline
        {"role": "assistant", "content": '{"name": "weather", "arguments": {"city": "Paris"}}'},
        {"role": "tool", "content": "18C, sunny"},
        {"role": "assistant", "content": "18 degrees and sunny."},
    ]
    again = ingest(ws, path, default_cycle=lambda: 99)  # the id is the content's: the same conversation once
    assert (again.added, again.duplicates) == (0, 1)


def test_given_id_cycle_and_karma_are_kept_in_every_format(ws: Workspace, tmp_path: Path) -> None:
    meta = {"id": "x1", "cycle": 7, "karma": -0.5}
    ingest(ws, write(tmp_path / "o.jsonl", [{**OPENAI, **meta}]))
    ingest(ws, write(tmp_path / "s.jsonl", [{**meta, "id": "x2", "conversations": [{"from": "human", "value": "hi"}]}]))
    assert [(r["id"], r["cycle"], r["karma"]) for r in stored(ws)] == [("x1", 7, -0.5), ("x2", 7, -0.5)]


def test_hugging_face_rows_report_their_other_columns(ws: Workspace, tmp_path: Path) -> None:
    rows = [
        {"prompt": "hi", "prompt_id": "p1", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
        {"prompt": "yo", "messages": [{"role": "system", "content": "be kind"}, {"role": "user", "content": "yo"}]},
    ]
    report = ingest(ws, write(tmp_path / "hf.jsonl", rows), default_cycle=lambda: 3)
    assert (report.added, report.format, dict(report.dropped)) == (2, "hf", {"prompt": 2, "prompt_id": 1})
    assert [r["messages"][-1]["content"] for r in stored(ws)] == ["hello", "yo"]


def test_sharegpt_speakers_and_system_become_roles(ws: Workspace, tmp_path: Path) -> None:
    row = {"system": "be kind", "conversations": [
        {"from": "human", "value": "what time is it?"},
        {"from": "gpt", "value": "let me look"},
        {"from": "tool", "value": "12:00"},
        {"from": "gpt", "value": "noon"},
    ]}
    report = ingest(ws, write(tmp_path / "sharegpt.jsonl", [row]), default_cycle=lambda: 5)
    assert report.format == "sharegpt"
    assert [(m["role"], m["content"]) for m in stored(ws)[0]["messages"]] == [
        ("system", "be kind"), ("user", "what time is it?"), ("assistant", "let me look"), ("tool", "12:00"),
        ("assistant", "noon"),
    ]


def test_native_rows_are_read_as_before_and_a_named_format_is_obeyed(ws: Workspace, tmp_path: Path) -> None:
    row = {"id": "a", "cycle": 1, "karma": 1.0, "messages": [{"role": "user", "content": "hi"}]}
    assert ingest(ws, write(tmp_path / "evo.jsonl", [row])).format == "evo"
    assert ingest(ws, write(tmp_path / "evo2.jsonl", [{**row, "id": "b"}]), fmt="openai").format == "openai"
    with pytest.raises(IngestError) as exc:
        ingest(ws, write(tmp_path / "no-meta.jsonl", [{"messages": row["messages"]}]), fmt="evo")
    assert "no id, cycle, karma" in exc.value.problems[0] and "--format openai" in exc.value.problems[0]


@pytest.mark.parametrize(
    ("fmt", "row", "says"),
    [
        ("openai", {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
         "messages[0].content[0]: a 'image_url' part: evo trains on text only"),
        ("openai", {"messages": [{"role": "assistant", "content": None}]}, "messages[0].content: null without tool_calls"),
        ("openai", {"messages": [{"role": "bot", "content": "x"}]}, "messages[0].role: 'bot' is not a chat role"),
        ("openai", {"messages": [{"role": "user", "content": "x", "tool_calls": [{"function": {"name": "f"}}]}]},
         "only an assistant message makes tool calls"),
        ("hf", {"messages": [{"role": "user", "content": 3}]}, "messages[0].content: a string, null or a list of parts"),
        ("hf", {"messages": []}, "Expected `array` of length >= 1"),
        ("sharegpt", {"conversations": [{"from": "robot", "value": "x"}]}, "conversations[0].from: 'robot'"),
        ("sharegpt", {"conversations": [{"from": "human"}]}, "conversations[0].value: the turn's text"),
        ("evo", {"id": "a", "cycle": -1, "karma": 0, "messages": [{"role": "user", "content": "x"}]}, "$.cycle"),
    ],
)
def test_a_malformed_line_of_each_format_names_file_line_and_nothing_is_ingested(
    ws: Workspace, tmp_path: Path, fmt: str, row: dict[str, Any], says: str
) -> None:
    good = {"id": "ok", "cycle": 1, "karma": 0, "messages": [{"role": "user", "content": "fine"}]}
    if fmt == "sharegpt":
        good = {"id": "ok", "conversations": [{"from": "human", "value": "fine"}]}
    elif fmt != "evo":
        good = {"messages": [{"role": "user", "content": "fine"}]}
    path = write(tmp_path / f"{fmt}.jsonl", [good, row])
    with pytest.raises(IngestError) as exc:
        ingest(ws, path, default_cycle=lambda: 1)
    assert exc.value.summary == f"{path}: 1 bad line; nothing ingested"
    assert exc.value.problems[0].startswith(f"{path}:2: ") and says in exc.value.problems[0], exc.value.problems
    assert load(ws) == []


def test_a_file_mixing_formats_is_refused_in_one_line(ws: Workspace, tmp_path: Path) -> None:
    sharegpt = {"conversations": [{"from": "human", "value": "hi"}]}
    path = write(tmp_path / "mixed.jsonl", [OPENAI, sharegpt])
    with pytest.raises(IngestError) as exc:
        ingest(ws, path, default_cycle=lambda: 1)
    assert exc.value.problems == []
    assert exc.value.summary == (
        f"{path}: mixes ShareGPT (line 2) and OpenAI chat messages (line 1): split it into one file per format; "
        "nothing ingested"
    )
    native = {"id": "a", "cycle": 1, "karma": 0, "messages": [{"role": "user", "content": "x"}]}
    half = write(tmp_path / "half.jsonl", [native, {"id": "b", "cycle": 1, "messages": native["messages"]}])
    with pytest.raises(IngestError) as exc:  # a native file with karma forgotten on a line: never defaulted
        ingest(ws, half, default_cycle=lambda: 1)
    assert exc.value.problems == [
        f"{half}:2: no karma: a native row needs id, cycle, karma and messages (rows without id, cycle or "
        "karma: give --format openai or hf, which default them)"
    ]
    assert ingest(ws, half, fmt="openai", default_cycle=lambda: 1).added == 2  # named: the defaults apply
    with pytest.raises(IngestError, match="has both messages and conversations"):
        ingest(ws, write(tmp_path / "both.jsonl", [{**native, **sharegpt}]))


def test_strict_refuses_fields_the_store_does_not_keep(ws: Workspace, tmp_path: Path) -> None:
    path = write(tmp_path / "o.jsonl", [{**OPENAI, "id": "a"}, {**OPENAI, "id": "b", "tools": []}])
    with pytest.raises(IngestError) as exc:
        ingest(ws, path, strict=True, default_cycle=lambda: 1)
    assert exc.value.problems == [
        f"{path}:1: messages[].tool_call_id (in 2 lines): the store does not keep it; remove it, or ingest "
        "without --strict to drop it with a warning",
        f"{path}:1: tools (in 2 lines): the store does not keep it; remove it, or ingest without --strict to "
        "drop it with a warning",
    ]
    assert load(ws) == []


def test_a_row_without_cycle_needs_a_default() -> None:
    from adapters.data.conversations import parse

    with pytest.raises(IngestError, match="no cycle"):
        parse(b'{"messages": [{"role": "user", "content": "x"}]}\n', "f")


class RecordingTokenizer:
    """What ``render`` hands a chat template (the roles), with ``chat_template`` as given."""

    def __init__(self, template: str):
        self.chat_template = template
        self.seen: list[dict[str, str]] = []

    def apply_chat_template(self, messages: list[dict[str, str]], **_: Any) -> str:
        self.seen = messages
        return "".join(f"[{m['role']}]{m['content']}" for m in messages)


def test_a_tool_message_trains_as_the_template_allows() -> None:
    conv = Conversation(id="t", cycle=1, karma=0.0, messages=[
        Message("user", "time?"), Message("assistant", '{"name": "clock", "arguments": {}}'),
        Message("tool", "12:00"), Message("assistant", "noon"),
    ])
    assert render_plain(conv) == (
        '<|user|>time?<|end|><|assistant|>{"name": "clock", "arguments": {}}<|end|><|user|>12:00<|end|>'
        "<|assistant|>noon<|end|>"
    )
    knows = RecordingTokenizer("{% if message['role'] == 'tool' %}<tool>{% endif %}")
    render(conv, knows)
    assert [m["role"] for m in knows.seen] == ["user", "assistant", "tool", "assistant"]
    plain = RecordingTokenizer("{{ '<|' + message['role'] + '|>' }}")
    render(conv, plain)
    assert [m["role"] for m in plain.seen] == ["user", "assistant", "user", "assistant"]
