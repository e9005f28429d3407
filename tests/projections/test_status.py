from __future__ import annotations

import msgspec

from evo_core import commands as cmd
from projections import StatusView, render_text, status_view
from tests.projections.conftest import FAIR, GENESIS, GOOD, Sim

A = "Luna-G001-a-c100"


def _view(sim: Sim) -> StatusView:
    return status_view(sim.state, seq=sim.seq, period=sim.config.evo_period_cycles)


def test_pending_proposal_shows_the_approve_command(sim: Sim) -> None:
    sim.genesis()
    sim.beat(100)
    sim.window({"a": GOOD, "b": FAIR, "c": "breach"})
    view = _view(sim)
    assert sim.state.proposal is not None
    h16 = sim.state.proposal.hash[:16]
    text = render_text(view)
    assert f"  approve: evo approve --proposal {h16} --key OPERATOR_KEY" in text.splitlines()
    assert '  reject: evo reject --reason "<why>" --key OPERATOR_KEY' in text.splitlines()
    assert f"proposal {h16}: {A} to replace {GENESIS}" in text
    assert "phase: proposed" in text
    assert f"GEN_HEAD: {GENESIS}" in text
    assert f"  {A}: PASS, score 0.8900, rank 1" in text
    assert "  Luna-G001-c-c100: FAIL - budget: steps, score -, rank 3" in text
    assert view.proposal is not None and view.proposal.status == "pending"


def test_commands_disappear_once_approved_and_shadow_progress_shows(sim: Sim) -> None:
    sim.genesis()
    sim.beat(100)
    sim.window({"a": GOOD})
    sim.approve()
    sim.do(cmd.StartShadow(config=sim.config))
    sim.beat(101)
    sim.do(cmd.RecordShadow(exact=True, similarity=1.0))
    text = render_text(_view(sim))
    assert f"shadow: {A}, 1 samples (1 exact), parity 1.000, quality -, cycles 100..110 (9 to go)" in text
    floors = dict(logprob_floor=-2.5, prompt_floor=-1.0)
    sim.do(cmd.RecordShadow(exact=False, similarity=0.8, logprob=-6.0, prompt_logprob=-3.0, **floors))
    assert "quality - (1 scored, none judged)" in render_text(_view(sim))
    sim.do(cmd.RecordShadow(exact=False, similarity=0.8, logprob=-0.5, prompt_logprob=-0.4, **floors))
    sim.do(cmd.RecordShadow(exact=False, similarity=0.4, logprob=-4.0, prompt_logprob=-0.4, **floors))
    view = _view(sim)
    text = render_text(view)
    assert "approve:" not in text and "approved by travis" in text
    assert (
        f"shadow: {A}, 4 samples (1 exact), parity 0.750, quality 0.500 (1/2 judged answers plausible, "
        "3 scored, mean log-prob -2.25), cycles 100..110 (9 to go)"
    ) in text
    assert view.shadow is not None and (view.shadow.scored, view.shadow.judged, view.shadow.quality) == (3, 2, 0.5)


def test_burn_in_progress_and_due_actions(sim: Sim) -> None:
    sim.genesis()
    sim.beat(100)
    sim.window({"a": GOOD})
    sim.approve()
    sim.shadow_and_promote()
    view = _view(sim)
    assert view.burn_in is not None and view.burn_in.previous_head == GENESIS
    assert view.head == A and view.parent == GENESIS
    text = render_text(view)
    assert "proposal " not in text  # settled: the cutover happened
    assert f"burn-in: {A} (was {GENESIS}), cycles 110..115 (5 to go)" in text
    sim.do(cmd.RecordAnswer(error=False, law_violation=False, logprob=-1.0, prompt_logprob=-0.3,
                            logprob_floor=-2.5, prompt_floor=-1.0))
    text = render_text(_view(sim))
    assert (
        "1 answers, 0 errors, 0 law violations, latency -, "
        "quality 1.000 (1/1 judged answers plausible, 1 scored, mean log-prob -1.00)"
    ) in text
    sim.beat(115)
    assert f"due: CompleteBurnIn {A}" in render_text(_view(sim))


def test_idle_status_and_next_window(story: Sim) -> None:
    view = _view(story)
    assert (view.phase, view.cycle, view.seq) == ("idle", 160, story.seq)
    assert view.next_window_cycle == 200
    text = render_text(view)
    assert "next window: cycle 200 (in 40 cycles, period 100)" in text
    assert f"ledger seq: {story.seq}" in text
    assert "GEN_HEAD-PARENT: -" in text
    assert "due:" not in text
    assert all(line.strip() for line in text.splitlines())


def test_empty_ledger(sim: Sim) -> None:
    view = status_view(sim.state, seq=None, period=100)
    text = render_text(view)
    assert "phase: empty" in text and "ledger seq: -" in text and "GEN_HEAD: -" in text


def test_json_round_trip(story: Sim) -> None:
    view = _view(story)
    data = msgspec.json.encode(view)
    assert msgspec.json.decode(data, type=StatusView) == view
