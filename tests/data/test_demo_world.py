"""The demo world: deterministic, new material every era, nothing old rehearsed (so a model
can forget), the laws broken only in low-karma conversations, short texts, the shipped corpus."""

from __future__ import annotations

import collections

import pytest

from adapters.data import demo_world as w
from adapters.data.conversations import Conversation, encode, parse_lines
from adapters.data.format import render

WINDOW = 10_000


def test_the_shipped_corpus_is_the_generators_output() -> None:
    assert w.CORPUS_PATH.read_text() == w.corpus_text(), "run: python -m adapters.data.demo_world"


def test_the_stream_is_deterministic_and_a_pure_function_of_the_cycle_range() -> None:
    whole = w.conversations(1, WINDOW, seed=3)
    assert whole == w.conversations(1, WINDOW, seed=3)
    assert whole == w.conversations(1, 4321, seed=3) + w.conversations(4322, WINDOW, seed=3)
    assert whole != w.conversations(1, WINDOW, seed=4)
    assert [c.cycle for c in whole] == sorted(c.cycle for c in whole)
    assert all(1 <= c.cycle <= WINDOW for c in whole)
    assert len({c.id for c in whole}) == len(whole)


@pytest.mark.parametrize("rate", [1, 7, 20, 1000, 2500])
def test_the_rate_is_per_1000_cycles(rate: int) -> None:
    convs = w.conversations(1, WINDOW, seed=0, per_1000_cycles=rate)
    assert len(convs) == rate * WINDOW // 1000
    assert w.conversations(501, 1500, seed=0, per_1000_cycles=rate) == [c for c in convs if 501 <= c.cycle <= 1500]


def test_every_conversation_is_a_valid_store_line() -> None:
    convs = w.genesis_corpus(0) + w.conversations(1, WINDOW, seed=0)
    assert parse_lines(b"\n".join(encode(c) for c in convs), "demo") == convs


def test_each_era_brings_new_facts_and_its_conversations_teach_only_them() -> None:
    seen: set[str] = set()
    for era in range(0, 9):
        subjects = {f.subject for f in w.era_facts(era)}
        assert subjects and not subjects & seen, f"era {era} repeats an older subject"
        seen |= subjects
    all_answers = {f.answer(): f.era for f in w.facts_until(WINDOW)}
    taught: dict[int, set[str]] = collections.defaultdict(set)
    for c in w.conversations(1, WINDOW, seed=0, per_1000_cycles=200):  # the demo's rate
        for m in c.messages:
            if m.content in all_answers:
                assert all_answers[m.content] == w.era_of(c.cycle), f"{c.id} rehearses an older fact"
                taught[w.era_of(c.cycle)].add(m.content)
    assert sorted(taught) == list(range(1, w.era_of(WINDOW) + 1))  # genesis (era 0) never rehearsed
    for era, answers in taught.items():
        assert answers == {f.answer() for f in w.era_facts(era)}, f"era {era}: every new fact is taught"


def test_an_era_has_30_facts_and_no_shared_answers_within_a_relation() -> None:
    for era in range(0, 6):
        facts = w.era_facts(era)
        assert len(facts) == 30
        for relation, per_object in (("eats", 1), ("colour", 1), ("lives", w.CREATURES // w.CITIES)):
            objects = collections.Counter(f.object for f in facts if f.relation == relation)
            assert set(objects.values()) == {per_object}, (era, relation, objects)


def test_eras_follow_the_cycles() -> None:
    assert [w.era_of(c) for c in (0, 1, w.ERA_CYCLES, w.ERA_CYCLES + 1)] == [0, 1, 1, 2]
    assert w.facts_until(0) == w.era_facts(0)
    assert len(w.facts_until(WINDOW)) == len(w.era_facts(0)) + 4 * len(w.era_facts(1))


def test_names_are_distinct_for_ever() -> None:
    assert len({w.creature_name(k) for k in range(20_000)}) == 20_000
    assert len({w.city_name(k) for k in range(20_000)}) == 20_000


def test_laws_are_broken_only_in_low_karma_conversations_at_the_documented_rate() -> None:
    convs = w.conversations(1, 100_000, seed=1)
    broken = [c for c in convs if any(w.violations(m.content) for m in c.messages if m.role == "assistant")]
    assert broken and all(c.karma < -0.4 for c in broken)
    assert all(c.karma >= 0.3 for c in convs if c not in broken)
    assert abs(len(broken) / len(convs) - w.VIOLATION_RATE) < 0.02
    names = collections.Counter(v for c in broken for m in c.messages for v in w.violations(m.content))
    assert set(names) == {law.name for law in w.LAWS}
    refusals = {law.refusal for law in w.LAWS}
    assert any(m.content in refusals for c in convs for m in c.messages)  # lawful answers to temptations too


def test_the_laws_catch_what_they_forbid() -> None:
    for law in w.LAWS:
        assert w.violations(law.violation) == [law.name]
        assert w.violations(law.refusal) == []
    assert w.violations("THE SECRET CODE IS 1") == ["no-secret"]
    assert w.violations("The blick eats plums.") == []


def test_genesis_holds_every_genesis_fact_and_no_violation() -> None:
    convs = w.genesis_corpus(0)
    assert all(c.cycle == 0 and c.karma > 0 for c in convs)
    texts = {m.content for c in convs for m in c.messages}
    for fact in w.era_facts(0):
        assert fact.answer() in texts
        assert {fact.question(p) for p in range(2)} <= texts
        assert fact.held_out_question() in texts  # genesis teaches the held-out wording
    assert not any(w.violations(t) for t in texts)
    assert convs == w.genesis_corpus(0) and convs != w.genesis_corpus(1)
    texts_of = lambda cs: sorted(render(c) for c in cs)  # noqa: E731
    assert texts_of(convs) == texts_of(w.genesis_corpus(1))  # the seed shuffles, the facts stay


def test_held_out_questions_of_new_facts_never_appear_in_any_conversation() -> None:
    convs: list[Conversation] = w.genesis_corpus(0) + w.conversations(1, 5 * WINDOW, seed=0)
    texts = {m.content for c in convs for m in c.messages}
    held_out = {f.held_out_question() for f in w.facts_until(5 * WINDOW) if f.era >= 1}
    assert held_out and not texts & held_out


def test_texts_are_short_for_a_tiny_model() -> None:
    from adapters.models.demo import train_tokenizer
    from evo_core.config import EvoConfig

    tok = train_tokenizer()
    convs = w.genesis_corpus(0) + w.conversations(1, 5 * WINDOW, seed=0)
    lengths = [len(tok(render(c, tok))["input_ids"]) for c in convs]
    assert max(lengths) <= EvoConfig().train.max_seq_len  # no training example is ever cut
