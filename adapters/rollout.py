"""The runner's side of the rollout: one handler per action of the core (``SelfApprove``,
``StartShadow``, ``CompleteShadow``, ``CompleteBurnIn``), plus shadow replay. The operator's
rollback is one core command (``evo rollback``: ``App.execute(Rollback(...))``).

Each handler gets its action and does nothing (returns ``[]``) unless the action is still due
(``action in reactions(state)``: the core is the only judge of that); otherwise it appends its
outcome through ``App.execute`` (which then repoints the GHEAD links: a cutover and an automatic
rollback are each one ledger batch followed by the link swap). Calling one twice, or from two
runners at once, appends at most once: a command that loses the race to another process is
refused by ``decide`` and, the action no longer being due, is reported as nothing done.

The runner acts on the verified fold (``adapters.runtime.history``): an approval or an autonomy
grant whose signature does not verify with a key the ledger trusts was never applied, so
nothing here re-checks a signature. What it checks is bytes: the shadow starts only when the
approved candidate's ``model.gguf`` still hashes to what was frozen and approved; otherwise it
logs why and waits (the operator rolls back, i.e. aborts, or restores the file).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from adapters.runtime.perform import still_due
from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.errors import DomainError
from evo_core.reactions import Action, CompleteBurnIn, CompleteShadow, SelfApprove, StartShadow
from evo_core.state import Phase

if TYPE_CHECKING:
    from adapters.runtime.app import App
    from adapters.serving.observe import ReplayReport
    from adapters.serving.router import Router
    from evo_core.config import EvoConfig

log = logging.getLogger(__name__)

SCHEDULER = "evo-scheduler"  # the operator name of an autonomous approval


def _execute(app: App, command: cmd.Command, action: Action) -> list[ev.Event]:
    """Append ``command``'s events; ``[]`` if ``decide`` refused because the action is no longer
    due (another process performed it first)."""
    try:
        events = app.execute(command).events
    except DomainError:
        if still_due(app, action):
            raise
        return []
    _describe(events)
    return events


def _describe(events: list[ev.Event]) -> None:
    from projections.summary import describe

    for event in events:
        log.info("evo: %s", describe(event))


def self_approve(app: App, config: EvoConfig, action: SelfApprove) -> list[ev.Event]:
    """Approve the pending proposal for the scheduler: only under the operator's autonomy grant
    (verified by the fold) and with config.toml's ``approval.autonomous`` also true."""
    if not still_due(app, action):
        return []
    if not config.approval.autonomous:
        log.warning("evo: not approving %s autonomously: approval.autonomous is off in config.toml; "
                    "the operator must approve or reject it", action.proposal_hash[:16])
        return []
    command = cmd.Approve(operator=SCHEDULER, proposal_hash=action.proposal_hash, autonomous=True)
    return _execute(app, command, action)


def start_shadow(app: App, config: EvoConfig, action: StartShadow) -> list[ev.Event]:
    """Start the shadow phase of the approved candidate, if its model's bytes are the approved ones."""
    if not still_due(app, action):
        return []
    state = app.state()
    pending = state.proposal
    assert pending is not None  # StartShadow is due only with an approved proposal
    from adapters.serving.generations import bytes_problem

    problem = bytes_problem(app.ws, state, pending.proposal.candidate)
    if problem is not None:
        log.error("evo: not shadowing %s: %s; roll back (abort) with `evo rollback`, or restore the archive",
                  pending.proposal.candidate, problem)
        return []
    return _execute(app, cmd.StartShadow(config=config), action)


def replay_shadow(
    app: App, config: EvoConfig, router: Router, queries: Iterable[str] | None = None
) -> ReplayReport | None:
    """Replay recorded TRIVIAL queries as shadow traffic until the shadow holds
    ``shadow.min_samples`` comparisons and, the quality check on, ``shadow.min_judged`` answers
    judged for quality (the runner calls it only with ``shadow.replay`` on).

    ``queries`` default: ``trivial_queries`` of the workspace, twice as many as are missing, or
    all of them while judged answers are missing (HEAD judges only answers to queries it knows;
    most recent queries are about what is new to it). Returns the router's report, or None when
    no shadow phase runs or it has enough. The comparisons are appended by the router
    (``ShadowCompared``), not returned.
    """
    state = app.state()
    shadow = state.shadow
    if state.phase is not Phase.SHADOW or shadow is None:
        return None
    s = config.shadow
    judged = s.min_judged if s.quality_threshold > 0 else 0
    missing = s.min_samples - shadow.samples
    if missing <= 0 and shadow.judged >= judged:
        return None
    if queries is None:
        from adapters.serving.generations import trivial_queries

        queries = trivial_queries(app.ws, limit=None if shadow.judged < judged else 2 * missing)
    from evo_core.errors import NothingPending

    try:
        report = router.replay(queries, until_samples=s.min_samples, until_judged=judged)
    except NothingPending:  # the router saw the shadow end first
        return None
    quality = "-" if not report.judged else f"{report.plausible}/{report.judged} plausible"
    log.info(
        "evo: replayed %d queries to %s: %d recorded, mean similarity %.3f, quality %s, %d samples%s",
        report.queries, report.generation, report.recorded, report.mean_similarity, quality, report.samples,
        f" ({report.stopped})" if report.stopped else "",
    )
    return report


def complete_shadow(app: App, config: EvoConfig, action: CompleteShadow) -> list[ev.Event]:
    """Judge the shadow once its cycles are over: passed -> ShadowCompleted + Promoted in one
    batch and the links repointed; failed -> back to IDLE; inconclusive -> it runs on."""
    if not still_due(app, action):
        return []
    return _execute(app, cmd.CompleteShadow(config=config), action)


def complete_burn_in(app: App, config: EvoConfig, action: CompleteBurnIn) -> list[ev.Event]:
    """Judge the burn-in once its cycles are over: passed ("GEN_HEAD advanced"), failed (with
    the automatic rollback in the same batch, the links swapped back), or extended (too few
    answers)."""
    if not still_due(app, action):
        return []
    return _execute(app, cmd.CompleteBurnIn(config=config), action)


__all__ = [
    "SCHEDULER",
    "complete_burn_in",
    "complete_shadow",
    "replay_shadow",
    "self_approve",
    "start_shadow",
]
