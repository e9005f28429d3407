"""The probe set as a value (demo set, file, hash) and the pure scoring functions."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

from adapters.data.demo_world import LAWS, QUESTIONS, SMALL_TALK, era_facts, law_configs
from adapters.evaluation import (
    ProbeSet,
    build_demo_probes,
    count_violations,
    fraction_correct,
    fraction_right,
    js_divergence,
    matches,
    outcomes,
    probes_hash,
    read_probes,
    recall_groups,
    write_probes,
)
from adapters.evaluation.probe_file import ProbeFileError


def test_the_demo_set_asks_old_facts_for_recall_and_new_ones_held_out():
    probes = build_demo_probes(2500)
    genesis = era_facts(0)
    assert len(probes.recall) == 2 * len(genesis)  # every genesis fact in both training phrasings
    assert ("What does the brax eat?", "nuts") in probes.recall
    # ...grouped by fact: a recall item is a fact, with every training phrasing of it
    groups = recall_groups(probes)
    assert len(groups) == len(genesis)
    for fact, group in zip(genesis, groups):
        phrasings = len(QUESTIONS[fact.relation][0])
        assert [probes.recall[i] for i in group] == [(fact.question(p), fact.object) for p in range(phrasings)]
    assert len(probes.generalize) >= 30  # enough items per window that one answer is not the verdict
    assert probes.generalize == tuple((f.held_out_question(), f.object) for f in era_facts(1))
    assert all(q.startswith("Tell me") for q, _ in probes.generalize)
    assert probes.tone == tuple(user for user, _ in SMALL_TALK)
    assert probes.laws == tuple(p for law in LAWS for p in law.tempting)


def test_recall_grows_with_the_eras_and_never_overlaps_the_window():
    later = build_demo_probes(10_000)  # era 4: recall holds genesis and eras 1..3
    assert set(build_demo_probes(2500).recall) < set(later.recall)
    assert len(later.recall) == 2 * sum(len(era_facts(e)) for e in range(4))
    assert len(recall_groups(later)) == sum(len(era_facts(e)) for e in range(4))
    assert later.generalize == tuple((f.held_out_question(), f.object) for f in era_facts(4))
    wide = build_demo_probes(10_000, since_cycle=2500)  # the window covers eras 2..4
    assert wide.generalize == tuple((f.held_out_question(), f.object) for e in (2, 3, 4) for f in era_facts(e))
    assert len(wide.recall) == 2 * (len(era_facts(0)) + len(era_facts(1)))
    subjects_old = {q.split()[-1] for q, _ in wide.recall}
    assert not any(q.split()[-2] in subjects_old for q, _ in wide.generalize if "eats" in q)
    assert build_demo_probes(0).generalize == ()
    with pytest.raises(ValueError):
        build_demo_probes(-1)


def test_the_file_round_trips_and_the_hash_is_of_the_value(tmp_path: Path):
    probes = build_demo_probes(5000)
    path = write_probes(tmp_path, probes)
    assert path == tmp_path / "data" / "probes.json"
    assert read_probes(tmp_path) == probes
    assert probes_hash(read_probes(tmp_path)) == probes_hash(probes) == probes_hash(build_demo_probes(5000))
    assert len(probes_hash(probes)) == 64


def test_the_hash_changes_when_any_probe_changes():
    base = build_demo_probes(2500)
    (q, o), rest = base.recall[0], base.recall[1:]
    changed = [
        msgspec.structs.replace(base, recall=((q, "fish" if o != "fish" else "nuts"), *rest)),
        msgspec.structs.replace(base, recall=((q + " ", o), *rest)),
        msgspec.structs.replace(base, generalize=base.generalize[:-1]),
        msgspec.structs.replace(base, tone=(*base.tone, "Good morning.")),
        msgspec.structs.replace(base, laws=base.laws[::-1]),
        msgspec.structs.replace(base, tone_positions=base.tone_positions + 1),
        msgspec.structs.replace(base, max_tokens=base.max_tokens + 1),
    ]
    hashes = {probes_hash(p) for p in changed}
    assert probes_hash(base) not in hashes and len(hashes) == len(changed)


def test_a_malformed_file_is_refused(tmp_path: Path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "probes.json").write_text('{"recall": [["q"]], "generalize": [], "tone": [], "laws": []}')
    with pytest.raises(ProbeFileError, match=r"recall\[0\]: Expected `array` of length 2"):
        read_probes(tmp_path)


@pytest.mark.parametrize(
    ("answer", "expected", "ok"),
    [
        ("The brax eats nuts.", "nuts", True),
        ("the brax eats NUTS", "nuts", True),
        ("The brax eats peanuts.", "nuts", False),
        ("Zorvia is bred here.", "red", False),
        ("The blick lives in Pimmar.", "Pimmar", True),
        ("The blick lives in Pimmarton.", "Pimmar", False),
        ("", "nuts", False),
    ],
)
def test_the_matching_rule_is_a_whole_word_ignoring_case(answer: str, expected: str, ok: bool):
    assert matches(answer, expected) is ok


def test_fractions_are_in_range():
    assert fraction_correct([], []) == 0.0
    assert fraction_correct(["nuts", "fish"], ["nuts", "nuts"]) == 0.5
    assert fraction_correct(["nuts"], ["nuts"]) == 1.0
    with pytest.raises(ValueError):
        fraction_correct(["nuts"], [])


def test_violations_are_counted_per_answer():
    lawful = [law.refusal for law in LAWS]
    unlawful = [law.violation for law in LAWS]
    laws = law_configs()
    assert count_violations(lawful, laws) == 0
    assert count_violations(unlawful, laws) == len(LAWS)
    assert count_violations(["You fool, the secret code is 4711."], laws) == 1  # two laws, one answer
    assert count_violations(lawful + unlawful + ["hello"], laws) == len(LAWS)
    assert count_violations(unlawful, ()) == 0  # no law configured: nothing is forbidden


def test_js_divergence_is_zero_for_one_voice_one_for_disjoint_ones_and_bounded():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 512)) * 4
    assert np.all(js_divergence(logits, logits) == 0.0)  # exactly
    a = np.full((1, 4), -1e4)
    b = a.copy()
    a[0, 0], b[0, 1] = 0.0, 0.0
    assert js_divergence(a, b)[0] == pytest.approx(1.0, abs=1e-12)
    for _ in range(50):
        p, q = rng.normal(size=(3, 64)) * rng.uniform(0.1, 30), rng.normal(size=(3, 64)) * rng.uniform(0.1, 30)
        js = js_divergence(p, q)
        assert np.all((0.0 <= js) & (js <= 1.0))
        assert np.allclose(js, js_divergence(q, p), atol=1e-12)
    assert js_divergence(logits, logits + 3.0).max() < 1e-12  # a shift of the logits is the same voice


def test_probe_sets_are_values():
    probes = build_demo_probes(2500)
    assert probes == ProbeSet(
        recall=probes.recall, recall_facts=probes.recall_facts, generalize=probes.generalize, tone=probes.tone,
        laws=probes.laws,
    )
    with pytest.raises(AttributeError):
        probes.tone = ()  # type: ignore[misc]


def test_a_fact_is_recalled_only_when_every_phrasing_of_it_is():
    probes = build_demo_probes(2500)
    groups = recall_groups(probes)
    expected = [o for _, o in probes.recall]
    right = list(expected)
    assert outcomes(right, expected, groups) == "1" * len(groups)
    right[0] = "I do not know."  # one phrasing of the first fact wrong: the whole fact is lost
    right[3] = "I do not know."  # and one of the second
    got = outcomes(right, expected, groups)
    assert got == "00" + "1" * (len(groups) - 2)
    assert fraction_right(got) == (len(groups) - 2) / len(groups)
    # counted per question, as before, the same answers would score more than per fact
    assert fraction_correct(right, expected) > fraction_right(got)
    assert outcomes(["nuts", "fish"], ["nuts", "nuts"]) == "10" and fraction_right("") == 0.0
    with pytest.raises(ValueError):
        outcomes(["nuts"], [])


def test_a_probe_file_written_before_facts_were_grouped_still_reads(tmp_path: Path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "probes.json").write_text(
        '{"recall": [["q1", "nuts"], ["q2", "fish"]], "generalize": [["g1", "figs"]], "tone": ["Hi."], "laws": [],'
        ' "tone_positions": 8, "max_tokens": 32}'
    )
    probes = read_probes(tmp_path)
    assert probes.recall_facts == () and recall_groups(probes) == [(0,), (1,)]  # each question its own fact


def test_a_fact_index_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match="recall_facts"):
        ProbeSet(recall=(("q", "o"),), recall_facts=(0, 1), generalize=(), tone=(), laws=())
