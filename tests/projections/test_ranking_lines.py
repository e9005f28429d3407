"""The ranking as the spec prints it: best first, failures name their gates."""

from __future__ import annotations

from projections.candidates import ranking_lines
from tests.projections.conftest import FAIR, GOOD, LAWLESS, WEAK, Sim


def test_nothing_before_the_window_is_ranked(sim: Sim) -> None:
    sim.genesis()
    sim.beat(100)
    assert ranking_lines(sim.state) == []


def test_ranking_lines_list_every_candidate_best_first_and_name_failed_gates(sim: Sim) -> None:
    sim.genesis()
    sim.beat(100)
    sim.window({"a": WEAK, "b": GOOD, "c": LAWLESS, "d": FAIR})
    state = sim.state
    assert state.window is not None and state.window.ranking is not None
    lines = ranking_lines(state)
    assert lines[0].startswith(f"CANDIDATE RANKINGS (window {state.window.number}")
    ranked = [line for line in lines if line.startswith("  ") and not line.startswith("     ")]
    assert [line.split(". ", 1)[1].split(" ")[0] for line in ranked] == list(state.window.ranking)
    for cid in state.window.ranking:
        c = state.candidates[cid]
        line = next(x for x in ranked if f" {cid} " in x)
        assert ("PASS" in line) == c.passed and f"score={c.score:.3f}" in line
        if not c.passed and c.gates:
            after = lines[lines.index(line) + 1]
            failed = [g.name for g in c.gates if not g.passed]
            assert after.strip() == f"Failed: {', '.join(failed)}"
    assert any("Failed: " in line and "laws" in line for line in lines)  # LAWLESS breaks the laws gate
