"""The shadow's and the burn-in's quality judgement in the pure core: the old HEAD judges the
answers to queries it knows (its mean log-likelihood per token of the query at least the prompt
floor); a judged answer is plausible when its mean log-likelihood per token of the answer
reaches the logprob floor; the phase's quality is the share of judged answers that are
plausible (``evo_core.decide_rollout``)."""

from __future__ import annotations

import math

import msgspec
import pytest

from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.config import BurnInConfig, EvoConfig, ShadowConfig, parse_config
from evo_core.decide import decide
from evo_core.decide_rollout import judged, plausible
from evo_core.errors import InvalidInput
from evo_core.evolve import fold
from evo_core.state import Phase, State
from tests.core.helpers import BETTER, CFG, GENESIS, GOOD, KNOWN_QUERY, PERIOD, Driver, check_invariants, snapshot, vfold

SANE = -0.8  # a student's answer to a question its teacher knows: almost what the teacher says
GARBAGE = -5.0  # "TheoTheoThe.": far below the floor
NEW_QUERY = -3.0  # a question about a name the old HEAD never saw: it does not judge the answer

# The defaults, with the rollout shortened for a test (no parity or quality value overridden).
DEFAULTS = CFG.model_copy(update={
    "shadow": ShadowConfig(cycles=5, min_samples=4, min_judged=4),
    "burn_in": BurnInConfig(cycles=3, min_answers=4),
})


def approved(config: EvoConfig = DEFAULTS) -> Driver:
    d = Driver(config=config).genesis()
    d.window([GOOD, BETTER, "fail"])
    d.approve()
    return d


def burning(config: EvoConfig = DEFAULTS) -> Driver:
    d = approved(config)
    d.shadow(samples=config.shadow.min_samples, similarity=0.5, logprob=SANE)
    assert d.state.phase is Phase.BURN_IN
    return d


def scores(config: ShadowConfig | BurnInConfig, logprob: float, prompt_logprob: float = KNOWN_QUERY) -> dict[str, float]:
    return dict(logprob=logprob, prompt_logprob=prompt_logprob, logprob_floor=config.logprob_floor,
                prompt_floor=config.prompt_floor)


def record_shadow(d: Driver, logprobs: list[float | None], similarity: float = 0.5,
                  prompt_logprob: float = KNOWN_QUERY) -> list[ev.Event]:
    d.do(cmd.StartShadow(config=d.config))
    for i, lp in enumerate(logprobs):
        score = {} if lp is None else scores(d.config.shadow, lp, prompt_logprob)
        d.do(cmd.RecordShadow(exact=False, similarity=similarity, query_id=f"q{i}", **score))
    assert d.state.shadow is not None
    d.beat_to(d.state.shadow.until_cycle)
    return d.do(cmd.CompleteShadow(config=d.config))


def test_the_floors_are_inclusive() -> None:
    assert plausible(-2.5, -2.5) and plausible(-0.1, -2.5) and not plausible(-2.5001, -2.5)
    assert judged(-1.0, -1.0) and not judged(-1.0001, -1.0)


def test_the_defaults_judge_quality_not_text_similarity() -> None:
    s, b = ShadowConfig(), BurnInConfig()
    assert s.parity_threshold == 0.0 and 0 < s.quality_threshold <= 1 and s.min_judged >= 1
    assert s.logprob_floor < 0 and s.prompt_floor < 0
    assert 0 < b.min_quality <= 1 and b.logprob_floor < 0 and b.prompt_floor < 0 and b.quality_percent == 100.0


def test_a_student_that_answers_differently_but_plausibly_passes_the_shadow_on_defaults() -> None:
    d = approved()
    out = d.shadow(samples=4, similarity=0.3, logprob=SANE)
    assert [type(e) for e in out] == [ev.ShadowCompleted, ev.Promoted]
    done = out[0]
    assert isinstance(done, ev.ShadowCompleted) and done.outcome == "passed"
    assert (done.scored, done.judged, done.quality, done.quality_threshold) == (4, 4, 1.0, DEFAULTS.shadow.quality_threshold)
    assert done.logprob == pytest.approx(SANE) and done.parity == pytest.approx(0.3) and done.reason == ""


def test_a_shadow_that_answers_garbage_fails_and_head_stays() -> None:
    d = approved()
    out = d.shadow(samples=4, similarity=0.3, logprob=GARBAGE)
    assert [type(e) for e in out] == [ev.ShadowCompleted]
    done = out[0]
    assert isinstance(done, ev.ShadowCompleted) and done.outcome == "failed"
    assert done.quality == 0.0 and done.judged == 4 and done.logprob == pytest.approx(GARBAGE)
    assert "quality 0.000 < 0.6" in done.reason and "0 of 4 answers to queries the old HEAD knows" in done.reason
    assert d.state.phase is Phase.IDLE and d.state.head == GENESIS
    check_invariants(d.state)


@pytest.mark.parametrize(("good", "outcome"), [(6, "passed"), (5, "failed")])
def test_the_shadow_quality_threshold_is_inclusive(good: int, outcome: str) -> None:
    d = approved()  # threshold 0.6: 6 of 10 pass, 5 of 10 do not
    out = record_shadow(d, [SANE] * good + [GARBAGE] * (10 - good))
    done = out[0]
    assert isinstance(done, ev.ShadowCompleted) and done.outcome == outcome
    assert done.quality == pytest.approx(good / 10) and done.judged == 10


def test_answers_to_queries_the_old_head_does_not_know_are_recorded_not_judged() -> None:
    """A correct new fact is as unlikely to the old HEAD as garbage: it judges only what it knows."""
    d = approved()
    d.do(cmd.StartShadow(config=d.config))
    d.do(cmd.RecordShadow(exact=False, similarity=0.5, **scores(d.config.shadow, GARBAGE, NEW_QUERY)))
    d.do(cmd.RecordShadow(exact=False, similarity=0.5, **scores(d.config.shadow, SANE, KNOWN_QUERY)))
    compared = [e for e in d.events if isinstance(e, ev.ShadowCompared)]
    assert [(e.logprob, e.prompt_logprob, e.plausible) for e in compared] == [
        (GARBAGE, NEW_QUERY, None), (SANE, KNOWN_QUERY, True)
    ]
    assert d.state.shadow is not None
    s = d.state.shadow
    assert (s.samples, s.scored, s.judged, s.plausible, s.quality, s.logprob) == (2, 2, 1, 1, 1.0, SANE)


def test_a_shadow_of_mostly_new_questions_passes_on_the_ones_the_old_head_knows() -> None:
    d = approved()
    d.do(cmd.StartShadow(config=d.config))
    for i in range(20):  # new facts: implausible to the old HEAD, and not judged
        d.do(cmd.RecordShadow(exact=False, similarity=0.6, **scores(d.config.shadow, -6.0, NEW_QUERY)))
    for i in range(4):  # small talk: the student answers like its teacher
        d.do(cmd.RecordShadow(exact=True, similarity=1.0, **scores(d.config.shadow, -0.01)))
    assert d.state.shadow is not None
    d.beat_to(d.state.shadow.until_cycle)
    done = d.do(cmd.CompleteShadow(config=d.config))[0]
    assert isinstance(done, ev.ShadowCompleted) and done.outcome == "passed"
    assert (done.scored, done.judged, done.quality) == (24, 4, 1.0)


def test_each_sample_is_judged_against_the_floors_it_was_recorded_with() -> None:
    d = approved()
    d.do(cmd.StartShadow(config=d.config))
    for lp_floor, prompt_floor in [(-4.0, -1.0), (-2.0, -1.0), (-4.0, -0.2)]:
        d.do(cmd.RecordShadow(exact=False, similarity=0.5, logprob=-3.0, prompt_logprob=-0.5,
                              logprob_floor=lp_floor, prompt_floor=prompt_floor))
    compared = [e for e in d.events if isinstance(e, ev.ShadowCompared)]
    assert [e.plausible for e in compared] == [True, False, None]
    assert d.state.shadow is not None
    s = d.state.shadow
    assert (s.samples, s.scored, s.judged, s.plausible, s.quality, s.logprob) == (3, 3, 2, 1, 0.5, -3.0)


def test_too_few_judged_samples_are_inconclusive() -> None:
    d = approved()
    out = record_shadow(d, [SANE, SANE, SANE, None, None])
    done = out[0]
    assert isinstance(done, ev.ShadowCompleted) and done.outcome == "inconclusive"
    assert "3 answers judged for quality < 4" in done.reason and d.state.phase is Phase.SHADOW
    d = approved()
    done = record_shadow(d, [SANE] * 10, prompt_logprob=NEW_QUERY)[0]  # scored, none judged
    assert isinstance(done, ev.ShadowCompleted) and done.outcome == "inconclusive" and done.scored == 10


def test_a_shadow_without_any_scored_sample_is_judged_on_parity_alone() -> None:
    """A ledger from before quality scoring: its comparisons carry no logprob."""
    d = approved(DEFAULTS.model_copy(update={"shadow": ShadowConfig(cycles=5, min_samples=4, parity_threshold=0.9)}))
    out = record_shadow(d, [None] * 4, similarity=0.95)
    done = out[0]
    assert isinstance(done, ev.ShadowCompleted) and done.outcome == "passed"
    assert (done.scored, done.quality, done.logprob) == (0, None, None)
    d = approved(DEFAULTS.model_copy(update={"shadow": ShadowConfig(cycles=5, min_samples=4, parity_threshold=0.9)}))
    done = record_shadow(d, [None] * 4, similarity=0.5)[0]
    assert isinstance(done, ev.ShadowCompleted) and done.outcome == "failed" and done.reason == "parity 0.500 < 0.9"


def test_a_quality_threshold_of_zero_turns_the_check_off() -> None:
    config = DEFAULTS.model_copy(update={"shadow": ShadowConfig(cycles=5, min_samples=4, quality_threshold=0.0)})
    d = approved(config)
    done = record_shadow(d, [GARBAGE, None, None, None])[0]  # one judged (< min_judged): judged anyway
    assert isinstance(done, ev.ShadowCompleted) and done.outcome == "passed" and done.quality == 0.0


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        (dict(logprob=-1.0, prompt_logprob=-0.5, prompt_floor=-1.0), "logprob_floor"),
        (dict(logprob=-1.0, prompt_logprob=-0.5, logprob_floor=-2.5), "prompt_floor"),
        (dict(logprob=0.5, prompt_logprob=-0.5, logprob_floor=-2.5, prompt_floor=-1.0), "<= 0"),
        (dict(logprob=-1.0, prompt_logprob=0.1, logprob_floor=-2.5, prompt_floor=-1.0), "prompt_logprob"),
        (dict(logprob=math.nan, prompt_logprob=-0.5, logprob_floor=-2.5, prompt_floor=-1.0), "logprob"),
        (dict(logprob=-math.inf, prompt_logprob=-0.5, logprob_floor=-2.5, prompt_floor=-1.0), "logprob"),
        (dict(logprob=-1.0, prompt_logprob=-0.5, logprob_floor=math.nan, prompt_floor=-1.0), "logprob_floor"),
    ],
)
def test_a_scored_comparison_or_answer_must_be_finite_log_probabilities_with_their_floors(
    fields: dict[str, float], match: str
) -> None:
    d = approved()
    d.do(cmd.StartShadow(config=d.config))
    before = snapshot(d.state)
    with pytest.raises(InvalidInput, match=match):
        decide(d.state, cmd.RecordShadow(exact=False, similarity=0.5, **fields))  # type: ignore[arg-type]
    assert snapshot(d.state) == before
    d = burning()
    with pytest.raises(InvalidInput, match=match):
        decide(d.state, cmd.RecordAnswer(error=False, law_violation=False, **fields))  # type: ignore[arg-type]


def test_burn_in_of_a_sane_student_passes_with_its_quality_recorded() -> None:
    d = burning()
    out = d.burn_in(answers=10, logprob=SANE)
    assert [type(e) for e in out] == [ev.BurnInPassed]
    passed = out[0]
    assert isinstance(passed, ev.BurnInPassed)
    assert (passed.scored, passed.judged, passed.quality) == (10, 10, 1.0) and passed.logprob == pytest.approx(SANE)


def test_burn_in_of_a_model_that_answers_garbage_is_rolled_back() -> None:
    d = burning()
    head = d.state.head
    out = d.burn_in(answers=10, logprob=GARBAGE)
    assert [type(e) for e in out] == [ev.BurnInFailed, ev.RolledBack]
    failed, rolled = out
    assert isinstance(failed, ev.BurnInFailed) and isinstance(rolled, ev.RolledBack)
    assert failed.quality == 0.0 and failed.judged == 10 and "quality 0.000 < 0.6" in failed.reason
    assert rolled.automatic and rolled.from_generation == head and rolled.to_generation == GENESIS
    assert d.state.head == GENESIS and d.state.phase is Phase.IDLE


def test_burn_in_quality_counts_only_judged_answers() -> None:
    d = burning()
    d.answers(6)  # not scored (quality_percent < 100, or the old HEAD could not score them)
    d.answers(5, logprob=GARBAGE, prompt_logprob=NEW_QUERY)  # new facts: not judged
    d.answers(3, logprob=SANE)
    d.answers(2, logprob=GARBAGE)
    assert d.state.burn_in is not None
    b = d.state.burn_in
    assert (b.answers, b.scored, b.judged, b.plausible) == (16, 10, 5, 3) and b.quality == pytest.approx(0.6)
    d.beat_to(b.until_cycle)
    out = d.do(cmd.CompleteBurnIn(config=d.config))
    assert isinstance(out[0], ev.BurnInPassed) and out[0].quality == pytest.approx(0.6) and out[0].judged == 5


def test_burn_in_without_judged_answers_is_not_judged_on_quality() -> None:
    d = burning()
    out = d.burn_in(answers=10)
    assert isinstance(out[0], ev.BurnInPassed) and (out[0].scored, out[0].quality, out[0].logprob) == (0, None, None)
    d = burning()
    out = d.burn_in(answers=10, logprob=GARBAGE, prompt_logprob=NEW_QUERY)
    assert isinstance(out[0], ev.BurnInPassed) and (out[0].scored, out[0].judged, out[0].quality) == (10, 0, None)


# ---------------------------------------------------------------- the ledger is forever


def test_records_written_before_quality_scoring_still_decode_and_fold() -> None:
    old = [
        b'{"type":"ShadowCompared","generation":"G","cycle":3,"exact":false,"similarity":0.5,"query_id":"q"}',
        b'{"type":"ShadowCompleted","generation":"G","outcome":"failed","samples":20,"parity":0.5,"threshold":0.9}',
        b'{"type":"AnswerObserved","generation":"G","cycle":4,"error":false,"law_violation":false}',
        b'{"type":"BurnInPassed","generation":"G","answers":3}',
        b'{"type":"BurnInFailed","generation":"G","reason":"r"}',
    ]
    compared, completed, observed, passed, failed = (ev.decode_event(raw) for raw in old)
    assert isinstance(compared, ev.ShadowCompared)
    assert (compared.logprob, compared.prompt_logprob, compared.plausible) == (None, None, None)
    assert isinstance(completed, ev.ShadowCompleted)
    assert (completed.scored, completed.judged, completed.quality, completed.quality_threshold, completed.reason) == (
        0, 0, None, 0.0, "")
    assert isinstance(observed, ev.AnswerObserved) and observed.logprob is None
    assert isinstance(passed, ev.BurnInPassed) and (passed.scored, passed.judged, passed.quality) == (0, 0, None)
    assert isinstance(failed, ev.BurnInFailed) and failed.quality is None


def test_the_new_fields_round_trip_through_the_codec() -> None:
    d = burning()
    d.burn_in(answers=5, logprob=GARBAGE)
    for event in d.events:
        assert ev.decode_event(ev.encode_event(event)) == event
    assert vfold([ev.decode_event(ev.encode_event(e)) for e in d.events], State()) == d.state


def test_a_config_toml_from_before_quality_scoring_still_validates() -> None:
    text = f"""
evo_period_cycles = {PERIOD}
[shadow]
traffic_percent = 10.0
cycles = 1000
parity_threshold = 0.9
min_samples = 20
replay = false
[burn_in]
cycles = 100
max_error_rate = 0.02
max_law_violations = 0
max_latency_ratio = 2.0
min_answers = 10
latency_percent = 10.0
forbidden_phrases = []
"""
    config = parse_config(text)
    assert config.shadow.parity_threshold == 0.9
    assert config.shadow.quality_threshold == ShadowConfig().quality_threshold
    assert config.burn_in.min_quality == BurnInConfig().min_quality


def test_state_snapshots_without_the_new_counters_still_decode() -> None:
    from evo_core.state import BurnIn, Shadow

    shadow = msgspec.json.decode(
        b'{"generation":"G","start_cycle":1,"until_cycle":5,"traffic_percent":10.0,"samples":2,"similarity_sum":1.0}',
        type=Shadow,
    )
    assert (shadow.scored, shadow.judged, shadow.quality, shadow.parity) == (0, 0, None, 0.5)
    burn = msgspec.json.decode(b'{"generation":"G","previous_head":"F","start_cycle":1,"until_cycle":5}', type=BurnIn)
    assert (burn.scored, burn.judged, burn.quality, burn.logprob) == (0, 0, None, None)
