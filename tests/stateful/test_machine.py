"""Random agent, runner and operator commands through the REAL ledger (``EventStore.execute``),
checked against a trivial model and against a fresh replay of the ledger after every step.

The model is ``HeadModel`` (``model.py``: HEAD, the promoted generations, the phase, shadow and
burn-in verdicts, rollback targets), which the rollout machine shares, plus what only this
machine checks: the last heartbeat cycle, the last window multiple, and the gates and scores
that predict each window's proposal, all with its own few lines of arithmetic, so a
disagreement with the core shows up as a failing invariant with the steps ``note()``d."""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

from hypothesis import HealthCheck, event, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.decide import decide
from evo_core.errors import DomainError
from evo_core.evolve import fold
from evo_core.state import State
from evo_core.values import BudgetUsed, Metrics, TrainingStats
from evo_core.window import draft_proposal
from ledger.eventstore import EventStore
from tests.core.helpers import (
    SIGNED,
    BAD_RECALL_LAWS,
    BASELINE,
    BETTER,
    GOOD,
    PASSES_BUT_WORSE,
    check_history,
    check_invariants,
    fake_hash,
    proposal_hash,
)
from tests.core.strategies import PCFG
from tests.stateful.model import HeadModel

P = PCFG.evo_period_cycles
GENESIS = "Luna-G000-genesis"
# weighted towards passing so that rollouts are reached often
OUTCOMES: list[Any] = [GOOD, BETTER, GOOD, BETTER, BAD_RECALL_LAWS, PASSES_BUT_WORSE, "fail", "breach"]


def model_score(m: Metrics) -> float:
    return 0.4 * m.recall + 0.4 * m.generalize + 0.2 * (1 - m.tone_drift)


def model_passes(m: Metrics, head: Metrics) -> bool:
    g = PCFG.gates
    return (m.recall >= head.recall - g.epsilon and m.generalize >= head.generalize + g.delta
            and m.tone_drift <= g.theta and m.law_violations == 0)


class EvoMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.home = tempfile.mkdtemp(prefix="evo-stateful-")
        self.store: EventStore[State] = EventStore(self.home, fsync=False, snapshot_every=7)
        self.state = State()
        # the model
        self.model = HeadModel()
        self.last_cycle = 0
        self.last_multiple = 0

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.home, ignore_errors=True)

    # ------------------------------------------------------------------ plumbing

    def execute(self, command: cmd.Command) -> list[ev.Event]:
        out: list[ev.Event]
        _state, _cp, out = self.store.execute(lambda s: decide(s, command))
        self.state = fold(out, self.state)
        note(f"{type(command).__name__} -> {[type(e).__name__ for e in out]}")
        return out

    def refused(self, command: cmd.Command) -> None:
        tail = self.store.ledger.tail()
        try:
            self.store.execute(lambda s: decide(s, command))
        except DomainError as exc:
            note(f"{type(command).__name__} refused: {type(exc).__name__}: {exc}")
        else:
            raise AssertionError(f"{command!r} should have been refused")
        assert self.store.ledger.tail() == tail  # nothing appended

    # ------------------------------------------------------------------ set-up and the agent

    @initialize()
    def register_genesis(self) -> None:
        self.execute(cmd.RegisterGenesis(generation=GENESIS))
        self.model.register(GENESIS)

    @rule(jump=st.integers(-3, 2 * P + 3), count=st.integers(1, 3))
    def beat(self, jump: int, count: int) -> None:
        cycle = self.last_cycle + jump
        command = cmd.Beat(period=P, cycle=cycle, count=count)
        if jump <= 0:
            self.refused(command)
            return
        self.execute(command)
        self.last_cycle = cycle + count - 1
        reached = self.last_cycle // P * P
        if reached > self.last_multiple:
            if self.model.phase == "idle":
                self.model.open_window()
            self.last_multiple = reached

    @rule()
    def beat_to_next_window(self) -> None:
        self.beat((self.last_cycle // P + 1) * P - self.last_cycle, 1)

    # ------------------------------------------------------------------ the runner

    @precondition(lambda self: self.model.phase == "window")
    @rule(data=st.data())
    def run_window(self, data: st.DataObject) -> None:
        """Drive the open window to its end; the model predicts the proposal on its own."""
        window = self.state.window
        assert window is not None
        if not window.candidates:
            self.execute(cmd.SpawnCandidates(config=PCFG))
        if self.state.window is not None and self.state.window.baseline is None:
            self.execute(cmd.RecordBaseline(metrics=BASELINE, config=PCFG))
        expected: list[tuple[float, str]] = []
        for cand in self.state.window_candidates():
            outcome = data.draw(st.sampled_from(OUTCOMES), label=cand.id)
            if cand.status.value == "spawned":
                self.execute(cmd.StartTraining(candidate=cand.id))
            if outcome == "fail":
                self.execute(cmd.FailTraining(candidate=cand.id, reason="crash"))
            elif outcome == "breach":
                used = BudgetUsed(steps=PCFG.budget.max_steps + 1)
                self.execute(cmd.FinishTraining(candidate=cand.id, stats=TrainingStats(), budget_used=used))
            else:
                used = BudgetUsed(steps=PCFG.budget.max_steps)
                self.execute(cmd.FinishTraining(candidate=cand.id, stats=TrainingStats(), budget_used=used))
                self.execute(cmd.RecordEvaluation(candidate=cand.id, metrics=outcome, config=PCFG))
                if model_passes(outcome, BASELINE):
                    expected.append((model_score(outcome), cand.id))
        self.execute(cmd.Rank())
        for cand in self.state.window_candidates():
            self.execute(cmd.Freeze(candidate=cand.id, archive=f"archive/{cand.id}", archive_hash=fake_hash(cand.id)))
        proposal, _ = draft_proposal(self.state)
        (out,) = self.execute(cmd.Propose(proposal=proposal, proposal_hash=proposal_hash(proposal) if proposal else ""))
        best = max(expected, key=lambda x: x[0], default=None)
        beats = best is not None and best[0] > model_score(BASELINE) and self.model.window_head == self.model.head
        if beats:
            assert best is not None
            assert isinstance(out, ev.Proposed) and out.proposal.candidate == best[1]
            self.model.propose(best[1])
        else:
            assert isinstance(out, ev.NoPromotion), out
            self.model.phase = "idle"

    @precondition(lambda self: self.model.phase in ("approved", "shadow"))
    @rule(samples=st.lists(st.sampled_from([0.0, 0.3, 0.9, 1.0, 1.0]), max_size=3), complete=st.booleans())
    def run_shadow(self, samples: list[float], complete: bool) -> None:
        if self.model.phase == "approved":
            self.execute(cmd.StartShadow(config=PCFG))
            self.model.start_shadow()
        for similarity in samples:
            self.execute(cmd.RecordShadow(exact=similarity == 1.0, similarity=similarity))
            self.model.samples.append(similarity)
        if not complete:
            return
        shadow = self.state.shadow
        assert shadow is not None
        if self.last_cycle < shadow.until_cycle:
            self.refused(cmd.CompleteShadow(config=PCFG))
            self.beat(shadow.until_cycle - self.last_cycle, 1)
        self.execute(cmd.CompleteShadow(config=PCFG))
        verdict = self.model.shadow_verdict(PCFG)
        event("promoted" if verdict == "passed" else f"shadow {verdict}")
        self.model.complete_shadow(verdict)

    @precondition(lambda self: self.model.phase == "burn_in")
    @rule(errors=st.integers(0, 2), laws=st.integers(0, 1), latency=st.sampled_from([None, 1.0, 3.0]))
    def complete_burn_in(self, errors: int, laws: int, latency: float | None) -> None:
        burn = self.state.burn_in
        assert burn is not None
        for i in range(50 - burn.answers):
            self.execute(cmd.RecordAnswer(error=i < errors, law_violation=i < laws, latency_ratio=latency))
            self.model.answers.append((i < errors, i < laws, latency))
        if self.last_cycle < burn.until_cycle:
            self.beat(burn.until_cycle - self.last_cycle, 1)
        self.execute(cmd.CompleteBurnIn(config=PCFG))
        verdict = self.model.burn_in_verdict(PCFG)
        event(f"burn-in {verdict}")
        self.model.complete_burn_in(verdict)

    # ------------------------------------------------------------------ the operator

    @precondition(lambda self: self.model.phase == "proposed")
    @rule(how=st.sampled_from(["pending", "full", "prefix", "short", "stale"]))
    def approve(self, how: str) -> None:
        assert self.state.proposal is not None
        digest = self.state.proposal.hash
        given = {"pending": None, "full": digest, "prefix": digest[:8], "short": digest[:7],
                 "stale": fake_hash("another proposal")}[how]
        command = cmd.Approve(**SIGNED, operator="op", proposal_hash=given)
        if how in ("short", "stale"):
            self.refused(command)
            return
        (out,) = self.execute(command)
        assert isinstance(out, ev.Approved) and out.proposal_hash == digest
        self.model.phase = "approved"

    @precondition(lambda self: self.model.phase == "proposed")
    @rule(reason=st.sampled_from(["", "tone drift looks off"]))
    def reject(self, reason: str) -> None:
        command = cmd.Reject(**SIGNED, operator="op", reason=reason)
        if not reason:
            self.refused(command)
            return
        self.execute(command)
        self.model.phase = "idle"

    @rule(to=st.sampled_from([None, GENESIS, "Luna-G00", "Luna-G001", "Luna-G002", "nope", "promoted-1"]),
          now=st.integers(0, 3))
    def rollback(self, to: str | None, now: int) -> None:
        if now:  # an operator rolls back rarely: let most evolutions run their course
            return
        if to == "promoted-1":
            to = self.model.promoted[-1] if self.model.promoted else None
        target = self.model.expected_rollback(to)
        command = cmd.Rollback(**SIGNED, operator="op", to=to)
        if target is None:
            self.refused(command)
            return
        (out,) = self.execute(command)
        assert isinstance(out, ev.RolledBack) and out.to_generation == target
        event(f"rollback in {self.model.phase}")
        self.model.roll_back(target)

    # ------------------------------------------------------------------ always illegal here

    @rule(data=st.data())
    def illegal(self, data: st.DataObject) -> None:
        options: list[cmd.Command] = [
            cmd.Beat(period=P, cycle=self.last_cycle),
            cmd.Rollback(**SIGNED, operator="op", to="Luna-G099-never-c1"),
            cmd.RecordShadow(exact=False, similarity=float("nan")),
        ]
        if self.model.phase != "empty":
            options.append(cmd.RegisterGenesis(generation="Luna-G000-again"))
        if self.model.phase != "proposed":
            options += [cmd.Approve(**SIGNED, operator="op"), cmd.Reject(**SIGNED, operator="op", reason="x")]
        if self.model.phase != "burn_in":
            options += [cmd.CompleteBurnIn(config=PCFG), cmd.RecordAnswer(error=False, law_violation=False)]
        if self.model.phase != "window":
            options += [cmd.SpawnCandidates(config=PCFG), cmd.Rank(), cmd.Propose(proposal=None)]
        if self.model.phase == "window":
            nan = Metrics(recall=float("nan"), generalize=0.5, tone_drift=0.0, law_violations=0)
            options.append(cmd.RecordBaseline(metrics=nan, config=PCFG))
        self.refused(data.draw(st.sampled_from(options), label="illegal"))

    # ------------------------------------------------------------------ invariants

    @invariant()
    def fresh_replay_equals_the_stores_state(self) -> None:
        events = [r.event for r in self.store.ledger.records()]
        replayed = fold(events)
        assert replayed == self.state
        with EventStore(self.home, fsync=False, snapshot_every=7) as fresh:  # snapshot + tail
            assert fresh.load().state == replayed
        assert self.store.load().state == replayed  # the store's cached state

    @invariant()
    def ledger_verifies(self) -> None:
        report = self.store.ledger.verify()
        assert report.ok, report.problems

    @invariant()
    def head_matches_the_model(self) -> None:
        assert self.state.head == self.model.head, (self.state.head, self.model.head)
        assert list(self.state.promoted) == self.model.promoted, (self.state.promoted, self.model.promoted)

    @invariant()
    def phase_matches_the_model(self) -> None:
        assert self.state.phase.value == self.model.phase, (self.state.phase, self.model.phase)

    @invariant()
    def cycles_strictly_increase(self) -> None:
        cycles = [r.event.cycle for r in self.store.ledger.records() if isinstance(r.event, ev.Heartbeat)]
        assert all(a < b for a, b in zip(cycles, cycles[1:]))
        assert (cycles[-1] if cycles else 0) == self.last_cycle == self.state.cycle

    @invariant()
    def core_invariants_hold(self) -> None:
        check_invariants(self.state)
        check_history([r.event for r in self.store.ledger.records()], P)


EvoMachine.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestEvoMachine = EvoMachine.TestCase
