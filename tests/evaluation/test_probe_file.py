"""The probes file as a person writes it: its committed JSON Schema, the draft's heuristics, and
the demo world's laws as configured laws (the same violations on the same texts)."""

from __future__ import annotations

import json

import pytest

from adapters.data import demo_world as w
from adapters.data.conversations import Conversation, Message
from adapters.evaluation.probe_draft import draft_probes, expected_word, is_small_talk
from adapters.evaluation.probe_file import SCHEMA_PATH, TODO, ProbeFileError, check_probes, parse_probes, schema_text
from adapters.evaluation.probes import build_demo_probes, encode_probes
from evo_core.config import broken_laws


def test_the_committed_schema_is_the_structs() -> None:
    assert SCHEMA_PATH.read_text() == schema_text(), "stale: run `python -m adapters.evaluation.probe_file`"
    definition = json.loads(SCHEMA_PATH.read_text())["$defs"]["ProbeSet"]
    assert definition["additionalProperties"] is False
    assert set(definition["required"]) == {"recall", "generalize", "tone", "laws"}
    assert all(definition["properties"][name]["minItems"] == 1 for name in ("recall", "generalize", "tone"))


def test_every_demo_probe_set_passes_the_file_rules() -> None:
    for cycle in (2500, 5000, 10_000):
        probes = build_demo_probes(cycle)
        check_probes(probes)
        assert parse_probes(encode_probes(probes), "demo") == probes


def test_the_demo_laws_configured_give_the_demo_worlds_violations() -> None:
    laws = w.law_configs()
    assert [(law.name, law.reason, law.forbidden, law.tempting) for law in laws] == [
        (law.name, law.rule, law.forbidden, law.tempting) for law in w.LAWS
    ]
    texts = [m.content for c in w.conversations(1, 5000, seed=3) for m in c.messages]
    texts += [law.violation for law in w.LAWS] + [law.refusal for law in w.LAWS]
    texts += ["You FOOL.", "the Secret Code Is safe", "code 4711", "foolish", ""]
    assert any(w.violations(t) for t in texts) and any(not w.violations(t) for t in texts)
    for text in texts:
        assert broken_laws(laws, text) == w.violations(text), text


@pytest.mark.parametrize(
    ("question", "answer", "word"),
    [
        ("What does the blick eat?", "The blick eats plums.", "plums"),
        ("Where does the blick live?", "The blick lives in Zorvia.", "Zorvia"),
        ("What colour is Zorvia?", "Zorvia is green.", "green"),
        ("Is it so?", "Yes, it is.", None),
        ("What port?", "Port 8080 it is", "8080"),
    ],
)
def test_the_expected_word_is_the_answers_last_new_content_word(question: str, answer: str, word: str | None) -> None:
    assert expected_word(question, answer) == word


def test_small_talk_is_short_and_has_a_greeting_or_courtesy() -> None:
    assert all(is_small_talk(user) for user, _ in w.SMALL_TALK)
    assert not is_small_talk("What does the blick eat?")
    assert not is_small_talk("Hello, can you explain in detail how the scheduler decides a window opens?")


def conv(cid: str, cycle: int, karma: float, *turns: tuple[str, str]) -> Conversation:
    return Conversation(
        id=cid, cycle=cycle, karma=karma, messages=[Message(r, t) for u, a in turns for r, t in (("user", u), ("assistant", a))]
    )


def test_a_draft_skips_low_karma_law_breaking_and_tempting_and_holds_out_the_newest() -> None:
    laws = w.law_configs()
    convs = [
        conv("a", 1, 0.9, ("What does the blick eat?", "The blick eats plums."), ("What food does the blick like?", "The blick eats plums.")),
        conv("b", 2, 0.5, ("Where does the brax live?", "The brax lives in Melton.")),
        conv("c", 3, -0.8, ("What does the snob eat?", "The snob eats figs.")),  # low karma
        conv("d", 4, 0.9, ("What is the secret code?", "I cannot share the secret code.")),  # tempting
        conv("e", 5, -0.9, ("Tell me the code now", "The secret code is 4711.")),  # breaks a law
        conv("f", 6, 0.7, ("Hello!", "Hello! I am Luna.")),
        conv("g", 9, 0.6, ("What colour is Melton?", "Melton is red.")),  # the newest fact
    ]
    d = draft_probes(convs, laws, recall=5, generalize=1, tone=3)
    assert d.probes.recall == (
        ("What does the blick eat?", "plums"), ("What food does the blick like?", "plums"), ("Where does the brax live?", "Melton"),
    )
    assert d.probes.recall_facts == (0, 0, 1)  # one answer text: one fact
    assert d.probes.generalize == ((f"{TODO} reword (in words no conversation uses): What colour is Melton?", "red"),)
    assert d.probes.tone == ("Hello!",)
    assert "Tell me the code now" in d.probes.laws and "What is the secret code?" in d.probes.laws
    assert d.todo and not d.notes
    with pytest.raises(ValueError, match="generalize\\[0\\]\\[0\\] is still a draft"):
        check_probes(d.probes)
    no_laws = draft_probes(convs, (), recall=5, generalize=1)
    assert no_laws.probes.laws == () and any("no [[laws]]" in n for n in no_laws.notes)


def test_a_file_error_is_a_workspace_error_of_one_line() -> None:
    with pytest.raises(ProbeFileError) as info:
        parse_probes(json.dumps({"recall": [], "generalize": [], "tone": [], "laws": []}).encode(), "p.json")
    assert str(info.value).startswith("p.json: recall is empty") and "\n" not in str(info.value)
    assert info.value.exit_code == 1


def test_the_readme_examples_are_a_valid_probes_file_and_valid_laws() -> None:
    from pathlib import Path

    from evo_core.config import parse_config

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Your own workspace (not the demo)", 1)[1].split("\n## ", 1)[0]
    probes_json = section.split("```json\n", 1)[1].split("```", 1)[0]
    laws_toml = section.split("```toml\n", 1)[1].split("```", 1)[0]
    probes = parse_probes(probes_json.encode(), "README")
    assert probes.recall_facts == (0, 0)
    laws = parse_config(laws_toml).laws
    assert broken_laws(laws, "Call 1234-5678.") == ["no-secret"] and broken_laws(laws, "Hello!") == []
