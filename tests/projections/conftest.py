"""A small driver for the real core: commands through ``decide``, events folded with ``evolve``,
each event appended as one record to an in-memory ledger with a made-up append time (10 s per
record)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from itertools import count

import pytest

from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.config import BurnInConfig, EvoConfig, ShadowConfig
from evo_core.decide import decide
from evo_core.evolve import evolve
from evo_core.state import State
from evo_core.values import BudgetUsed, Metrics, TrainingStats
from evo_core.window import draft_proposal
from ledger import MemoryLedger, Record

SIGNED = dict(signature="sig", key_id="k")  # the core checks a signature is there; adapters verify it

T0 = datetime(2025, 10, 25, 8, 0, 0, tzinfo=timezone.utc)
GENESIS = "Luna-G000-genesis"
BASELINE = Metrics(recall=0.90, generalize=0.70, tone_drift=0.02, law_violations=0)
GOOD = Metrics(recall=0.93, generalize=0.80, tone_drift=0.01, law_violations=0)
FAIR = Metrics(recall=0.91, generalize=0.73, tone_drift=0.03, law_violations=0)
LAWLESS = Metrics(recall=0.95, generalize=0.85, tone_drift=0.01, law_violations=2)
WEAK = Metrics(recall=0.80, generalize=0.60, tone_drift=0.04, law_violations=0)

Outcome = Metrics | str  # metrics to evaluate with, or "breach" / "crash"


def at(seq: int) -> str:
    return (T0 + timedelta(seconds=10 * seq)).isoformat().replace("+00:00", "Z")


def digest(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


class Sim:
    def __init__(self, config: EvoConfig | None = None) -> None:
        self.config = config or EvoConfig(
            evo_period_cycles=100,
            max_concurrent_experiments=4,
            shadow=ShadowConfig(cycles=10, min_samples=2),
            burn_in=BurnInConfig(cycles=5),
        )
        self.state = State()
        ticks = count()
        self.ledger = MemoryLedger(clock=lambda: at(next(ticks)))
        self.records: list[Record] = []

    # ------------------------------------------------------------ plumbing

    def append(self, event: ev.Event) -> None:
        self.ledger.append([event])
        self.records.extend(self.ledger.records(len(self.records)))
        self.state = evolve(self.state, event)

    def do(self, command: cmd.Command) -> list[ev.Event]:
        events = decide(self.state, command)
        for event in events:
            self.append(event)
        return events

    @property
    def seq(self) -> int:
        return len(self.records) - 1

    def beat(self, to_cycle: int) -> None:
        self.do(cmd.Beat(period=self.config.evo_period_cycles, count=to_cycle - self.state.cycle))

    def cand(self, branch: str) -> str:
        assert self.state.window is not None
        for cid in self.state.window.candidates:
            if self.state.candidates[cid].branch == branch:
                return cid
        raise KeyError(branch)

    # ------------------------------------------------------------ the story

    def genesis(self) -> None:
        self.do(
            cmd.RegisterGenesis(
                generation=GENESIS,
                source=f"models/archive/{GENESIS}",
                model_hash=digest("genesis model"),
                archive_hash=digest("genesis archive"),
            )
        )

    def window(self, plan: dict[str, Outcome], baseline: Metrics = BASELINE) -> ev.Event:
        """Run the open window to its conclusion; returns Proposed or NoPromotion. Branches
        missing from ``plan`` crash in training."""
        c = self.config
        self.do(cmd.SpawnCandidates(config=c))
        self.do(cmd.RecordBaseline(metrics=baseline, config=c))
        assert self.state.window is not None
        for cid in self.state.window.candidates:
            outcome = plan.get(self.state.candidates[cid].branch, "crash")
            self.do(cmd.StartTraining(candidate=cid))
            if outcome == "crash":
                self.do(cmd.FailTraining(candidate=cid, reason="worker died"))
            elif outcome == "breach":
                used = BudgetUsed(steps=2500)
                self.do(
                    cmd.BreachBudget(
                        candidate=cid, resource="steps", limit=2000, used=2500, budget_used=used
                    )
                )
            else:
                assert isinstance(outcome, Metrics)
                self.do(
                    cmd.FinishTraining(
                        candidate=cid,
                        stats=TrainingStats(steps=1850, loss_start=1.82, loss_final=1.76),
                        budget_used=BudgetUsed(steps=1850, walltime_minutes=52.0),
                    )
                )
                self.do(cmd.RecordEvaluation(candidate=cid, metrics=outcome, config=c))
        self.do(cmd.Rank())
        assert self.state.window is not None
        for cid in self.state.window.candidates:
            self.do(
                cmd.Freeze(
                    candidate=cid,
                    archive=f"models/archive/{cid}",
                    archive_hash=digest("archive " + cid),
                    model_hash=digest("model " + cid),
                    manifest_hash=digest("manifest " + cid),
                )
            )
        proposal, _ = draft_proposal(self.state)
        h = digest(ev.encode_value(proposal)) if proposal is not None else ""
        return self.do(cmd.Propose(proposal=proposal, proposal_hash=h))[-1]

    def approve(self) -> None:
        assert self.state.proposal is not None
        self.do(cmd.Approve(**SIGNED, operator="travis", proposal_hash=self.state.proposal.hash[:16]))

    def shadow_and_promote(self, similarity: float = 0.95, samples: int = 3) -> None:
        self.do(cmd.StartShadow(config=self.config))
        assert self.state.shadow is not None
        for i in range(samples):
            self.beat(self.state.cycle + 1)
            self.do(cmd.RecordShadow(exact=i == 0, similarity=similarity, query_id=f"q{i}"))
        self.beat(max(self.state.shadow.until_cycle, self.state.cycle + 1))
        self.do(cmd.CompleteShadow(config=self.config))

    def burn_in(self, *, errors: int = 0) -> None:
        assert self.state.burn_in is not None
        for i in range(100):
            self.do(cmd.RecordAnswer(error=i < errors, law_violation=False, latency_ratio=1.1))
        self.beat(self.state.burn_in.until_cycle)
        self.do(cmd.CompleteBurnIn(config=self.config))


@pytest.fixture
def sim() -> Sim:
    return Sim()


@pytest.fixture
def story() -> Sim:
    """Genesis; window 1 at cycle 100 with a (best PASS), b (law violations), c (PASS, not
    selected), d (budget breach); a proposed, approved at 105, shadowed 105..115, promoted at
    115, burn-in passed at 120; manual rollback to the genesis at cycle 150; heartbeats to 160."""
    s = Sim()
    s.genesis()
    s.beat(100)
    s.window({"a": GOOD, "b": LAWLESS, "c": FAIR, "d": "breach"})
    s.beat(105)
    s.approve()
    s.shadow_and_promote()
    s.burn_in()
    s.beat(150)
    s.do(cmd.Rollback(**SIGNED, operator="travis", reason="tone regressed in chat"))
    s.beat(160)
    return s
