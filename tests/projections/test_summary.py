from __future__ import annotations

import pytest

from evo_core import events as ev
from projections import describe, short
from tests.projections.conftest import Sim


def test_every_event_of_a_full_story_has_a_one_line_summary(story: Sim) -> None:
    seen = set()
    for record in story.records:
        line = describe(record)
        assert line and "\n" not in line
        assert line == describe(record.event)
        seen.add(type(record.event))
    assert len(seen) >= 19


def test_every_event_type_has_its_own_wording() -> None:
    import inspect

    from projections import summary

    source = inspect.getsource(summary.describe)
    missing = [name for name in ev.EVENT_TYPES if f"case ev.{name}()" not in source]
    assert missing == []


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (ev.Heartbeat(cycle=41_000), "heartbeat, cycle 41000"),
        (
            ev.TrainingFailed(candidate="Luna-G003-b-c300", reason="worker died"),
            "Luna-G003-b-c300 training failed: worker died (hard-failed)",
        ),
        (
            ev.ShadowCompleted(
                generation="G", outcome="inconclusive", samples=3, parity=0.5, threshold=0.9,
                until_cycle=2000,
            ),
            "shadow of G inconclusive: parity 0.500 (threshold 0.9) over 3 samples; "
            "continues until cycle 2000",
        ),
        (
            ev.ShadowCompleted(
                generation="G", outcome="failed", samples=20, parity=0.4, threshold=0.0, scored=20, judged=5,
                quality=0.2, quality_threshold=0.6, logprob=-7.25, reason="quality 0.200 < 0.6: ...",
            ),
            "shadow of G failed: parity 0.400 (threshold 0), quality 0.200 (threshold 0.6, 5 judged of 20 scored, "
            "mean log-prob -7.25) over 20 samples: quality 0.200 < 0.6: ...",
        ),
        (
            ev.ShadowCompared(generation="G", cycle=7, exact=False, similarity=0.5, logprob=-6.0, prompt_logprob=-3.2),
            "shadow sample of G at cycle 7: similarity 0.500, log-prob -6.00/token (query -3.20): not judged",
        ),
        (
            ev.AnswerObserved(generation="G", cycle=8, error=False, law_violation=False, logprob=-5.0,
                              prompt_logprob=-0.4, plausible=False),
            "burn-in answer of G at cycle 8: ok, log-prob -5.00/token (query -0.40): IMPLAUSIBLE",
        ),
        (
            ev.BurnInPassed(generation="G", answers=10, scored=9, judged=7, quality=1.0, logprob=-0.1),
            "GEN_HEAD advanced to G: burn-in passed (10 answers, 0 errors, 0 law violations, quality 1.000 of 7 judged)",
        ),
        (
            ev.RolledBack(from_generation="X", to_generation="Y", reason="r", automatic=True),
            "ROLLBACK X -> Y (automatic): r",
        ),
        (
            ev.Rejected(proposal_hash="f" * 64, operator="travis", reason="later"),
            f"proposal {'f' * 16} rejected by travis: later",
        ),
    ],
)
def test_wording(event: ev.Event, expected: str) -> None:
    assert describe(event) == expected


def test_short_hash() -> None:
    assert short("0123456789abcdef" * 4) == "0123456789abcdef"
