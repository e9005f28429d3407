"""The current window's students: the wording of their status, and the ranking as the spec prints it.

``status_label`` is the one wording of a candidate's status shared by every projection:
``SPAWNED`` / ``TRAINING`` / ``TRAINED`` while in flight, then its verdict (STATUS.txt):
``PASS`` or ``FAIL - <reason>``.
"""

from __future__ import annotations

from evo_core.state import Candidate, CandidateStatus, State
from evo_core.window import verdict


def status_label(candidate: Candidate) -> str:
    if candidate.verdict:
        return candidate.verdict
    if candidate.status in (CandidateStatus.FAILED, CandidateStatus.EVALUATED):
        return verdict(candidate)
    return str(candidate.status.value).upper()


def ranking_lines(state: State) -> list[str]:
    """The window's ranking as the spec prints it (best first; a failed candidate names its
    failed gates or its failure). Empty until the window is ranked."""
    window = state.window
    if window is None or window.ranking is None:
        return []
    lines = [f"CANDIDATE RANKINGS (window {window.number}, HEAD {window.head}, score {_score(window.baseline_score)}):"]
    for i, cid in enumerate(window.ranking, 1):
        c = state.candidates[cid]
        mark = "PASS" if c.passed else "FAIL"
        lines.append(f"  {i}. {c.id} [{c.strategy}]: {mark} (score={_score(c.score)})")
        if not c.passed:
            failed = [g.name for g in c.gates if not g.passed]
            lines.append(f"     Failed: {', '.join(failed) if failed else status_label(c)}")
    return lines


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
