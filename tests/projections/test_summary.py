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
