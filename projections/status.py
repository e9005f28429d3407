"""``evo status [--json]``: where the scheduler stands, as one value (``StatusView``) and as a
compact text block (``render_text``: one line per item, no colours).

Built from the folded state, the ledger's last seq and the configured period (the state knows
the cycle, not the config). ``due`` lists what ``reactions`` says the runner should do next.
``in_progress`` is the one thing not from the ledger: the long steps running processes say they
are in (their activity files, ``adapters.runtime.activity``), passed in as values, shown, and
never used for anything else in the view.
"""

from __future__ import annotations

import msgspec

from evo_core.reactions import reactions
from evo_core.state import Flag, Phase, State
from evo_core.values import Metrics

from projections.candidates import status_label
from projections.proposal import approve_command, reject_command
from projections.summary import format_metrics, short


class CandidateLine(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    status: str
    score: float | None
    rank: int | None


class WindowProgress(msgspec.Struct, frozen=True, kw_only=True):
    number: int
    gen: int
    cycle: int
    head: str
    parent: str | None
    open: bool
    outcome: str  # "" while open; "proposed" or why nothing was
    baseline: Metrics | None
    baseline_score: float | None
    candidates: tuple[CandidateLine, ...]


class ProposalSummary(msgspec.Struct, frozen=True, kw_only=True):
    hash: str
    candidate: str
    current_head: str
    improvement: float
    score: float
    status: str  # "pending" or "approved"
    approved_by: str | None
    approve: str | None  # the commands, while pending
    reject: str | None


class ShadowProgress(msgspec.Struct, frozen=True, kw_only=True):
    generation: str
    samples: int
    exact: int
    parity: float | None  # mean similarity so far
    traffic_percent: float
    start_cycle: int
    until_cycle: int
    remaining: int
    scored: int = 0  # samples whose answer HEAD scored
    judged: int = 0  # scored answers to queries HEAD knows
    plausible: int = 0
    quality: float | None = None  # plausible / judged
    logprob: float | None = None  # mean log-likelihood per token of the judged answers


class BurnInProgress(msgspec.Struct, frozen=True, kw_only=True):
    generation: str
    previous_head: str
    start_cycle: int
    until_cycle: int
    remaining: int
    answers: int = 0
    errors: int = 0
    law_violations: int = 0
    latency_ratio: float | None = None
    scored: int = 0  # answers the old HEAD scored
    judged: int = 0  # scored answers to queries the old HEAD knows
    plausible: int = 0
    quality: float | None = None  # plausible / judged
    logprob: float | None = None  # mean log-likelihood per token of the judged answers


class InProgress(msgspec.Struct, frozen=True, kw_only=True):
    """A long step a running process says it is in (advisory: shown, never decided on)."""

    pid: int
    step: str  # "export", "evaluate", "train", ...
    subject: str  # the generation, candidate or window, when there is one
    done: int | None
    total: int | None
    seconds: float  # since the step began
    text: str  # "exporting GGUF for Luna-G000-genesis (12/40 tensors, 1m20s)"


class StatusView(msgspec.Struct, frozen=True, kw_only=True):
    phase: str
    cycle: int
    seq: int | None  # the ledger's last seq (None: empty)
    head: str | None
    parent: str | None
    genesis: str | None
    promoted: tuple[str, ...]
    period: int
    next_window_cycle: int
    window: WindowProgress | None
    proposal: ProposalSummary | None
    shadow: ShadowProgress | None
    burn_in: BurnInProgress | None
    due: tuple[str, ...]
    autonomy: bool = False  # the operator's signed grant (config approval.autonomous must agree)
    refused: tuple[Flag, ...] = ()  # records the verified fold did not apply: the operator must look
    trusted_keys: int = 0
    in_progress: tuple[InProgress, ...] = ()  # from running processes' activity files (advisory)
    activity_ignored: tuple[str, ...] = ()  # activity files of processes that are not running


def next_window_cycle(state: State, period: int) -> int:
    """The next multiple of ``period`` that has not opened or skipped a window yet."""
    return (state.last_window_cycle // period + 1) * period


def _window(state: State) -> WindowProgress | None:
    w = state.window
    if w is None:
        return None
    ranking = w.ranking or ()
    lines = tuple(
        CandidateLine(
            id=c.id,
            status=status_label(c),
            score=c.score,
            rank=ranking.index(c.id) + 1 if c.id in ranking else None,
        )
        for c in state.window_candidates()
    )
    return WindowProgress(
        number=w.number,
        gen=w.gen,
        cycle=w.cycle,
        head=w.head,
        parent=w.parent,
        open=state.phase is Phase.WINDOW,
        outcome=w.outcome,
        baseline=w.baseline,
        baseline_score=w.baseline_score,
        candidates=lines,
    )


def _proposal(state: State) -> ProposalSummary | None:
    pending = state.proposal
    if pending is None or state.phase not in (Phase.PROPOSED, Phase.APPROVED, Phase.SHADOW):
        return None
    waiting = state.phase is Phase.PROPOSED
    p = pending.proposal
    return ProposalSummary(
        hash=pending.hash,
        candidate=p.candidate,
        current_head=p.current_head,
        improvement=p.improvement,
        score=p.score,
        status="pending" if waiting else "approved",
        approved_by=pending.approved_by,
        approve=approve_command(pending.hash) if waiting else None,
        reject=reject_command() if waiting else None,
    )


def _due(state: State) -> tuple[str, ...]:
    out = []
    for action in reactions(state):
        keys = " ".join(str(v) for v in msgspec.structs.astuple(action))
        out.append(f"{type(action).__name__} {keys}".strip())
    return tuple(out)


def quality_text(quality: float | None, plausible: int, judged: int, scored: int, logprob: float | None) -> str:
    """``0.950 (19/20 judged answers plausible, 31 scored, mean log-prob -0.71)``; ``-`` before
    any answer is judged (with the scored count once there is one)."""
    if quality is None or logprob is None:
        return f"- ({scored} scored, none judged)" if scored else "-"
    return f"{quality:.3f} ({plausible}/{judged} judged answers plausible, {scored} scored, mean log-prob {logprob:.2f})"


def status_view(
    state: State,
    *,
    seq: int | None,
    period: int,
    in_progress: tuple[InProgress, ...] = (),
    activity_ignored: tuple[str, ...] = (),
) -> StatusView:
    shadow = None
    if state.shadow is not None:
        s = state.shadow
        shadow = ShadowProgress(
            generation=s.generation,
            samples=s.samples,
            exact=s.exact,
            parity=s.parity,
            traffic_percent=s.traffic_percent,
            start_cycle=s.start_cycle,
            until_cycle=s.until_cycle,
            remaining=max(0, s.until_cycle - state.cycle),
            scored=s.scored,
            judged=s.judged,
            plausible=s.plausible,
            quality=s.quality,
            logprob=s.logprob,
        )
    burn_in = None
    if state.burn_in is not None:
        b = state.burn_in
        burn_in = BurnInProgress(
            generation=b.generation,
            previous_head=b.previous_head,
            start_cycle=b.start_cycle,
            until_cycle=b.until_cycle,
            remaining=max(0, b.until_cycle - state.cycle),
            answers=b.answers,
            errors=b.errors,
            law_violations=b.law_violations,
            latency_ratio=b.latency_ratio,
            scored=b.scored,
            judged=b.judged,
            plausible=b.plausible,
            quality=b.quality,
            logprob=b.logprob,
        )
    return StatusView(
        phase=state.phase.value,
        cycle=state.cycle,
        seq=seq,
        head=state.head,
        parent=state.parent,
        genesis=state.genesis,
        promoted=state.promoted,
        period=period,
        next_window_cycle=next_window_cycle(state, period),
        window=_window(state),
        proposal=_proposal(state),
        shadow=shadow,
        burn_in=burn_in,
        due=_due(state),
        autonomy=state.autonomy,
        refused=state.flagged,
        trusted_keys=len(state.keys),
        in_progress=in_progress,
        activity_ignored=activity_ignored,
    )


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def render_text(view: StatusView) -> str:
    v = view
    lines = [f"phase: {v.phase}"]
    lines.extend(f"in progress: {p.text}, pid {p.pid}" for p in v.in_progress)
    lines.extend(f"activity file ignored: {line}" for line in v.activity_ignored)
    lines += [
        f"cycle: {v.cycle}",
        f"ledger seq: {'-' if v.seq is None else v.seq}",
        f"GEN_HEAD: {v.head or '-'}",
        f"GEN_HEAD-PARENT: {v.parent or '-'}",
        f"genesis: {v.genesis or '-'}",
    ]
    if v.refused:
        lines.append(
            f"REFUSED RECORDS: {len(v.refused)} record(s) in the ledger were not applied (forged, or not "
            "authorised); HEAD is the last verified generation. `evo verify` names them:"
        )
        lines.extend(f"  seq {f.seq}: {f.type}: {f.reason}" for f in v.refused[-5:])
    if v.trusted_keys == 0 and v.phase != Phase.EMPTY.value:
        lines.append("operator keys: NONE trusted: nothing can be approved or rolled back (see `evo trust list`)")
    if v.autonomy:
        lines.append("autonomy: ON (the scheduler approves its own proposals; `evo autonomy off --key FILE`)")
    wait = v.next_window_cycle - v.cycle
    busy = " (skipped if the evolution in progress is still running)" if v.phase not in (
        Phase.IDLE.value,
        Phase.EMPTY.value,
    ) else ""
    lines.append(
        f"next window: cycle {v.next_window_cycle} (in {wait} cycles, period {v.period}){busy}"
    )
    if v.window is not None:
        w = v.window
        state = "open" if w.open else (w.outcome or "closed")
        lines.append(f"window {w.number}: G{w.gen:03d} from {w.head} at cycle {w.cycle}: {state}")
        if w.baseline is not None:
            lines.append(
                f"  baseline {w.head}: score {_score(w.baseline_score)} "
                f"({format_metrics(w.baseline)})"
            )
        for c in w.candidates:
            rank = f", rank {c.rank}" if c.rank is not None else ""
            lines.append(f"  {c.id}: {c.status}, score {_score(c.score)}{rank}")
    if v.proposal is not None:
        p = v.proposal
        by = f" by {p.approved_by}" if p.approved_by else ""
        lines.append(
            f"proposal {short(p.hash)}: {p.candidate} to replace {p.current_head} "
            f"(improvement {p.improvement:+.4f}), {p.status}{by}"
        )
        if p.approve:
            lines.append(f"  approve: {p.approve}")
        if p.reject:
            lines.append(f"  reject: {p.reject}")
    if v.shadow is not None:
        s = v.shadow
        parity = "-" if s.parity is None else f"{s.parity:.3f}"
        lines.append(
            f"shadow: {s.generation}, {s.samples} samples ({s.exact} exact), parity {parity}, "
            f"quality {quality_text(s.quality, s.plausible, s.judged, s.scored, s.logprob)}, "
            f"cycles {s.start_cycle}..{s.until_cycle} ({s.remaining} to go)"
        )
    if v.burn_in is not None:
        b = v.burn_in
        latency = "-" if b.latency_ratio is None else f"{b.latency_ratio:.2f}x"
        lines.append(
            f"burn-in: {b.generation} (was {b.previous_head}), "
            f"cycles {b.start_cycle}..{b.until_cycle} ({b.remaining} to go): "
            f"{b.answers} answers, {b.errors} errors, {b.law_violations} law violations, latency {latency}, "
            f"quality {quality_text(b.quality, b.plausible, b.judged, b.scored, b.logprob)}"
        )
    for action in v.due:
        lines.append(f"due: {action}")
    return "\n".join(lines) + "\n"
