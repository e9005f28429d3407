"""``decide`` for the operator's commands and the rollout: approve, reject, rollback, shadow,
cutover (Promoted) and burn-in.

Quality, the shadow's and the burn-in's main judgement
------------------------------------------------------
The serving router scores each answer of the new generation with the old generation (HEAD
during the shadow, the previous HEAD during burn-in): its mean log-likelihood per token, in
nats, of the user's query (``prompt_logprob``) and of the new answer (``logprob``);
``adapters.serving.quality`` has the formula and the measurements behind the defaults. When the
answer is recorded it is judged against the floors the command carries (``[shadow]`` /
``[burn_in]`` ``prompt_floor`` and ``logprob_floor``): ``judged(prompt_logprob, prompt_floor)``
(the old generation knows the question; it cannot judge answers about what it never saw), and
if judged, ``plausible(logprob, logprob_floor)``. A phase's **quality** = plausible / judged.

- Shadow (``complete_shadow``): inconclusive with fewer than ``min_samples`` comparisons, or,
  the quality check on (``quality_threshold`` > 0) and some answer scored, fewer than
  ``min_judged`` judged; failed when the quality is under ``quality_threshold`` or the parity
  (mean text similarity) under ``parity_threshold``; else passed (and Promoted). A shadow with
  no scored answer at all (recorded before quality scoring) is judged on parity alone.
- Burn-in (``complete_burn_in``): failed, with the automatic rollback, when any of: the error
  rate over ``max_error_rate``, law violations over ``max_law_violations``, the latency ratio
  over ``max_latency_ratio``, the quality under ``min_quality`` (when any answer was judged).

A threshold of 0 turns its check off.
"""

from __future__ import annotations

from typing import Any

from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.errors import DomainError, InvalidInput, NothingPending, RollbackError, StaleProposal
from evo_core.guards import Events, finite
from evo_core.names import by_prefix
from evo_core.reactions import Action, reactions
from evo_core.reactions import CompleteBurnIn as CompleteBurnInDue
from evo_core.reactions import CompleteShadow as CompleteShadowDue
from evo_core.reactions import StartShadow as StartShadowDue
from evo_core.state import Phase, State


def _pending(state: State, given: str | None, verb: str) -> str:
    if state.phase is not Phase.PROPOSED or state.proposal is None:
        raise NothingPending(f"nothing to {verb}: no proposal is pending (phase {state.phase.value})")
    current = state.proposal.hash
    if given is not None and (len(given) < 8 or not current.startswith(given.lower())):
        raise StaleProposal(
            f"proposal {given[:16]} is not the pending one ({current[:16]}); see `evo status`"
        )
    if state.proposal.proposal.current_head != state.head:
        raise StaleProposal(
            f"HEAD moved to {state.head} since this proposal was made against "
            f"{state.proposal.proposal.current_head}; roll back to it or wait for the next window"
        )
    return current


def approve(state: State, c: cmd.Approve) -> Events:
    digest = _pending(state, c.proposal_hash, "approve")
    if c.autonomous:
        if not state.autonomy:
            raise InvalidInput(
                "the scheduler may approve for itself only under the operator's signed autonomy grant "
                "(`evo autonomy on --key FILE`)"
            )
    elif not (c.signature and c.key_id):
        raise InvalidInput("an approval must be signed by a trusted operator key: `evo approve --key FILE`")
    return [
        ev.Approved(
            proposal_hash=digest,
            operator=c.operator,
            signature=c.signature,
            key_id=c.key_id,
            autonomous=c.autonomous,
            checkpoint_seq=c.checkpoint_seq,
            checkpoint_hash=c.checkpoint_hash,
        )
    ]


def refuse(state: State, c: cmd.RefuseApproval) -> Events:
    if c.action not in ("approve", "reject", "autonomy", "rollback", "trust"):
        raise InvalidInput(f"unknown refused action {c.action!r}")
    if not c.reason.strip():
        raise InvalidInput("a refusal needs its reason")
    return [
        ev.ApprovalRefused(
            action=c.action,  # type: ignore[arg-type]  # checked above
            proposal_hash=c.proposal_hash,
            operator=c.operator,
            key_id=c.key_id,
            reason=c.reason,
        )
    ]


def change_autonomy(state: State, c: cmd.ChangeAutonomy) -> Events:
    if not (c.signature and c.key_id):
        raise InvalidInput("an autonomy change must be signed by a trusted operator key")
    if c.nonce != state.autonomy_changes:
        raise StaleProposal(
            f"this autonomy change was signed for nonce {c.nonce}, the ledger expects {state.autonomy_changes} "
            "(an old signed change cannot be replayed; sign a new one)"
        )
    if c.enabled == state.autonomy:
        raise InvalidInput(f"autonomy is already {'on' if c.enabled else 'off'}")
    return [
        ev.AutonomyChanged(
            enabled=c.enabled, operator=c.operator, key_id=c.key_id, signature=c.signature, nonce=c.nonce,
            checkpoint_seq=c.checkpoint_seq, checkpoint_hash=c.checkpoint_hash,
        )
    ]


def trust_key(state: State, c: cmd.TrustKey) -> Events:
    if c.key_id in state.keys:
        raise InvalidInput(f"key {c.key_id} is already trusted")
    if not c.signer and state.phase is not Phase.EMPTY:
        raise InvalidInput(
            "a key is added by a record signed with a key the ledger trusts (`evo trust add PUB --key FILE`); "
            "only the keys pinned with a new workspace (`evo init --operator-key`) are unsigned"
        )
    return [
        ev.KeyTrusted(
            key_id=c.key_id, public=c.public, operator=c.operator, comment=c.comment, signer=c.signer,
            signature=c.signature, checkpoint_seq=c.checkpoint_seq, checkpoint_hash=c.checkpoint_hash,
        )
    ]


def revoke_key(state: State, c: cmd.RevokeKey) -> Events:
    if c.key_id not in state.keys:
        raise InvalidInput(f"key {c.key_id} is not trusted (see `evo trust list`)")
    if set(state.keys) == {c.key_id}:
        raise InvalidInput(
            f"key {c.key_id} is the last trusted key: add its successor first (`evo trust add`), then revoke it"
        )
    if not c.reason.strip():
        raise InvalidInput("a revocation needs a reason (--reason)")
    return [
        ev.KeyRevoked(
            key_id=c.key_id, operator=c.operator, reason=c.reason, signer=c.signer, signature=c.signature,
            checkpoint_seq=c.checkpoint_seq, checkpoint_hash=c.checkpoint_hash,
        )
    ]


def reject(state: State, c: cmd.Reject) -> Events:
    if not c.reason.strip():
        raise InvalidInput("a rejection needs a reason (--reason)")
    digest = _pending(state, c.proposal_hash, "reject")
    if not (c.signature and c.key_id):
        raise InvalidInput("a rejection must be signed by a trusted operator key: `evo reject --key FILE`")
    return [
        ev.Rejected(
            proposal_hash=digest,
            operator=c.operator,
            reason=c.reason,
            signature=c.signature,
            key_id=c.key_id,
            checkpoint_seq=c.checkpoint_seq,
            checkpoint_hash=c.checkpoint_hash,
        )
    ]


def _resolve_promoted(state: State, name: str) -> str:
    live = [g for g in state.promoted if g not in state.revoked]
    matches = by_prefix(name, live)
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise RollbackError(f"{name!r} is ambiguous: {', '.join(matches)}")
    gone = by_prefix(name, list(state.revoked))
    if len(gone) == 1:
        raise RollbackError(f"{gone[0]} was rolled back by an operator's (or the burn-in's) rollback: it is revoked")
    known = ", ".join(g for g in live if g != state.head) or "none"
    raise RollbackError(f"{name} was never promoted; rollback targets: {known}")


def rollback_target(state: State, to: str | None) -> str:
    """The generation a rollback returns HEAD to (``to``, a prefix, or by default: the
    generation HEAD replaced during burn-in, HEAD itself when aborting a shadow, else the latest
    earlier promoted generation that no rollback revoked): what the operator signs."""
    if state.head is None:
        raise RollbackError("nothing to roll back: no generation is registered")
    aborting = state.phase in (Phase.APPROVED, Phase.SHADOW)
    if to is not None:
        target = _resolve_promoted(state, to)
    elif aborting:
        target = state.head  # the shadow never reached HEAD: aborting it is the rollback
    elif state.phase is Phase.BURN_IN and state.burn_in is not None:
        target = state.burn_in.previous_head
    else:
        head_gen = state.generations[state.head].gen
        earlier = [g for g in state.promoted if state.generations[g].gen < head_gen and g not in state.revoked]
        if not earlier:
            raise RollbackError(f"no earlier promoted generation to roll back to (HEAD is {state.head})")
        target = max(earlier, key=lambda g: (state.generations[g].gen, state.promoted.index(g)))
    if target == state.head and not aborting:
        raise RollbackError(f"{target} is already HEAD")
    return target


def rollback(state: State, c: cmd.Rollback) -> Events:
    target = rollback_target(state, c.to)
    if not (c.signature and c.key_id):
        raise InvalidInput("a rollback must be signed by a trusted operator key: `evo rollback --key FILE`")
    assert state.head is not None
    return [
        ev.RolledBack(
            from_generation=state.head, to_generation=target, reason=c.reason, operator=c.operator,
            signature=c.signature, key_id=c.key_id, checkpoint_seq=c.checkpoint_seq, checkpoint_hash=c.checkpoint_hash,
        )
    ]


# ---------------------------------------------------------------- shadow, cutover, burn-in


def _ensure_due(state: State, kind: type[Action], why: str) -> None:
    """A command that performs one of the core's reactions is legal exactly when that reaction
    is due: ``reactions`` is the one place that says when."""
    if not any(isinstance(a, kind) for a in reactions(state)):
        raise NothingPending(why)


def start_shadow(state: State, c: cmd.StartShadow) -> Events:
    _ensure_due(state, StartShadowDue, f"no approved proposal to shadow (phase {state.phase.value})")
    assert state.proposal is not None
    s = c.config.shadow
    return [
        ev.ShadowStarted(
            generation=state.proposal.proposal.candidate,
            start_cycle=state.cycle,
            until_cycle=state.cycle + s.cycles,
            traffic_percent=s.traffic_percent,
        )
    ]


def judged(prompt_logprob: float, prompt_floor: float) -> bool:
    """The old generation judges an answer when it knows the question: its mean log-likelihood
    per token of the query reaches the floor."""
    return prompt_logprob >= prompt_floor


def plausible(logprob: float, floor: float) -> bool:
    """A judged answer is plausible to the old generation when its mean log-likelihood per
    token reaches the floor."""
    return logprob >= floor


def _log_probability(name: str, value: float | None) -> None:
    if value is not None:
        finite(**{name: value})
        if value > 0:
            raise InvalidInput(f"{name} is a mean log-probability, <= 0; got {value}")


def _verdict(c: cmd.RecordShadow | cmd.RecordAnswer) -> bool | None:
    """Check a scored answer's numbers and judge it: None when not judged (not scored, or the
    query is one the old generation does not know), else whether it is plausible."""
    _log_probability("logprob", c.logprob)
    _log_probability("prompt_logprob", c.prompt_logprob)
    if c.logprob is None:
        return None
    if c.logprob_floor is None or c.prompt_floor is None:
        raise InvalidInput("a scored answer needs the logprob_floor and prompt_floor it is judged against")
    finite(logprob_floor=c.logprob_floor, prompt_floor=c.prompt_floor)
    if c.prompt_logprob is None or not judged(c.prompt_logprob, c.prompt_floor):
        return None
    return plausible(c.logprob, c.logprob_floor)


def record_shadow(state: State, c: cmd.RecordShadow) -> Events:
    if state.phase is not Phase.SHADOW or state.shadow is None:
        raise NothingPending(f"no shadow phase is running (phase {state.phase.value})")
    finite(similarity=c.similarity)
    if not 0.0 <= c.similarity <= 1.0:
        raise InvalidInput(f"similarity must be in [0, 1], got {c.similarity}")
    verdict = _verdict(c)
    return [
        ev.ShadowCompared(
            generation=state.shadow.generation,
            cycle=state.cycle,
            exact=c.exact,
            similarity=c.similarity,
            query_id=c.query_id,
            logprob=c.logprob,
            prompt_logprob=c.prompt_logprob,
            plausible=verdict,
        )
    ]


def _quality_problem(quality: float | None, threshold: float, good: int, judged_: int, floor: float) -> str | None:
    if quality is None or quality >= threshold:
        return None
    return (
        f"quality {quality:.3f} < {threshold:g}: {good} of {judged_} answers to queries the old HEAD knows "
        f"are plausible to it (mean log-likelihood >= {floor:g} nats/token)"
    )


def complete_shadow(state: State, c: cmd.CompleteShadow) -> Events:
    shadow, pending = state.shadow, state.proposal
    if state.phase is not Phase.SHADOW or shadow is None or pending is None:
        raise NothingPending(f"no shadow phase is running (phase {state.phase.value})")
    _ensure_due(state, CompleteShadowDue, f"the shadow runs until cycle {shadow.until_cycle} (now {state.cycle})")
    s = c.config.shadow
    parity = shadow.parity or 0.0
    common: dict[str, Any] = dict(
        generation=shadow.generation,
        samples=shadow.samples,
        parity=parity,
        threshold=s.parity_threshold,
        scored=shadow.scored,
        judged=shadow.judged,
        quality=shadow.quality,
        quality_threshold=s.quality_threshold,
        logprob=shadow.logprob,
    )
    until = state.cycle + s.cycles
    if shadow.samples < s.min_samples:
        reason = f"{shadow.samples} comparisons < {s.min_samples} needed"
        return [ev.ShadowCompleted(outcome="inconclusive", until_cycle=until, reason=reason, **common)]
    if s.quality_threshold > 0 and shadow.scored and shadow.judged < s.min_judged:
        reason = f"{shadow.judged} answers judged for quality < {s.min_judged} needed"
        return [ev.ShadowCompleted(outcome="inconclusive", until_cycle=until, reason=reason, **common)]
    problems = []
    if parity < s.parity_threshold:
        problems.append(f"parity {parity:.3f} < {s.parity_threshold:g}")
    quality = _quality_problem(shadow.quality, s.quality_threshold, shadow.plausible, shadow.judged, s.logprob_floor)
    if quality is not None:
        problems.append(quality)
    if problems:
        return [ev.ShadowCompleted(outcome="failed", reason="; ".join(problems), **common)]
    if pending.approved_by is None:  # unreachable through the table, kept as the rule's guard
        raise DomainError("Promoted needs an approval of the pending proposal")
    assert state.head is not None
    return [
        ev.ShadowCompleted(outcome="passed", **common),
        ev.Promoted(
            generation=shadow.generation,
            previous_head=state.head,
            proposal_hash=pending.hash,
            cycle=state.cycle,
            burn_in_until=state.cycle + c.config.burn_in.cycles,
        ),
    ]


def record_answer(state: State, c: cmd.RecordAnswer) -> Events:
    burn = state.burn_in
    if state.phase is not Phase.BURN_IN or burn is None:
        raise NothingPending(f"no burn-in is running (phase {state.phase.value})")
    if c.latency_ratio is not None:
        finite(latency_ratio=c.latency_ratio)
        if c.latency_ratio <= 0:
            raise InvalidInput(f"latency_ratio must be > 0, got {c.latency_ratio}")
    verdict = _verdict(c)
    return [
        ev.AnswerObserved(
            generation=burn.generation,
            cycle=state.cycle,
            error=c.error,
            law_violation=c.law_violation,
            latency_ratio=c.latency_ratio,
            query_id=c.query_id,
            logprob=c.logprob,
            prompt_logprob=c.prompt_logprob,
            plausible=verdict,
        )
    ]


def complete_burn_in(state: State, c: cmd.CompleteBurnIn) -> Events:
    burn = state.burn_in
    if state.phase is not Phase.BURN_IN or burn is None:
        raise NothingPending(f"no burn-in is running (phase {state.phase.value})")
    _ensure_due(state, CompleteBurnInDue, f"the burn-in runs until cycle {burn.until_cycle} (now {state.cycle})")
    b = c.config.burn_in
    if burn.answers < b.min_answers:
        return [
            ev.BurnInExtended(
                generation=burn.generation,
                answers=burn.answers,
                min_answers=b.min_answers,
                until_cycle=state.cycle + b.cycles,
            )
        ]
    problems = []
    if burn.answers and burn.errors / burn.answers > b.max_error_rate:
        problems.append(f"error rate {burn.errors / burn.answers:.3f} > {b.max_error_rate}")
    if burn.law_violations > b.max_law_violations:
        problems.append(f"{burn.law_violations} law violations > {b.max_law_violations}")
    ratio = burn.latency_ratio
    if ratio is not None and ratio > b.max_latency_ratio:
        problems.append(f"latency {ratio:.2f}x the old HEAD's > {b.max_latency_ratio}x")
    quality = _quality_problem(burn.quality, b.min_quality, burn.plausible, burn.judged, b.logprob_floor)
    if quality is not None:
        problems.append(quality)
    counts: dict[str, Any] = dict(
        answers=burn.answers,
        errors=burn.errors,
        law_violations=burn.law_violations,
        latency_ratio=ratio,
        scored=burn.scored,
        judged=burn.judged,
        quality=burn.quality,
        logprob=burn.logprob,
    )
    if not problems:
        return [ev.BurnInPassed(generation=burn.generation, **counts)]
    reason = "burn-in failed: " + "; ".join(problems)
    return [
        ev.BurnInFailed(generation=burn.generation, reason=reason, **counts),
        ev.RolledBack(
            from_generation=burn.generation,
            to_generation=burn.previous_head,
            reason=reason,
            automatic=True,
        ),
    ]


def interrupted(state: State, c: cmd.RecordInterruption) -> Events:
    return [ev.WorkInterrupted(actions=tuple(c.actions), signal=c.signal, detail=c.detail)]
