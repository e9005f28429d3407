"""The whole loop on the tiny demo model, driven by `evo run --until-idle` as a script would:
heartbeats open a window; the runner trains, evaluates, freezes and proposes; the operator
approves with a real key; the runner verifies the signature, runs the shadow on replayed
queries (real llama.cpp), cuts over once the shadow's cycles are over; the agent answers
through the router during burn-in; the runner concludes it: "GEN_HEAD advanced".

The config is the smallest that still learns: one student, clean data (karma > 0), a probe
set whose "generalize" list asks the window's new facts in their training phrasing (a 166k
model does not generalise to held-out phrasings in 100 steps), lenient recall and tone gates,
parity threshold 0 (a student that learned new facts answers differently from its teacher)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.agent import Agent
from adapters.evaluation.probes import ProbeSet, write_probes
from adapters.freeze.archive import verify_ledger_archives
from adapters.links import link_target, read_link
from adapters.workspace import Workspace
from evo_core.config import (
    ApprovalConfig,
    BurnInConfig,
    DistillConfig,
    EvoConfig,
    GateConfig,
    ShadowConfig,
    TrainConfig,
)
from ledger.store import Ledger
from tests.orchestration._runner_setup import at_window, events, evo

PERIOD = 100
CONFIG = EvoConfig(
    evo_period_cycles=PERIOD,
    max_concurrent_experiments=1,
    data_strategies=("uniform_sample",),
    distill=DistillConfig(alpha=1.0, beta=0.0),
    gates=GateConfig(epsilon=1.0, delta=0.0, theta=1.0),
    train=TrainConfig(steps=100, learning_rate=1e-2, lora_r=16, lora_alpha=32, new_per_branch=60,
                      replay_size=20, max_seq_len=64, batch_size=8),
    shadow=ShadowConfig(cycles=10, min_samples=4, parity_threshold=0.0, replay=True),
    burn_in=BurnInConfig(cycles=10, min_answers=3, max_error_rate=0.5, max_latency_ratio=1000.0),
    approval=ApprovalConfig(),
)
QUERIES = ["Hello!", "Who are you?", "What does the brax eat?"]


def probes(home: Path) -> None:
    from adapters.data.demo_world import LAWS, QUESTIONS, SMALL_TALK, era_facts

    write_probes(home, ProbeSet(
        recall=tuple((f.question(0), f.object) for f in era_facts(0)),
        generalize=tuple((f.question(p), f.object) for f in era_facts(1) for p in range(len(QUESTIONS[f.relation][0]))),
        tone=tuple(user for user, _ in SMALL_TALK),
        laws=tuple(prompt for law in LAWS for prompt in law.tempting),
    ))


@pytest.fixture(autouse=True)
def _no_personal_operator_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVO_OPERATOR_KEY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


def test_heartbeats_to_gen_head_advanced(demo_workspace: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    home = at_window(demo_workspace, tmp_path / "home", CONFIG, clean=True, probes=probes)
    assert events(home)[-1]["type"] == "WindowOpened"

    # the window: spawn, train, evaluate, rank, freeze, propose
    capsys.readouterr()
    assert evo(home, "run", "--until-idle") == 0
    out = capsys.readouterr().out
    kinds = [e["type"] for e in events(home)]
    assert kinds[-1] == "Proposed", out
    assert "training Luna-G001-a-c100 (attempt 1)" in out and "proposed Luna-G001-a-c100" in out
    assert "phase window -> proposed" in out
    proposal = next(e for e in reversed(events(home)) if e["type"] == "Proposed")
    assert evo(home, "run", "--until-idle") == 0  # nothing to do until the operator decides
    assert len(events(home)) == len(kinds)

    # the operator approves with a real key
    key = tmp_path / "operator" / "operator.key"
    assert evo(home, "keygen", "--out", str(key), "--trust") == 0
    assert evo(home, "approve", "--key", str(key), "--proposal", proposal["proposal_hash"][:16]) == 0

    # shadow on replayed queries (the signature checked first); its cycles not over yet
    capsys.readouterr()
    assert evo(home, "run", "--until-idle") == 0
    out = capsys.readouterr().out
    kinds = [e["type"] for e in events(home)]
    assert "ShadowStarted" in kinds and kinds.count("ShadowCompared") >= CONFIG.shadow.min_samples, out
    assert "phase approved -> shadow" in out

    # the agent's heartbeats carry the shadow to its end: the runner cuts over
    assert evo(home, "heartbeat", "--count", str(CONFIG.shadow.cycles)) == 0
    assert evo(home, "run", "--until-idle") == 0
    kinds = [e["type"] for e in events(home)]
    assert kinds[-2:] == ["ShadowCompleted", "Promoted"], kinds[-6:]
    ws = Workspace(home)
    assert read_link(ws.head_link("Luna")) == link_target("Luna-G001-a-c100")

    # burn-in: the agent answers through the router (observed), heartbeats carry it to its end
    with Agent(home) as agent:
        for query in QUERIES:
            answer = agent.respond(query, kind="TRIVIAL")
            assert answer.generation == "Luna-G001-a-c100"
    assert evo(home, "heartbeat", "--count", str(CONFIG.burn_in.cycles)) == 0
    capsys.readouterr()
    assert evo(home, "run", "--until-idle") == 0
    out = capsys.readouterr().out
    assert "GEN_HEAD advanced to Luna-G001-a-c100" in out, out
    assert events(home)[-1]["type"] == "BurnInPassed"
    assert "idle: phase idle, HEAD Luna-G001-a-c100" in out

    # the auditor's view agrees
    assert evo(home, "verify", "--deep") == 0
    with Ledger(home) as ledger:
        assert verify_ledger_archives(ws, ((r.seq, r.event) for r in ledger.records())) == []
    capsys.readouterr()
    assert evo(home, "status", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["phase"] == "idle" and status["head"] == "Luna-G001-a-c100"
