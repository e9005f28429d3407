"""``describe``: one line of plain English for any event (``evo log``, timelines, the log file)."""

from __future__ import annotations

from evo_core import events as ev
from evo_core.gates import failed_gates
from evo_core.values import Metrics

from projections.records import LedgerRecord


def short(digest: str) -> str:
    """The 16-hex prefix an operator types (``evo approve --proposal <hash16>``)."""
    return digest[:16]


def format_metrics(m: Metrics) -> str:
    return (
        f"recall {m.recall:.3f}, generalize {m.generalize:.3f}, "
        f"tone_drift {m.tone_drift:.3f}, law_violations {m.law_violations}"
    )


def _by(operator: str, signature: str = "") -> str:
    who = f" by {operator}" if operator else ""
    return who + (" (signed)" if signature else "")


def _scored(logprob: float | None, prompt_logprob: float | None, plausible: bool | None) -> str:
    if logprob is None:
        return ""
    verdict = "not judged" if plausible is None else "plausible" if plausible else "IMPLAUSIBLE"
    query = "-" if prompt_logprob is None else f"{prompt_logprob:.2f}"
    return f", log-prob {logprob:.2f}/token (query {query}): {verdict}"


def shadow_quality(e: ev.ShadowCompleted) -> str:
    """``, quality 0.950 (threshold 0.6, 20 judged of 31 scored, mean log-prob -0.71)``; "" when
    no answer was judged."""
    if e.quality is None:
        return ""
    logprob = "" if e.logprob is None else f", mean log-prob {e.logprob:.2f}"
    return f", quality {e.quality:.3f} (threshold {e.quality_threshold:g}, {e.judged} judged of {e.scored} scored{logprob})"


def describe(item: LedgerRecord | ev.Event) -> str:
    """One-line human summary of an event (or of a record's event)."""
    e = item if isinstance(item, ev.Event) else item.event
    match e:
        case ev.Heartbeat():
            return f"heartbeat, cycle {e.cycle}"
        case ev.GenerationRegistered():
            source = f" from {e.source}" if e.source else ""
            return f"genesis {e.generation} (G{e.gen:03d}) registered as HEAD{source}"
        case ev.WindowOpened():
            stab = f", stabilizer {e.parent}" if e.parent else ""
            return (
                f"window {e.window} opened at cycle {e.cycle} (heartbeat {e.heartbeat_cycle}): "
                f"breeding G{e.gen:03d} from {e.head}{stab}"
            )
        case ev.WindowSkipped():
            span = f"cycle {e.first_cycle}" if e.count == 1 else (
                f"cycles {e.first_cycle}..{e.last_cycle}"
            )
            return f"{e.count} window(s) skipped ({span}): {e.reason}"
        case ev.CandidateSpawned():
            stab = f", stabilizer {e.stabilizer}" if e.stabilizer else ""
            return (
                f"spawned {e.candidate} (seed {e.seed}, {e.strategy}) from {e.parent}{stab}"
            )
        case ev.TrainingStarted():
            return f"training {e.candidate} (attempt {e.attempt})"
        case ev.TrainingFinished():
            s = e.stats
            return (
                f"{e.candidate} trained: {s.steps} steps, "
                f"loss {s.loss_start:.3f} -> {s.loss_final:.3f}"
            )
        case ev.TrainingFailed():
            return f"{e.candidate} training failed: {e.reason} (hard-failed)"
        case ev.BudgetBreached():
            return (
                f"{e.candidate} breached its {e.resource} budget "
                f"({e.used:g} > {e.limit:g}): hard-failed"
            )
        case ev.BaselineEvaluated():
            return (
                f"HEAD {e.generation} baseline for window {e.window}: score {e.score:.4f} "
                f"({format_metrics(e.metrics)})"
            )
        case ev.GateEvaluated():
            failed = failed_gates(e.gates)
            verdict = "PASS" if e.passed else "FAIL (" + ", ".join(failed) + ")"
            return f"{e.candidate} evaluated: {verdict}, score {e.score:.4f}"
        case ev.CandidatesRanked():
            return f"window {e.window} ranked: " + " > ".join(e.ranking)
        case ev.CandidateFrozen():
            return f"{e.candidate} frozen to {e.archive}: {e.status}"
        case ev.Proposed():
            p = e.proposal
            return (
                f"proposed {p.candidate} to replace {p.current_head} "
                f"(improvement {p.improvement:+.4f}); proposal {short(e.proposal_hash)}"
            )
        case ev.NoPromotion():
            return f"no promotion from window {e.window}: {e.reason}"
        case ev.Approved():
            if e.autonomous:
                return f"proposal {short(e.proposal_hash)} approved by the scheduler (autonomy granted by the operator)"
            return f"proposal {short(e.proposal_hash)} approved{_by(e.operator, e.signature)}, key {e.key_id}"
        case ev.ApprovalRefused():
            what = f"proposal {short(e.proposal_hash)}" if e.proposal_hash else "autonomy change"
            who = f" from {e.operator}" if e.operator else ""
            return f"REFUSED {e.action} of {what}{who} (key {e.key_id or 'none'}): {e.reason}"
        case ev.KeyTrusted():
            how = f"added, signed by key {e.signer}" if e.signer else "pinned with the workspace"
            return f"operator key {e.key_id} trusted ({how}){': ' + e.comment if e.comment else ''}"
        case ev.KeyRevoked():
            return f"operator key {e.key_id} revoked by {e.operator} (signed by key {e.signer}): {e.reason}"
        case ev.AutonomyChanged():
            state = "ON: the scheduler approves its own proposals" if e.enabled else "OFF: approvals need the operator"
            return f"autonomy {state} (signed by {e.operator}, key {e.key_id})"
        case ev.Rejected():
            return (
                f"proposal {short(e.proposal_hash)} rejected"
                f"{_by(e.operator, e.signature)}: {e.reason}"
            )
        case ev.ShadowStarted():
            return (
                f"shadow of {e.generation} started: {e.traffic_percent:g}% of TRIVIAL queries, "
                f"cycles {e.start_cycle}..{e.until_cycle}"
            )
        case ev.ShadowCompared():
            result = "exact" if e.exact else f"similarity {e.similarity:.3f}"
            return f"shadow sample of {e.generation} at cycle {e.cycle}: {result}{_scored(e.logprob, e.prompt_logprob, e.plausible)}"
        case ev.ShadowCompleted():
            line = (
                f"shadow of {e.generation} {e.outcome}: parity {e.parity:.3f} "
                f"(threshold {e.threshold:g}){shadow_quality(e)} over {e.samples} samples"
            )
            if e.outcome == "failed" and e.reason:
                line += f": {e.reason}"
            if e.outcome == "inconclusive":
                line += f"{'; ' + e.reason if e.reason else ''}; continues until cycle {e.until_cycle}"
            return line
        case ev.Promoted():
            return (
                f"PROMOTED {e.generation} (was {e.previous_head}) at cycle {e.cycle}; "
                f"burn-in until cycle {e.burn_in_until}"
            )
        case ev.AnswerObserved():
            flags = [f for f, on in (("error", e.error), ("law violation", e.law_violation)) if on]
            latency = f", latency {e.latency_ratio:.2f}x the old HEAD's" if e.latency_ratio is not None else ""
            return (
                f"burn-in answer of {e.generation} at cycle {e.cycle}: {', '.join(flags) or 'ok'}{latency}"
                f"{_scored(e.logprob, e.prompt_logprob, e.plausible)}"
            )
        case ev.BurnInExtended():
            return (
                f"burn-in of {e.generation} extended to cycle {e.until_cycle}: "
                f"{e.answers} answers < {e.min_answers} needed"
            )
        case ev.BurnInPassed():
            latency = f", latency {e.latency_ratio:.2f}x" if e.latency_ratio is not None else ""
            quality = "" if e.quality is None else f", quality {e.quality:.3f} of {e.judged} judged"
            return (
                f"GEN_HEAD advanced to {e.generation}: burn-in passed "
                f"({e.answers} answers, {e.errors} errors, {e.law_violations} law violations{latency}{quality})"
            )
        case ev.BurnInFailed():
            return f"burn-in of {e.generation} failed: {e.reason}"
        case ev.WorkInterrupted():
            what = ", ".join(e.actions) or "nothing"
            return f"runner stopped by {e.signal} during: {what} (still due; resumed on restart){': ' + e.detail if e.detail else ''}"
        case ev.RolledBack():
            how = " (automatic)" if e.automatic else _by(e.operator)
            return f"ROLLBACK {e.from_generation} -> {e.to_generation}{how}: {e.reason}"
    return ev.event_name(e)
