"""``evolve(state, event) -> state``: the one pure, total fold of the ledger.

Replay is ``functools.reduce(evolve, events, State())``. Every branch builds a new state with
``msgspec.structs.replace``; nothing is mutated (dicts are copied before they change). The next
phase is never set here: it is looked up in ``transitions.TRANSITIONS`` before the event is
applied, and the branches that do more when the phase moves (close the evolution, withdraw an
approval) read it. evolve is total: for an event that ``decide`` could have emitted it returns
the next state, and for one that cannot apply (it names a candidate, window or generation the
history lacks: a record written out of band) it raises ``CorruptHistory`` instead of a bare
KeyError. Legality by phase is ``decide``'s job (an event its phase does not accept leaves the
phase as it is here), and ``evo verify`` checks every replayed event against the table.
Heartbeat comes first: it is almost every record of a long ledger, and stays in every phase.
"""

from __future__ import annotations

from functools import reduce
from typing import Iterable

from msgspec.structs import replace

from evo_core import events as ev
from evo_core.errors import CorruptHistory
from evo_core.state import (
    AutonomyGrant,
    BurnIn,
    Candidate,
    CandidateStatus,
    Generation,
    PendingProposal,
    Phase,
    Shadow,
    State,
    TrustedKey,
    Window,
)
from evo_core.transitions import next_phase


def _candidate(state: State, cid: str, **changes: object) -> State:
    updated = replace(state.candidates[cid], **changes)
    return replace(state, candidates={**state.candidates, cid: updated})


def _set_head(state: State, generation: str) -> State:
    """HEAD moves to a generation; it is marked promoted (once) in the generation table."""
    gen = replace(state.generations[generation], promoted=True)
    promoted = state.promoted if generation in state.promoted else state.promoted + (generation,)
    return replace(
        state,
        head=generation,
        promoted=promoted,
        generations={**state.generations, generation: gen},
    )


def _closed(state: State) -> State:
    """The evolution in progress is over (the table leads back to IDLE): nothing pending."""
    return replace(state, proposal=None, shadow=None, burn_in=None)


def evolve(state: State, event: ev.Event) -> State:
    if type(event) is ev.Heartbeat:  # the hot path: almost every record of a long ledger
        return replace(state, cycle=event.cycle, records=state.records + 1)
    try:
        phase = next_phase(state, event)
        after = _apply(state, event, phase)
    except (KeyError, AssertionError, AttributeError, TypeError) as exc:
        raise CorruptHistory(
            f"{ev.event_name(event)} cannot apply to the history before it ({type(exc).__name__}: {exc})"
        ) from None
    signed = state.records if _operator_signed(event) else state.last_signed
    return replace(after, phase=phase, records=state.records + 1, last_signed=signed)


def _operator_signed(event: ev.Event) -> bool:
    """A record the operator signed (``evo_core.authority``): the next one must have seen it."""
    if isinstance(event, (ev.Rejected, ev.AutonomyChanged, ev.KeyRevoked)):
        return True
    if isinstance(event, ev.Approved):
        return not event.autonomous
    if isinstance(event, ev.RolledBack):
        return not event.automatic
    if isinstance(event, ev.KeyTrusted):
        return bool(event.signer)
    return False


def _apply(state: State, event: ev.Event, phase: Phase) -> State:
    """``event`` applied to every field but the phase; ``phase`` is the one it leads to."""
    match event:
        case ev.Heartbeat(cycle=cycle):
            return replace(state, cycle=cycle)

        case ev.GenerationRegistered(generation=name, gen=gen, source=source):
            genesis = Generation(
                name=name, gen=gen, parent=None,
                archive=event.archive, archive_hash=event.archive_hash, model_hash=event.model_hash,
            )
            generations = {**state.generations, name: genesis}
            state = replace(state, generations=generations, genesis=name, genesis_source=source)
            return _set_head(state, name)

        case ev.WindowOpened():
            window = Window(
                number=event.window,
                cycle=event.cycle,
                heartbeat_cycle=event.heartbeat_cycle,
                period=event.period,
                gen=event.gen,
                head=event.head,
                parent=event.parent,
                since_cycle=event.since_cycle,
            )
            return replace(
                state,
                window=window,
                windows=event.window,
                last_window_cycle=max(state.last_window_cycle, event.cycle),
            )

        case ev.WindowSkipped(last_cycle=last):
            return replace(state, last_window_cycle=max(state.last_window_cycle, last))

        case ev.CandidateSpawned():
            cand = Candidate(
                id=event.candidate,
                window=event.window,
                gen=event.gen,
                branch=event.branch,
                seed=event.seed,
                strategy=event.strategy,
                parent=event.parent,
                stabilizer=event.stabilizer,
                budget=event.budget,
            )
            assert state.window is not None
            window = replace(state.window, candidates=state.window.candidates + (cand.id,))
            return replace(
                state, window=window, candidates={**state.candidates, cand.id: cand}
            )

        case ev.TrainingStarted(candidate=cid, attempt=attempt):
            return _candidate(state, cid, status=CandidateStatus.TRAINING, attempts=attempt)

        case ev.TrainingFinished(candidate=cid, budget_used=used):
            return _candidate(state, cid, status=CandidateStatus.TRAINED, budget_used=used)

        case ev.TrainingFailed(candidate=cid, reason=reason, budget_used=used):
            return _candidate(
                state, cid, status=CandidateStatus.FAILED, failure=reason, budget_used=used
            )

        case ev.BudgetBreached(candidate=cid, resource=resource, budget_used=used):
            return _candidate(
                state,
                cid,
                status=CandidateStatus.FAILED,
                failure=f"budget: {resource}",
                budget_used=used,
            )

        case ev.BaselineEvaluated(metrics=metrics, score=score):
            assert state.window is not None
            window = replace(state.window, baseline=metrics, baseline_score=score)
            return replace(state, window=window)

        case ev.GateEvaluated(candidate=cid):
            return _candidate(
                state,
                cid,
                status=CandidateStatus.EVALUATED,
                metrics=event.metrics,
                gates=event.gates,
                passed=event.passed,
                score=event.score,
            )

        case ev.CandidatesRanked(ranking=ranking):
            assert state.window is not None
            return replace(state, window=replace(state.window, ranking=ranking))

        case ev.CandidateFrozen():
            return _candidate(
                state,
                event.candidate,
                frozen=True,
                verdict=event.status,
                archive=event.archive,
                archive_hash=event.archive_hash,
                model_hash=event.model_hash,
                manifest_hash=event.manifest_hash,
            )

        case ev.Proposed(proposal=proposal, proposal_hash=digest):
            assert state.window is not None
            cand = state.candidates[proposal.candidate]
            generation = Generation(
                name=cand.id, gen=cand.gen, parent=cand.parent, window=cand.window,
                archive=cand.archive, archive_hash=cand.archive_hash, model_hash=cand.model_hash,
            )
            return replace(
                state,
                window=replace(state.window, outcome="proposed"),
                proposal=PendingProposal(proposal=proposal, hash=digest),
                generations={**state.generations, cand.id: generation},
            )

        case ev.NoPromotion(reason=reason):
            assert state.window is not None
            return _closed(replace(state, window=replace(state.window, outcome=reason)))

        case ev.Approved(operator=operator, signature=signature):
            assert state.proposal is not None
            pending = replace(
                state.proposal,
                approved_by=operator,
                approval_signature=signature,
                approval_key_id=event.key_id,
                approval_autonomous=event.autonomous,
            )
            return replace(state, proposal=pending)

        case ev.ApprovalRefused():
            if phase is state.phase:  # a refusal recorded for auditors
                return state
            assert state.proposal is not None  # it refuses the approval pending: withdraw it
            withdrawn = replace(
                state.proposal, approved_by=None, approval_signature="", approval_key_id="", approval_autonomous=False
            )
            return replace(state, proposal=withdrawn)

        case ev.AutonomyChanged(enabled=enabled):
            grant = AutonomyGrant(
                enabled=enabled,
                operator=event.operator,
                key_id=event.key_id,
                signature=event.signature,
                nonce=event.nonce,
            )
            return replace(
                state, autonomy=enabled, autonomy_changes=state.autonomy_changes + 1, autonomy_grant=grant
            )

        case ev.WorkInterrupted():
            return state

        case ev.KeyTrusted(key_id=kid):
            key = TrustedKey(key_id=kid, public=event.public, comment=event.comment, since=state.records)
            revoked = tuple(k for k in state.revoked_keys if k != kid)
            pinned = state.pinned_keys + ((kid,) if state.phase is Phase.EMPTY else ())
            return replace(state, keys={**state.keys, kid: key}, revoked_keys=revoked, pinned_keys=pinned)

        case ev.KeyRevoked(key_id=kid):
            keys = {k: v for k, v in state.keys.items() if k != kid}
            return replace(state, keys=keys, revoked_keys=state.revoked_keys + (kid,))

        case ev.Rejected():
            return _closed(state)

        case ev.ShadowStarted():
            shadow = Shadow(
                generation=event.generation,
                start_cycle=event.start_cycle,
                until_cycle=event.until_cycle,
                traffic_percent=event.traffic_percent,
            )
            return replace(state, shadow=shadow)

        case ev.ShadowCompared(exact=exact, similarity=similarity, logprob=logprob, plausible=plausible):
            assert state.shadow is not None
            judged = logprob is not None and plausible is not None
            shadow = replace(
                state.shadow,
                samples=state.shadow.samples + 1,
                exact=state.shadow.exact + int(exact),
                similarity_sum=state.shadow.similarity_sum + similarity,
                scored=state.shadow.scored + int(logprob is not None),
                judged=state.shadow.judged + int(judged),
                plausible=state.shadow.plausible + int(judged and bool(plausible)),
                logprob_sum=state.shadow.logprob_sum + ((logprob or 0.0) if judged else 0.0),
            )
            return replace(state, shadow=shadow)

        case ev.ShadowCompleted(outcome=outcome, until_cycle=until):
            assert state.shadow is not None
            if phase is Phase.IDLE:  # failed
                return _closed(state)
            if outcome == "inconclusive":
                return replace(state, shadow=replace(state.shadow, until_cycle=until))
            # passed: the Promoted in the same batch moves the phase
            return replace(state, shadow=replace(state.shadow, passed=True))

        case ev.Promoted(generation=name, previous_head=previous, cycle=cycle):
            burn_in = BurnIn(
                generation=name,
                previous_head=previous,
                start_cycle=cycle,
                until_cycle=event.burn_in_until,
            )
            state = replace(state, shadow=None, burn_in=burn_in)
            return _set_head(state, name)

        case ev.AnswerObserved(error=error, law_violation=violation, latency_ratio=ratio):
            assert state.burn_in is not None
            burn = state.burn_in
            judged = event.logprob is not None and event.plausible is not None
            burn = replace(
                burn,
                answers=burn.answers + 1,
                errors=burn.errors + int(error),
                law_violations=burn.law_violations + int(violation),
                latency_samples=burn.latency_samples + int(ratio is not None),
                latency_ratio_sum=burn.latency_ratio_sum + (ratio or 0.0),
                scored=burn.scored + int(event.logprob is not None),
                judged=burn.judged + int(judged),
                plausible=burn.plausible + int(judged and bool(event.plausible)),
                logprob_sum=burn.logprob_sum + ((event.logprob or 0.0) if judged else 0.0),
            )
            return replace(state, burn_in=burn)

        case ev.BurnInExtended(until_cycle=until):
            assert state.burn_in is not None
            return replace(state, burn_in=replace(state.burn_in, until_cycle=until))

        case ev.BurnInPassed():
            return _closed(state)

        case ev.BurnInFailed():
            assert state.burn_in is not None  # the RolledBack in the same batch moves HEAD back and closes
            return replace(state, burn_in=replace(state.burn_in, failed=True))

        case ev.RolledBack(from_generation=source, to_generation=target):
            if source != target and source not in state.revoked:
                state = replace(state, revoked=state.revoked + (source,))
            state = _set_head(state, target)
            if phase is Phase.IDLE:
                return _closed(state)
            return state  # during a window: the window goes on; its proposal is checked against HEAD

    raise TypeError(f"evolve: not an event: {event!r}")  # pragma: no cover - unreachable


def fold(events: Iterable[ev.Event], state: State | None = None) -> State:
    return reduce(evolve, events, State() if state is None else state)
