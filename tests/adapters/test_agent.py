"""The agent's Python API (``adapters.agent.Agent``) and the heartbeat-loop example."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.agent import Agent
from adapters.cli import main
from adapters.serving.router import Router
from evo_core.state import Phase
from tests.fixtures_models import GENESIS

ROOT = Path(__file__).resolve().parent.parent.parent


def _cycles(home: Path) -> list[int]:
    events = [json.loads(line)["event"] for line in (home / "ledger.jsonl").read_bytes().splitlines()]
    return [e["cycle"] for e in events if e["type"] == "Heartbeat"]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    assert main(["--home", str(home), "init", "--period", "5"]) == 0
    return home


@pytest.fixture
def demo_home(tmp_path: Path, demo_workspace: Path) -> Path:
    home = tmp_path / "demo"
    shutil.copytree(demo_workspace, home, symlinks=True)
    return home


def test_heartbeats_share_the_clock_with_the_cli_and_open_windows(home: Path) -> None:
    with Agent(home) as agent:
        assert agent.heartbeat() == 1
        assert main(["--home", str(home), "heartbeat", "--count", "2"]) == 0
        assert [agent.heartbeat() for _ in range(3)] == [4, 5, 6]
        state = agent.state()
    assert _cycles(home) == [1, 2, 3, 4, 5, 6]
    assert state.phase is Phase.WINDOW and state.window is not None and state.window.cycle == 5


def test_a_heartbeat_imports_neither_pydantic_nor_torch_nor_llama(home: Path) -> None:
    code = (
        "import sys\n"
        "from adapters.agent import Agent\n"
        f"with Agent({str(home)!r}) as agent:\n"
        "    print(agent.heartbeat())\n"
        "heavy = [m for m in ('pydantic', 'torch', 'llama_cpp', 'transformers') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split("\n")[:2] == ["1", "[]"]


def test_respond_goes_through_a_router_made_on_first_use(demo_home: Path) -> None:
    query = "What does the blurk eat?"
    with Router(demo_home, n_threads=1, max_tokens=12) as router:
        expected = router.respond(query).text
    with Agent(demo_home, n_threads=1, max_tokens=12) as agent:
        assert agent._router is None
        agent.heartbeat()
        answer = agent.respond(query, kind="STANDARD")
        assert answer.generation == GENESIS and answer.text == expected
        assert agent.router is agent.router and agent.router.stats.queries == 1
    assert agent._router is None  # closed with the agent


def test_the_agent_loop_example_runs_against_a_demo_workspace(demo_home: Path) -> None:
    out = subprocess.run(
        [sys.executable, "examples/agent_loop.py", "--home", str(demo_home), "--cycles", "6", "--ask-every", "3"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "phase idle"
    answers = [line for line in lines if line.startswith("cycle ")]
    assert len(answers) == 2 and all(f"[idle] {GENESIS}" in line and " -> " in line for line in answers)
    assert _cycles(demo_home) == [1, 2, 3, 4, 5, 6]
