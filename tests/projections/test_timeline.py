from __future__ import annotations

from projections import timeline
from tests.projections.conftest import GENESIS, Sim

A, C = "Luna-G001-a-c100", "Luna-G001-c-c100"


def test_candidate_timeline_in_order(story: Sim) -> None:
    entries = timeline(story.records, A)
    assert [e.type for e in entries] == [
        "WindowOpened",
        "CandidateSpawned",
        "BaselineEvaluated",
        "TrainingStarted",
        "TrainingFinished",
        "GateEvaluated",
        "CandidatesRanked",
        "CandidateFrozen",
        "Proposed",
        "Approved",
        "ShadowStarted",
        "ShadowCompleted",
        "Promoted",
        "BurnInPassed",
        "RolledBack",
    ]
    assert [e.seq for e in entries] == sorted(e.seq for e in entries)
    assert entries[0].cycle == 100 and entries[-1].cycle == 150
    assert entries[5].summary == f"{A} evaluated: PASS, score 0.8900"
    assert all(e.at == story.records[e.seq].at for e in entries)


def test_unselected_candidate_has_no_proposal_events(story: Sim) -> None:
    types = [e.type for e in timeline(story.records, C)]
    assert "Proposed" not in types and "Promoted" not in types
    assert types[-1] == "CandidateFrozen"
    assert "FAIL" not in timeline(story.records, C)[-1].summary


def test_shadow_samples_on_request(story: Sim) -> None:
    plain = timeline(story.records, A)
    full = timeline(story.records, A, samples=True)
    assert len(full) == len(plain) + 3
    assert sum(e.type == "ShadowCompared" for e in full) == 3


def test_genesis_timeline(story: Sim) -> None:
    types = [e.type for e in timeline(story.records, GENESIS)]
    assert types == [
        "GenerationRegistered",
        "WindowOpened",
        "BaselineEvaluated",
        "Promoted",
        "RolledBack",
    ]


def test_unknown_name_has_an_empty_timeline(story: Sim) -> None:
    assert timeline(story.records, "Luna-G009-z-c1") == []
