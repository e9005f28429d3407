"""Hypothesis strategies for commands: ones that move the current state forward, and random
ones (often illegal) built from what the state names or from nothing at all."""

from __future__ import annotations

import math

from hypothesis import strategies as st

from evo_core import commands as cmd
from evo_core.config import BurnInConfig, EvoConfig, ShadowConfig
from evo_core.reactions import reactions
from evo_core.state import CandidateStatus, Phase, State
from evo_core.values import BudgetUsed, Metrics, TrainingStats
from evo_core.window import draft_proposal
from tests.core.helpers import (
    SIGNED,
    BAD_RECALL_LAWS,
    BASELINE,
    BETTER,
    GOOD,
    PASSES_BUT_WORSE,
    fake_hash,
    proposal_hash,
)

PCFG = EvoConfig(
    evo_period_cycles=5,
    max_concurrent_experiments=2,
    shadow=ShadowConfig(cycles=2, min_samples=1, parity_threshold=0.5),
    burn_in=BurnInConfig(cycles=2, min_answers=2),
)
P = PCFG.evo_period_cycles


def b(cls: type[cmd.Command], **fields: st.SearchStrategy[object]) -> st.SearchStrategy[cmd.Command]:
    """``st.builds`` for commands (their signatures name ``EvoConfig`` only for type checkers)."""
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
odd_float = st.sampled_from([math.nan, math.inf, -math.inf])
metrics = st.one_of(
    st.sampled_from([GOOD, BETTER, BAD_RECALL_LAWS, PASSES_BUT_WORSE, BASELINE]),
    st.builds(Metrics, recall=unit, generalize=unit, tone_drift=unit, law_violations=st.integers(0, 2)),
    st.builds(Metrics, recall=odd_float, generalize=unit, tone_drift=unit, law_violations=st.just(0)),
)
likely_good = st.one_of(st.sampled_from([GOOD, BETTER]), st.sampled_from([GOOD, BETTER]), metrics)
used_ok = st.builds(
    BudgetUsed, steps=st.integers(0, PCFG.budget.max_steps), walltime_minutes=st.floats(0, 60)
)
used_any = st.one_of(
    used_ok,
    st.builds(BudgetUsed, steps=st.integers(0, 3000), disk_gb=st.one_of(st.floats(0, 9), odd_float)),
)
stats = st.just(TrainingStats(steps=1, loss_start=2.0, loss_final=1.0))
# the old HEAD's mean log-likelihoods per token of an answer and of its query (None: not
# scored), and the floors they are judged against
logprob = st.none() | st.floats(-8.0, 0.0)
floor = st.sampled_from([PCFG.shadow.logprob_floor, -1.0])
logprob_any = logprob | odd_float | st.just(0.5)
floor_any = st.none() | floor | odd_float


def _propose(state: State) -> cmd.Command:
    if state.window is None or state.window.ranking is None:
        return cmd.Propose(proposal=None)
    draft, _ = draft_proposal(state)
    return cmd.Propose(proposal=draft, proposal_hash=proposal_hash(draft) if draft else "")


def _freeze(cid: str) -> cmd.Command:
    return cmd.Freeze(
        candidate=cid, archive=f"models/archive/{cid}", archive_hash=fake_hash(cid), model_hash=fake_hash("m" + cid)
    )


def progress(state: State) -> list[st.SearchStrategy[cmd.Command]]:
    """Commands the runner, agent or operator would issue next (legal, given good inputs)."""
    out: list[st.SearchStrategy[cmd.Command]] = []
    if state.phase is Phase.EMPTY:
        return [st.just(cmd.RegisterGenesis(generation="Luna-G000-genesis"))]
    if state.phase is Phase.IDLE:
        return [st.just(cmd.Beat(period=P, cycle=(state.cycle // P + 1) * P))]
    for action in reactions(state):
        match type(action).__name__:
            case "SpawnCandidates":
                out.append(st.just(cmd.SpawnCandidates(config=PCFG)))
            case "EvaluateBaseline":
                out.append(b(cmd.RecordBaseline, metrics=st.just(BASELINE) | metrics, config=st.just(PCFG)))
            case "TrainCandidate":
                cid = action.candidate  # type: ignore[attr-defined]
                if state.candidates[cid].status is CandidateStatus.SPAWNED:
                    out.append(st.just(cmd.StartTraining(candidate=cid)))
                else:
                    out.append(b(cmd.FinishTraining, candidate=st.just(cid), stats=stats, budget_used=used_ok))
                    out.append(b(cmd.FinishTraining, candidate=st.just(cid), stats=stats, budget_used=used_any))
                    out.append(st.just(cmd.FailTraining(candidate=cid, reason="oom")))
            case "EvaluateCandidate":
                cid = action.candidate  # type: ignore[attr-defined]
                out.append(b(cmd.RecordEvaluation, candidate=st.just(cid), metrics=likely_good, config=st.just(PCFG)))
            case "RankCandidates":
                out.append(st.just(cmd.Rank()))
            case "FreezeCandidate":
                out.append(st.just(_freeze(action.candidate)))  # type: ignore[attr-defined]
            case "ConcludeWindow":
                out.append(st.just(_propose(state)))
            case "SelfApprove":
                out.append(st.just(cmd.Approve(operator="evo", autonomous=True)))
            case "StartShadow":
                out.append(st.just(cmd.StartShadow(config=PCFG)))
                out.append(st.just(cmd.RefuseApproval(action="approve", operator="op", reason="bad signature",
                                                      proposal_hash=state.proposal.hash if state.proposal else "")))
            case "CompleteShadow":
                out.append(st.just(cmd.CompleteShadow(config=PCFG)))
            case "CompleteBurnIn":
                out.append(st.just(cmd.CompleteBurnIn(config=PCFG)))
    if state.phase is not Phase.EMPTY:
        out.append(st.just(cmd.ChangeAutonomy(enabled=not state.autonomy, operator="op", key_id="k",
                                              signature="sig", nonce=state.autonomy_changes)))
    if state.phase is Phase.PROPOSED:
        out.append(st.just(cmd.Approve(**SIGNED, operator="op")))
        out.append(st.just(cmd.Reject(**SIGNED, operator="op", reason="not yet")))
    if state.phase is Phase.SHADOW and state.shadow is not None:
        out.append(b(cmd.RecordShadow, exact=st.booleans(), similarity=unit, logprob=logprob,
                     prompt_logprob=logprob, logprob_floor=floor, prompt_floor=floor))
        out.append(st.just(cmd.Beat(period=P, cycle=max(state.cycle + 1, state.shadow.until_cycle))))
    if state.phase is Phase.BURN_IN and state.burn_in is not None:
        out.append(b(cmd.RecordAnswer, error=st.booleans(), law_violation=st.booleans(),
                     latency_ratio=st.none() | st.floats(0.5, 3), logprob=logprob, prompt_logprob=logprob,
                     logprob_floor=floor, prompt_floor=floor))
        out.append(b(cmd.RecordAnswer, error=st.just(False), law_violation=st.just(False),
                     latency_ratio=st.none() | st.floats(0.5, 1.5), logprob=st.none() | st.floats(-1.0, 0.0),
                     prompt_logprob=st.floats(-1.0, 0.0), logprob_floor=floor, prompt_floor=floor))
        out.append(st.just(cmd.Beat(period=P, cycle=max(state.cycle + 1, state.burn_in.until_cycle))))
    return out


def anything(state: State) -> st.SearchStrategy[cmd.Command]:
    """Any command, with names taken from the state or made up: mostly illegal."""
    cids = list(state.window.candidates) if state.window and state.window.candidates else []
    cid = st.sampled_from(cids + ["Luna-G009-z-c5"])
    digest = state.proposal.hash if state.proposal else "f" * 64
    hashes = st.sampled_from([None, digest, digest[:8], digest[:7], "0" * 64, digest.upper()])
    targets = st.sampled_from(
        [None, *state.promoted, *list(state.candidates)[:2], "Luna-G00", "Luna-G1", "nope"]
    )
    return st.one_of(
        b(cmd.Beat, period=st.just(P), cycle=st.none() | st.integers(state.cycle - 2, state.cycle + 3 * P),
                  count=st.integers(1, 3)),
        st.just(cmd.RegisterGenesis(generation="Luna-G000-genesis")),
        st.just(cmd.SpawnCandidates(config=PCFG)),
        b(cmd.StartTraining, candidate=cid),
        b(cmd.FinishTraining, candidate=cid, stats=stats, budget_used=used_any),
        b(cmd.FailTraining, candidate=cid, reason=st.sampled_from(["", "crash"])),
        b(cmd.BreachBudget, candidate=cid, resource=st.just("steps"), limit=st.just(2000.0),
                  used=st.sampled_from([2001.0, math.nan]), budget_used=used_any),
        b(cmd.RecordBaseline, metrics=metrics, config=st.just(PCFG)),
        b(cmd.RecordEvaluation, candidate=cid, metrics=metrics, config=st.just(PCFG)),
        st.just(cmd.Rank()),
        cid.map(_freeze),
        st.just(_propose(state)),
        st.just(cmd.Propose(proposal=None)),
        b(cmd.Approve, operator=st.just("op"), proposal_hash=hashes, signature=st.sampled_from(["", "sig"]),
          key_id=st.just("k"), autonomous=st.booleans()),
        b(cmd.Reject, operator=st.just("op"), reason=st.sampled_from(["", "no"]), proposal_hash=hashes,
          signature=st.sampled_from(["", "sig"]), key_id=st.just("k")),
        b(cmd.ChangeAutonomy, enabled=st.booleans(), operator=st.just("op"), key_id=st.just("k"),
          signature=st.sampled_from(["", "sig"]), nonce=st.integers(-1, 3)),
        b(cmd.RefuseApproval, action=st.sampled_from(["approve", "reject", "autonomy", "dance"]),
          operator=st.just("op"), reason=st.sampled_from(["", "bad signature"]), proposal_hash=st.just(digest)),
        b(cmd.Rollback, operator=st.just("op"), to=targets),
        st.just(cmd.StartShadow(config=PCFG)),
        b(cmd.RecordShadow, exact=st.booleans(), similarity=st.one_of(unit, odd_float, st.just(1.5)),
          logprob=logprob_any, prompt_logprob=logprob_any, logprob_floor=floor_any, prompt_floor=floor_any),
        st.just(cmd.CompleteShadow(config=PCFG)),
        st.just(cmd.CompleteBurnIn(config=PCFG)),
        b(cmd.RecordAnswer, error=st.booleans(), law_violation=st.booleans(),
          latency_ratio=st.none() | st.floats(0.5, 3) | odd_float | st.just(0.0),
          logprob=logprob_any, prompt_logprob=logprob_any, logprob_floor=floor_any, prompt_floor=floor_any),
    )


def command(state: State) -> st.SearchStrategy[cmd.Command]:
    """Mostly forward progress (so rollouts are reached), often anything at all."""
    forward = progress(state)
    if not forward:
        return anything(state)
    go, other = st.one_of(forward), anything(state)
    # one_of flattens nested one_ofs (uniform over leaves): weigh with an explicit draw
    return st.integers(0, 3).flatmap(lambda i: go if i else other)
