"""`evo ingest` of other chat formats through the CLI: stdin (a real pipe), the format named or
recognised, the report of fields dropped (stderr) or their refusal (--strict), and the default
cycle of a row without one (the next heartbeat's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from adapters.data.conversations import load
from adapters.runtime.workspace import Workspace
from tests.cli.conftest import Evo

ROOT = Path(__file__).resolve().parents[2]
OPENAI_ROW = {
    "messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "hi", "name": "ada"},
        {"role": "assistant", "content": "hello"},
    ]
}
SHAREGPT_ROW = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}


def test_ingest_reads_stdin_through_a_pipe_and_defaults_the_cycle_to_the_next_heartbeat(evo: Evo) -> None:
    evo("heartbeat", "--count", "4")
    proc = subprocess.run(
        [sys.executable, "-m", "adapters.cli", "--home", str(evo.home), "ingest", "--json", "-"],
        input=json.dumps(SHAREGPT_ROW) + "\n", capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "added": 1, "duplicates": 0, "total": 1, "format": "sharegpt", "dropped": {},
    }
    [conv] = load(Workspace(evo.home))
    assert conv.cycle == 5 and conv.karma == 0.0  # belongs to the next window, never to an open one
    assert [(m.role, m.content) for m in conv.messages] == [("user", "hi"), ("assistant", "hello")]


def test_a_dropped_field_is_one_warning_line_and_strict_refuses_it(evo: Evo, tmp_path: Path) -> None:
    path = tmp_path / "openai.jsonl"
    path.write_text(json.dumps(OPENAI_ROW) + "\n" + json.dumps({**OPENAI_ROW, "id": "two"}) + "\n")
    strict = evo("ingest", "--strict", str(path))
    assert strict.code == 1 and strict.out == ""
    assert strict.err.splitlines() == [
        f"evo: error: {path}: fields the store does not keep (--strict); nothing ingested",
        f"  {path}:1: messages[].name (in 2 lines): the store does not keep it; remove it, or ingest without "
        "--strict to drop it with a warning",
    ]
    assert load(Workspace(evo.home)) == []
    r = evo("ingest", "--format", "openai", str(path))
    assert r.code == 0 and r.out == "added 2, duplicates 0 (store: 2 conversations)\n"
    assert r.err == (
        f"evo: warning: {path}: messages[].name dropped (in 2 lines): the store does not keep it "
        "(--strict refuses such a file)\n"
    )
    assert load(Workspace(evo.home))[0].messages[0].role == "system"  # developer


def test_a_named_format_the_file_is_not_in_is_refused_with_the_fix(evo: Evo, tmp_path: Path) -> None:
    path = tmp_path / "sharegpt.jsonl"
    path.write_text(json.dumps(SHAREGPT_ROW) + "\n")
    r = evo("ingest", "--format", "hf", str(path))
    assert r.code == 1
    assert r.err.splitlines()[1] == (
        f"  {path}:1: no messages list (Hugging Face chat rows are {{\"messages\": [{{\"role\": ..., \"content\": ...}}]}})"
    )
    assert evo("ingest", "--format", "csv", str(path)).code == 2


def test_a_mixed_file_is_refused_in_one_line(evo: Evo, tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps(OPENAI_ROW) + "\n" + json.dumps(SHAREGPT_ROW) + "\n")
    r = evo("ingest", str(path))
    assert r.code == 1 and r.err.count("\n") == 1 and "mixes ShareGPT (line 2)" in r.err
