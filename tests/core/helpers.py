"""Test helpers for the pure core: a driver that runs whole windows through ``decide``/``evolve``,
the history checks (window coverage, approvals before promotions), ``check_invariants``, and for
the ``decide`` tests ``refused`` (a command raises and leaves the state as it was) and
``proposed`` (a driver with a proposal pending)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Union

import msgspec
import pytest
from blake3 import blake3

from adapters.operator.crypto import CRYPTO
from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.authority import verified
from evo_core.config import BurnInConfig, EvoConfig, ShadowConfig
from evo_core.decide import decide
from evo_core.errors import DomainError
from evo_core.evolve import evolve, fold
from evo_core.state import CandidateStatus, Phase, State
from evo_core.transitions import ACCEPTS
from evo_core.values import BudgetUsed, Metrics, Proposal, TrainingStats
from evo_core.window import draft_proposal
from tests import operator_key

PERIOD = 10
CFG = EvoConfig(
    evo_period_cycles=PERIOD,
    max_concurrent_experiments=3,
    shadow=ShadowConfig(cycles=5, min_samples=2, parity_threshold=0.9),
    burn_in=BurnInConfig(cycles=3),
)
GENESIS = "Luna-G000-genesis"
KNOWN_QUERY = -0.5  # the old HEAD's mean log-likelihood per token of a query it knows

BASELINE = Metrics(recall=0.80, generalize=0.60, tone_drift=0.02, law_violations=0)
GOOD = Metrics(recall=0.82, generalize=0.70, tone_drift=0.01, law_violations=0)
BETTER = Metrics(recall=0.85, generalize=0.75, tone_drift=0.01, law_violations=0)
BAD_RECALL_LAWS = Metrics(recall=0.50, generalize=0.70, tone_drift=0.01, law_violations=2)
# passes every gate (recall within epsilon, generalize exactly +delta) but scores below HEAD
PASSES_BUT_WORSE = Metrics(recall=0.75, generalize=0.62, tone_drift=0.02, law_violations=0)

STATE_DECODER = msgspec.json.Decoder(State)


# an operator command the drivers sign for real with the test key (``tests.operator_key``)
SIGNED = operator_key.SIGNED
LEDGER_ID = blake3(b"core test ledger").hexdigest()
STEP = verified(CRYPTO, lambda: LEDGER_ID)  # the verified fold every acting process uses


def vfold(events: list[ev.Event], state: State) -> State:
    """Fold ``events`` through the verified fold; every one must be applied (none flagged)."""
    for event in events:
        after = STEP(state, event)
        assert len(after.flagged) == len(state.flagged), after.flagged[-1]
        state = after
    return state


def core_checkpoint(state: State) -> tuple[int, str]:
    """The checkpoint a core test's operator "saw": the last record (the core checks its seq)."""
    return state.records - 1, blake3(f"record {state.records - 1}".encode()).hexdigest()


def proposal_hash(proposal: Proposal) -> str:
    return blake3(ev.encode_value(proposal)).hexdigest()


def fake_hash(text: str) -> str:
    return blake3(text.encode()).hexdigest()


def apply(state: State, command: cmd.Command) -> tuple[State, list[ev.Event]]:
    events = decide(state, operator_key.sign_marked(state, command, core_checkpoint(state)))
    return vfold(events, state), events


def snapshot(state: State) -> bytes:
    return msgspec.json.encode(state)


# What happens to one candidate in a window: metrics to evaluate, or a failure mode.
Outcome = Union[Metrics, Literal["fail", "breach", "over_budget"]]


@dataclass
class Driver:
    """Runs the pure core the way the runner would: decide, then fold what it returned."""

    config: EvoConfig = CFG
    state: State = field(default_factory=State)
    events: list[ev.Event] = field(default_factory=list)

    def do(self, command: cmd.Command) -> list[ev.Event]:
        out = decide(self.state, operator_key.sign_marked(self.state, command, self.checkpoint()))
        self.state = vfold(out, self.state)
        self.events.extend(out)
        return out

    def checkpoint(self) -> tuple[int, str]:
        return core_checkpoint(self.state)

    # ------------------------------------------------------------------ agent / set-up
    def genesis(self, name: str = GENESIS) -> Driver:
        self.do(operator_key.pin())
        self.do(cmd.RegisterGenesis(generation=name, model_hash=fake_hash(name)))
        return self

    def beat(self, cycle: int | None = None, count: int = 1) -> list[ev.Event]:
        return self.do(cmd.Beat(period=self.config.evo_period_cycles, cycle=cycle, count=count))

    def beat_to(self, cycle: int) -> list[ev.Event]:
        """Heartbeats one by one up to ``cycle`` (inclusive)."""
        out: list[ev.Event] = []
        while self.state.cycle < cycle:
            out += self.beat()
        return out

    def open_window(self) -> None:
        """Beat up to the next multiple of the period: a window opens."""
        p = self.config.evo_period_cycles
        self.beat_to((self.state.cycle // p + 1) * p)
        assert self.state.phase is Phase.WINDOW, self.state.phase

    # ------------------------------------------------------------------ runner
    def candidates(self) -> list[str]:
        assert self.state.window is not None
        return list(self.state.window.candidates)

    def train(self, cid: str, outcome: Outcome) -> None:
        self.do(cmd.StartTraining(candidate=cid))
        if outcome == "fail":
            self.do(cmd.FailTraining(candidate=cid, reason="worker died"))
        elif outcome == "breach":
            self.do(
                cmd.BreachBudget(
                    candidate=cid,
                    resource="steps",
                    limit=float(self.config.budget.max_steps),
                    used=float(self.config.budget.max_steps + 1),
                    budget_used=BudgetUsed(steps=self.config.budget.max_steps + 1),
                )
            )
        elif outcome == "over_budget":  # the adapter missed it; the core must not
            self.do(
                cmd.FinishTraining(
                    candidate=cid,
                    stats=TrainingStats(steps=10, loss_start=2.0, loss_final=1.0),
                    budget_used=BudgetUsed(disk_gb=self.config.budget.max_disk_gb + 1),
                )
            )
        else:
            self.do(
                cmd.FinishTraining(
                    candidate=cid,
                    stats=TrainingStats(steps=10, loss_start=2.0, loss_final=1.0),
                    budget_used=BudgetUsed(steps=10, walltime_minutes=1.0, tokens_processed=100),
                )
            )
            self.do(cmd.RecordEvaluation(candidate=cid, metrics=outcome, config=self.config))

    def freeze_all(self) -> None:
        for cid in self.candidates():
            self.do(
                cmd.Freeze(
                    candidate=cid,
                    archive=f"models/archive/{cid}",
                    archive_hash=fake_hash("archive" + cid),
                    model_hash=fake_hash("model" + cid),
                    manifest_hash=fake_hash("manifest" + cid),
                )
            )

    def conclude(self) -> list[ev.Event]:
        proposal, _reason = draft_proposal(self.state)
        digest = proposal_hash(proposal) if proposal is not None else ""
        return self.do(cmd.Propose(proposal=proposal, proposal_hash=digest))

    def window(self, outcomes: list[Outcome], baseline: Metrics = BASELINE) -> list[ev.Event]:
        """A whole window: open, spawn, baseline, train/evaluate each, rank, freeze, conclude."""
        self.open_window()
        self.do(cmd.SpawnCandidates(config=self.config))
        self.do(cmd.RecordBaseline(metrics=baseline, config=self.config))
        cids = self.candidates()
        assert len(outcomes) == len(cids), (outcomes, cids)
        for cid, outcome in zip(cids, outcomes):
            self.train(cid, outcome)
        self.do(cmd.Rank())
        self.freeze_all()
        return self.conclude()

    # ------------------------------------------------------------------ operator / rollout
    def approve(self, prefix: int | None = None) -> list[ev.Event]:
        assert self.state.proposal is not None
        digest = self.state.proposal.hash
        return self.do(
            cmd.Approve(**SIGNED, operator="op", proposal_hash=digest[:prefix] if prefix else digest)
        )

    def shadow(self, samples: int = 3, similarity: float = 0.95, logprob: float | None = None,
               prompt_logprob: float = KNOWN_QUERY) -> list[ev.Event]:
        """Start the shadow, record ``samples`` comparisons (scored by HEAD: ``logprob`` for the
        answer, ``prompt_logprob`` for the query; unscored when ``logprob`` is None), beat past
        its end, complete it."""
        self.do(cmd.StartShadow(config=self.config))
        s = self.config.shadow
        scores = {} if logprob is None else dict(
            logprob=logprob, prompt_logprob=prompt_logprob, logprob_floor=s.logprob_floor, prompt_floor=s.prompt_floor
        )
        for i in range(samples):
            self.do(cmd.RecordShadow(exact=similarity == 1.0, similarity=similarity, query_id=f"q{i}", **scores))
        assert self.state.shadow is not None
        self.beat_to(self.state.shadow.until_cycle)
        return self.do(cmd.CompleteShadow(config=self.config))

    def answers(self, answers: int = 50, errors: int = 0, laws: int = 0, latency: float | None = 1.1,
                logprob: float | None = None, prompt_logprob: float = KNOWN_QUERY) -> None:
        """Record ``answers`` live answers: the first ``errors`` failed, the first ``laws`` broke a
        law; each scored by the old HEAD as in ``shadow`` (unscored when ``logprob`` is None)."""
        b = self.config.burn_in
        scores = {} if logprob is None else dict(
            logprob=logprob, prompt_logprob=prompt_logprob, logprob_floor=b.logprob_floor, prompt_floor=b.prompt_floor
        )
        for i in range(answers):
            self.do(cmd.RecordAnswer(error=i < errors, law_violation=i < laws, latency_ratio=latency, query_id=f"a{i}",
                                     **scores))

    def burn_in(self, answers: int = 50, errors: int = 0, laws: int = 0, latency: float | None = 1.1,
                logprob: float | None = None, prompt_logprob: float = KNOWN_QUERY) -> list[ev.Event]:
        assert self.state.burn_in is not None
        self.answers(answers, errors, laws, latency, logprob, prompt_logprob)
        self.beat_to(self.state.burn_in.until_cycle)
        return self.do(cmd.CompleteBurnIn(config=self.config))

    def promote(self, outcomes: list[Outcome] | None = None) -> str:
        """A whole successful evolution: window, approve, shadow, burn-in. Returns the new HEAD."""
        self.window(outcomes or [GOOD, BETTER, "fail"])
        assert self.state.phase is Phase.PROPOSED
        self.approve()
        self.shadow()
        assert self.state.phase is Phase.BURN_IN
        self.burn_in()
        assert self.state.phase is Phase.IDLE and self.state.head is not None
        return self.state.head

    def rollback(self, to: str | None = None) -> list[ev.Event]:
        return self.do(cmd.Rollback(**SIGNED, operator="op", to=to))


# --------------------------------------------------------------------------- invariants


def check_invariants(state: State) -> None:
    """Every rule of the issue that a single folded state can show."""
    phase = state.phase
    if phase is Phase.EMPTY:
        assert state.head is None and state.genesis is None and not state.promoted
    else:
        assert state.head is not None and state.genesis is not None
        # HEAD only ever points at a promoted generation (or the genesis)
        assert state.head in state.promoted or state.head == state.genesis
        assert state.head in state.generations
    assert set(state.promoted) <= set(state.generations)
    assert len(set(state.promoted)) == len(state.promoted)
    for name in state.promoted:
        assert state.generations[name].promoted
    assert state.last_window_cycle <= state.cycle
    assert state.windows == (state.window.number if state.window else 0)

    # phase consistent with what is present
    quiet = state.proposal is None and state.shadow is None and state.burn_in is None
    if phase in (Phase.EMPTY, Phase.IDLE):
        assert quiet, phase
        assert state.window is None or state.window.outcome != ""
    elif phase is Phase.WINDOW:
        assert quiet and state.window is not None and state.window.outcome == ""
    else:
        assert state.proposal is not None and state.window is not None
        assert state.window.outcome == "proposed"
        approved = state.proposal.approved_by is not None
        assert approved == (phase is not Phase.PROPOSED)
        if approved:  # signed by an operator, or by the scheduler under a signed autonomy grant
            p = state.proposal
            assert (p.approval_signature and p.approval_key_id) or p.approval_autonomous
        assert (state.shadow is not None) == (phase is Phase.SHADOW)
        assert (state.burn_in is not None) == (phase is Phase.BURN_IN)
        if phase is Phase.SHADOW:
            assert state.shadow is not None
            assert state.shadow.generation == state.proposal.proposal.candidate
            s = state.shadow
            assert 0 <= s.plausible <= s.judged <= s.scored <= s.samples
        if phase is Phase.BURN_IN:
            assert state.burn_in is not None
            assert state.head == state.burn_in.generation
            burn = state.burn_in
            assert 0 <= burn.errors <= burn.answers and 0 <= burn.law_violations <= burn.answers
            assert burn.latency_samples <= burn.answers
            assert 0 <= burn.plausible <= burn.judged <= burn.scored <= burn.answers

    window = state.window
    if window is not None:
        assert window.cycle % window.period == 0 and window.cycle <= window.heartbeat_cycle
        cands = state.window_candidates()
        seeds = [c.seed for c in cands]
        assert len(set(seeds)) == len(seeds)
        assert len({(c.strategy, c.seed) for c in cands}) == len(cands)
        if window.outcome != "":  # concluded: every candidate, pass or fail, frozen
            assert all(c.frozen for c in cands)
        for c in cands:
            if c.frozen:
                assert (c.verdict == "PASS") == c.passed
                assert c.verdict == "PASS" or c.verdict.startswith("FAIL - ")
            if c.status is CandidateStatus.FAILED:
                assert not c.passed
            if c.passed:
                assert c.status is CandidateStatus.EVALUATED
                assert all(g.passed for g in c.gates)

    if state.proposal is not None:
        p = state.proposal.proposal
        cand = state.candidates[p.candidate]
        assert cand.passed and all(g.passed for g in cand.gates)
        assert p.improvement > 0 and math.isclose(p.improvement, p.score - p.head_score)
        assert cand.score == p.score
        assert len(state.proposal.hash) == 64


def check_history(events: list[ev.Event], period: int = PERIOD) -> None:
    """Rules that need the whole ledger: cycles, window coverage, approvals, rollbacks, freezes."""
    state = State()
    cycles: list[int] = []
    covered: list[int] = []
    approved: set[str] = set()
    pending_hash: str | None = None
    frozen: list[str] = []
    for event in events:
        # the machine could have produced it
        assert type(event) in ACCEPTS[state.phase], (type(event).__name__, state.phase)
        match event:
            case ev.Heartbeat(cycle=c):
                assert not cycles or c > cycles[-1], (cycles[-1], c)
                cycles.append(c)
            case ev.WindowOpened():
                assert event.cycle % event.period == 0
                assert event.cycle <= event.heartbeat_cycle == cycles[-1]
                covered.append(event.cycle)
            case ev.WindowSkipped():
                assert event.reason
                assert event.count == (event.last_cycle - event.first_cycle) // period + 1
                assert event.last_cycle <= event.heartbeat_cycle == cycles[-1]
                covered.extend(range(event.first_cycle, event.last_cycle + 1, period))
            case ev.Proposed():
                pending_hash = event.proposal_hash
            case ev.Approved():
                assert event.proposal_hash == pending_hash
                approved.add(event.proposal_hash)
            case ev.Promoted():
                assert event.proposal_hash in approved and event.proposal_hash == pending_hash
            case ev.RolledBack():
                assert event.to_generation in state.promoted
            case ev.CandidateFrozen():
                frozen.append(event.candidate)
        state = evolve(state, event)
    # every multiple <= the last cycle covered exactly once, in order
    last = cycles[-1] if cycles else 0
    assert covered == list(range(period, last // period * period + 1, period)), covered
    assert len(frozen) == len(set(frozen))


def drain(state: State, config: EvoConfig) -> State:
    """Liveness: from any reachable state, the runner and the operator can always end the
    evolution in progress (fail what is unfinished, conclude, reject or abort) and reach IDLE."""
    for _ in range(50):
        phase = state.phase
        if phase in (Phase.EMPTY, Phase.IDLE):
            return state
        if phase is Phase.PROPOSED:
            state, _ = apply(state, cmd.Reject(**SIGNED, operator="op", reason="drain"))
        elif phase is not Phase.WINDOW:
            state, _ = apply(state, cmd.Rollback(**SIGNED, operator="op"))
        else:
            window = state.window
            assert window is not None
            if not window.candidates:
                state, _ = apply(state, cmd.SpawnCandidates(config=config))
            elif window.baseline is None:
                state, _ = apply(state, cmd.RecordBaseline(metrics=BASELINE, config=config))
            elif unfinished := [c for c in state.window_candidates()
                                if c.status in (CandidateStatus.SPAWNED, CandidateStatus.TRAINING)]:
                state, _ = apply(state, cmd.FailTraining(candidate=unfinished[0].id, reason="drain"))
            elif trained := [c for c in state.window_candidates() if c.status is CandidateStatus.TRAINED]:
                state, _ = apply(state, cmd.RecordEvaluation(candidate=trained[0].id, metrics=BASELINE, config=config))
            elif window.ranking is None:
                state, _ = apply(state, cmd.Rank())
            elif unfrozen := [c for c in state.window_candidates() if not c.frozen]:
                state, _ = apply(state, cmd.Freeze(candidate=unfrozen[0].id, archive="a", archive_hash=fake_hash("a")))
            else:
                proposal, _ = draft_proposal(state)
                digest = proposal_hash(proposal) if proposal else ""
                state, _ = apply(state, cmd.Propose(proposal=proposal, proposal_hash=digest))
        check_invariants(state)
    raise AssertionError(f"could not drain to idle: stuck in {state.phase}")


def refused(state: State, command: cmd.Command, error: type[DomainError], match: str | None = None) -> str:
    """``command`` raises ``error`` and returns nothing; the state is unchanged and equal."""
    before = snapshot(state)
    copy = STATE_DECODER.decode(before)
    with pytest.raises(error, match=match) as info:
        decide(state, command)
    assert snapshot(state) == before and state == copy
    message = str(info.value)
    assert message and "\n" not in message
    return message


def proposed() -> Driver:
    d = Driver().genesis()
    d.window([GOOD, BETTER, "fail"])
    assert d.state.phase is Phase.PROPOSED
    return d
