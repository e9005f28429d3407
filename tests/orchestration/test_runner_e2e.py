"""The whole loop on the demo model and the demo world, on the config's DEFAULTS for everything
that decides an outcome (training recipe, distillation weights, gates and their confidence,
shadow and burn-in thresholds), driven by `evo run --until-idle` as a script would, through two
promotions: heartbeats open window 1; the runner trains, evaluates (the demo probes: new facts
asked in the held-out wording), freezes and proposes; the operator approves with a real key;
the shadow runs on replayed queries (real llama.cpp), the cutover, the burn-in on the agent's
answers: "GEN_HEAD advanced". Then era 2 and window 2 from G001 (G000 stabilising) to G002.

What is not the default, and why: one student a window (the high-karma strategy, the one the
demo proposes) to keep the suite's time down, the shadow's and burn-in's durations (cycles,
sample counts: a test agent is quiet), and the burn-in's latency ceiling (a timing on a shared
CI machine; timings are measured in `make bench`, never asserted)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from adapters.agent import Agent
from adapters.data import demo_world
from adapters.data.conversations import encode
from adapters.freeze.archive import verify_ledger_archives
from adapters.runtime.links import link_target, read_link
from adapters.runtime.workspace import Workspace
from evo_core.config import BurnInConfig, EvoConfig, ShadowConfig, render_config
from ledger.store import Ledger
from tests import operator_key
from tests.orchestration._runner_setup import events, evo

PERIOD = demo_world.ERA_CYCLES  # one era of new facts per window
RATE = 200  # conversations per 1000 cycles, as make demo feeds them
CONFIG = EvoConfig(
    evo_period_cycles=PERIOD,
    max_concurrent_experiments=1,
    data_strategies=("high_karma_weighted",),
    shadow=ShadowConfig(cycles=10, min_samples=6, replay=True),
    burn_in=BurnInConfig(cycles=10, min_answers=3, max_latency_ratio=1000.0),
)
QUERIES = ["Hello!", "Who are you?", demo_world.era_facts(0)[0].question(0)]


@pytest.fixture(autouse=True)
def _no_personal_operator_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVO_OPERATOR_KEY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


def feed_era(home: Path, era: int) -> None:
    convs = demo_world.conversations((era - 1) * PERIOD + 1, era * PERIOD, seed=0, per_1000_cycles=RATE)
    feed = home.parent / f"era-{era}.jsonl"
    feed.write_bytes(b"".join(encode(c) + b"\n" for c in convs))
    assert evo(home, "ingest", str(feed)) == 0
    assert evo(home, "heartbeat", "--count", str(era * PERIOD - current_cycle(home))) == 0


def current_cycle(home: Path) -> int:
    return max((e["cycle"] for e in events(home) if e["type"] == "Heartbeat"), default=0)


def promote(home: Path, key: Path, gen: int, capsys: pytest.CaptureFixture[str]) -> str:
    """Window ``gen`` from proposal to "GEN_HEAD advanced"; returns the promoted candidate."""
    capsys.readouterr()
    assert evo(home, "run", "--until-idle") == 0
    out = capsys.readouterr().out
    kinds = [e["type"] for e in events(home)]
    assert kinds[-1] == "Proposed", out
    proposal = events(home)[-1]
    name = proposal["proposal"]["candidate"]
    assert name.startswith(f"Luna-G{gen:03d}-")
    assert evo(home, "approve", "--key", str(key), "--proposal", proposal["proposal_hash"][:16]) == 0

    assert evo(home, "run", "--until-idle") == 0  # the shadow on replayed queries
    assert evo(home, "heartbeat", "--count", str(CONFIG.shadow.cycles)) == 0
    assert evo(home, "run", "--until-idle") == 0
    kinds = [e["type"] for e in events(home)]
    assert kinds[-2:] == ["ShadowCompleted", "Promoted"], kinds[-6:]
    assert read_link(Workspace(home).head_link("Luna")) == link_target(name)

    with Agent(home) as agent:  # burn-in: the agent's users meet the new HEAD
        for query in QUERIES:
            assert agent.respond(query, kind="TRIVIAL", record=False).generation == name  # the world's data only
    assert evo(home, "heartbeat", "--count", str(CONFIG.burn_in.cycles)) == 0
    capsys.readouterr()
    assert evo(home, "run", "--until-idle") == 0
    out = capsys.readouterr().out
    assert f"GEN_HEAD advanced to {name}" in out, out
    assert events(home)[-1]["type"] == "BurnInPassed"
    return name


def gate(home: Path, candidate: str, name: str) -> dict[str, object]:
    evaluated = [e for e in events(home) if e["type"] == "GateEvaluated" and e["candidate"] == candidate]
    assert len(evaluated) == 1
    return next(g for g in evaluated[0]["gates"] if g["name"] == name)


def test_two_promotions_on_the_default_config(demo_workspace: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    shutil.copytree(demo_workspace, home, symlinks=True)
    (home / "config.toml").write_text(render_config(CONFIG))
    key = operator_key.write_files(tmp_path / "operator")[0]  # the key the demo workspace pinned

    feed_era(home, 1)
    g1 = promote(home, key, 1, capsys)
    feed_era(home, 2)
    g2 = promote(home, key, 2, capsys)

    # each promotion was earned on the bounded gates: new facts in an unseen wording, clearly
    # better than HEAD over at least 30 items, and old facts kept
    for candidate in (g1, g2):
        general = gate(home, candidate, "generalize")
        assert general["passed"] and general["n_items"] >= 30
        assert general["bound"] is not None and general["bound"] >= CONFIG.gates.delta
        assert general["confidence"] == CONFIG.gates.confidence
        recall = gate(home, candidate, "recall")
        assert recall["passed"] and recall["n_items"] >= 30
    window2 = next(e for e in events(home) if e["type"] == "WindowOpened" and e["window"] == 2)
    assert window2["head"] == g1 and window2.get("parent") == "Luna-G000-genesis"

    ws = Workspace(home)
    assert evo(home, "verify", "--deep") == 0
    with Ledger(home) as ledger:
        assert verify_ledger_archives(ws, ((r.seq, r.event) for r in ledger.records())) == []
    capsys.readouterr()
    assert evo(home, "status", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["phase"] == "idle" and status["head"] == g2 and status["parent"] == g1
