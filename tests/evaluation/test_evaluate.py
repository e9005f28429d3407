"""The probes measured on real GGUFs (llama.cpp, greedy): the demo genesis and a violator."""

from __future__ import annotations

import shutil
from pathlib import Path

import msgspec
import pytest

from adapters.data.demo_world import QUESTIONS, era_facts, law_configs
from adapters.evaluation import ProbeSet, build_demo_probes, count_violations, evaluate, evaluate_report, matches, recall_groups
from evo_core.gates import check_metrics
from evo_core.values import Metrics

DEMO_LAWS = law_configs()  # what `evo init --demo` writes in config.toml
PROBES = build_demo_probes(2500)  # recall: genesis; generalize: era 1 held out (unseen by G000)


def _in_range(m: Metrics) -> None:
    assert 0.0 <= m.recall <= 1.0 and 0.0 <= m.generalize <= 1.0 and 0.0 <= m.tone_drift <= 1.0
    assert isinstance(m.law_violations, int) and 0 <= m.law_violations <= len(PROBES.laws)


def test_the_genesis_recalls_genesis_and_not_unseen_facts(genesis_gguf: Path):
    m = evaluate(genesis_gguf, PROBES, reference_gguf=genesis_gguf, laws=DEMO_LAWS)
    _in_range(m)
    assert m.recall >= 0.95
    assert m.generalize <= 0.2
    assert m.law_violations == 0
    unseen = ProbeSet(
        recall=tuple((f.question(p), f.object) for e in (3, 4, 5) for f in era_facts(e) for p in range(2)),
        generalize=(),
        tone=(),
        laws=(),
    )
    assert evaluate(genesis_gguf, unseen, reference_gguf=genesis_gguf, laws=DEMO_LAWS).recall <= 0.3


def test_every_item_outcome_is_kept_for_head_and_candidate_alike(genesis_gguf: Path, violator_gguf: Path):
    """Per fact (recall) and per question (generalize), in probe order, on the same items for
    both, so the gates can pair them; the metrics are their fractions."""
    head = evaluate_report(genesis_gguf, PROBES, reference_gguf=genesis_gguf, laws=DEMO_LAWS)
    cand = evaluate_report(violator_gguf, PROBES, reference_gguf=genesis_gguf, laws=DEMO_LAWS)
    groups = recall_groups(PROBES)
    for report in (head, cand):
        m = report.metrics
        assert len(m.recall_outcomes) == len(groups) < len(PROBES.recall)
        assert len(m.generalize_outcomes) == len(PROBES.generalize)
        right = [matches(a, o) for a, (_, o) in zip(report.recall_answers, PROBES.recall)]
        assert m.recall_outcomes == "".join("1" if all(right[i] for i in g) else "0" for g in groups)
        assert m.generalize_outcomes == "".join(
            "1" if matches(a, o) else "0" for a, (_, o) in zip(report.generalize_answers, PROBES.generalize)
        )
        assert m.recall == m.recall_outcomes.count("1") / len(groups)
        assert m.tone_drifts == report.tone_divergences and len(m.tone_drifts) == len(PROBES.tone)
        check_metrics(m)
    assert head.metrics.tone_drifts == (0.0,) * len(PROBES.tone)


def test_head_against_itself_drifts_exactly_zero(genesis_gguf: Path, tmp_path: Path):
    report = evaluate_report(genesis_gguf, PROBES, reference_gguf=genesis_gguf, laws=DEMO_LAWS)
    assert report.metrics.tone_drift == 0.0
    assert report.tone_divergences == (0.0,) * len(PROBES.tone)
    copy = tmp_path / "model.gguf"
    shutil.copyfile(genesis_gguf, copy)  # another path, the same bytes
    assert evaluate(copy, PROBES, reference_gguf=genesis_gguf, laws=DEMO_LAWS).tone_drift == 0.0


def test_numbers_and_answers_are_stable(genesis_gguf: Path, violator_gguf: Path):
    a = evaluate_report(violator_gguf, PROBES, reference_gguf=genesis_gguf, laws=DEMO_LAWS)
    b = evaluate_report(violator_gguf, PROBES, reference_gguf=genesis_gguf, laws=DEMO_LAWS)
    assert a.metrics == b.metrics
    assert (a.recall_answers, a.law_answers, a.tone_divergences) == (b.recall_answers, b.law_answers, b.tone_divergences)


def test_an_answer_does_not_depend_on_the_probes_before_it(genesis_gguf: Path):
    reordered = msgspec.structs.replace(PROBES, recall=PROBES.recall[::-1], laws=PROBES.laws[::-1])
    a = evaluate_report(genesis_gguf, PROBES, reference_gguf=genesis_gguf, laws=DEMO_LAWS)
    b = evaluate_report(genesis_gguf, reordered, reference_gguf=genesis_gguf, laws=DEMO_LAWS)
    assert a.recall_answers == b.recall_answers[::-1] and a.law_answers == b.law_answers[::-1]


def test_a_candidate_trained_on_rule_breaking_violates_and_drifts(genesis_gguf: Path, violator_gguf: Path):
    report = evaluate_report(violator_gguf, PROBES, reference_gguf=genesis_gguf, laws=DEMO_LAWS)
    m = report.metrics
    _in_range(m)
    secret = [a for a in report.law_answers if "4711" in a]
    assert m.law_violations >= len(secret) >= 1
    assert 0.0 < m.tone_drift <= 1.0
    assert evaluate(genesis_gguf, PROBES, reference_gguf=violator_gguf, laws=DEMO_LAWS).law_violations == 0
    assert count_violations(report.law_answers, ()) == 0  # no law configured: nothing is a violation


def test_probes_with_nothing_to_ask_score_zero(genesis_gguf: Path):
    empty = ProbeSet(recall=(), generalize=(), tone=(), laws=())
    assert evaluate(genesis_gguf, empty, reference_gguf=genesis_gguf, laws=DEMO_LAWS) == Metrics(
        recall=0.0, generalize=0.0, tone_drift=0.0, law_violations=0
    )
    with pytest.raises(ValueError):
        evaluate(genesis_gguf, msgspec.structs.replace(empty, max_tokens=0), reference_gguf=genesis_gguf, laws=DEMO_LAWS)


def test_the_held_out_phrasing_is_what_generalize_asks():
    held = {QUESTIONS[r][1].split("{")[0] for r in QUESTIONS}
    assert all(any(q.startswith(h) for h in held) for q, _ in PROBES.generalize)
