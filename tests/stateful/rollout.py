"""The rollout setting both rollout test files share: a small config, a workspace with the
genesis registered, the runner's next step decided from the ledger alone, and reading what the
ledger and the GEN_HEAD / GEN_HEAD-PARENT links say."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from adapters.runtime import links
from adapters.runtime.create import init_workspace
from adapters.runtime.workspace import Workspace
from evo_core import commands as cmd
from evo_core.evolve import fold
from evo_core.state import CandidateStatus, Phase, State
from evo_core.values import BudgetUsed, TrainingStats
from evo_core.window import draft_proposal
from ledger.store import Ledger
from tests import operator_key
from tests.core.helpers import BAD_RECALL_LAWS, BASELINE, BETTER, GOOD, fake_hash, proposal_hash
from tests.core.strategies import PCFG

# the core's property-test config (a window every 5 cycles, 2 candidates, 2-cycle shadow and
# burn-in), needing 2 shadow samples for a verdict
CFG = PCFG.model_copy(update={"shadow": PCFG.shadow.model_copy(update={"min_samples": 2})})
P = CFG.evo_period_cycles
AGENT = "Luna"
GENESIS = "Luna-G000-genesis"
# tmpfs when there is one: the same code and syscalls, without waiting on the disk for each fsync
SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
OUTCOMES: list[Any] = [GOOD, BETTER, GOOD, BETTER, "fail", BAD_RECALL_LAWS]
# live answers in the burn-in: (error, law violation, latency ratio); mostly clean ones
CLEAN, UNTIMED, SLOWER = (False, False, 1.0), (False, False, None), (False, False, 1.5)
ERROR, LAW, SLOW = (True, False, None), (False, True, None), (False, False, 3.0)
ANSWERS = [CLEAN, CLEAN, CLEAN, UNTIMED, SLOWER, ERROR, LAW, SLOW]


def target(generation: str | None) -> str | None:
    return links.link_target(generation) if generation else None


def new_workspace(home: Path) -> None:
    init_workspace(
        home, period=P, max_concurrent=CFG.max_concurrent_experiments,
        operator_keys=[(operator_key.PUBLIC, "test operator")],
    ).close()


def ledger_state(home: Path) -> State:
    """A fresh fold of the whole ledger file: what the ledger says."""
    with Ledger(home, fsync=False) as led:
        return fold([r.event for r in led.records()])


def read_links(home: Path) -> tuple[str | None, str | None]:
    ws = Workspace(home)
    return links.read_link(ws.head_link(AGENT)), links.read_link(ws.parent_link(AGENT))


def runner_command(state: State, outcomes: list[Any]) -> cmd.Command:
    """The runner's next step in an open window, decided from the ledger's state alone (so a
    runner restarted after a crash carries on where the ledger says)."""
    window = state.window
    assert window is not None and state.phase is Phase.WINDOW
    cands = state.window_candidates()
    outcome = {c.id: outcomes[i % len(outcomes)] for i, c in enumerate(cands)}
    by = {s: [c for c in cands if c.status is s] for s in CandidateStatus}
    if not window.candidates:
        return cmd.SpawnCandidates(config=CFG)
    if window.baseline is None:
        return cmd.RecordBaseline(metrics=BASELINE, config=CFG)
    if by[CandidateStatus.SPAWNED]:
        return cmd.StartTraining(candidate=by[CandidateStatus.SPAWNED][0].id)
    if by[CandidateStatus.TRAINING]:
        c = by[CandidateStatus.TRAINING][0]
        if outcome[c.id] == "fail":
            return cmd.FailTraining(candidate=c.id, reason="worker died")
        used = BudgetUsed(steps=10, walltime_minutes=1.0, tokens_processed=100)
        return cmd.FinishTraining(candidate=c.id, stats=TrainingStats(), budget_used=used)
    if by[CandidateStatus.TRAINED]:
        c = by[CandidateStatus.TRAINED][0]
        return cmd.RecordEvaluation(candidate=c.id, metrics=outcome[c.id], config=CFG)
    if window.ranking is None:
        return cmd.Rank()
    if unfrozen := [c for c in cands if not c.frozen]:
        c = unfrozen[0]
        return cmd.Freeze(
            candidate=c.id,
            archive=f"archive/{c.id}",
            archive_hash=fake_hash("archive" + c.id),
            model_hash=fake_hash("model" + c.id),
            manifest_hash=fake_hash("manifest" + c.id),
        )
    proposal, _reason = draft_proposal(state)
    return cmd.Propose(proposal=proposal, proposal_hash=proposal_hash(proposal) if proposal else "")

