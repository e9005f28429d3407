"""``Agent.respond`` with a conversation and sampling settings, and what it records: the
conversation in the store ``evo ingest`` writes (read back by the same reader the training
reads), under an id it returns, with a karma the agent sets later."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.agent import Agent
from adapters.data import conversations
from adapters.data.conversations import UnknownConversation
from evo_core.errors import InvalidInput
from tests.fixtures_models import GENESIS

QUESTION = "What does the blurk eat?"


@pytest.fixture(scope="module")
def home(demo_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("respond") / "home"
    shutil.copytree(demo_workspace, home, symlinks=True)
    return home


@pytest.fixture(scope="module")
def agent(home: Path) -> Iterator[Agent]:
    with Agent(home, n_threads=1, max_tokens=12) as agent:
        yield agent


def _store(home: Path) -> bytes:
    return (home / "data" / "conversations.jsonl").read_bytes()


def test_a_conversation_is_answered_and_recorded_for_the_next_window(agent: Agent, home: Path) -> None:
    history = [{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Hello."},
               {"role": "user", "content": QUESTION}]
    agent.heartbeat()
    cycle = agent.state().cycle
    answer = agent.respond(history, system="You are Luna.")
    assert answer.generation == GENESIS and answer.text and answer.conversation_id.startswith("agent-")

    stored = conversations.by_id(conversations.load(home))[answer.conversation_id]
    assert [(m.role, m.content) for m in stored.messages] == [
        ("system", "You are Luna."), *[(m["role"], m["content"]) for m in history], ("assistant", answer.text)]
    assert stored.karma == 0.0 and stored.cycle == cycle + 1  # the cycle in progress: the next window's
    # the stored line is one ingest accepts as it is
    line = next(raw for raw in _store(home).splitlines() if answer.conversation_id.encode() in raw)
    assert conversations.parse_lines(line + b"\n", "store") == [stored]


def test_one_question_is_recorded_too_and_record_false_records_nothing(agent: Agent, home: Path) -> None:
    answer = agent.respond(QUESTION)
    stored = conversations.by_id(conversations.load(home))[answer.conversation_id]
    assert [(m.role, m.content) for m in stored.messages] == [("user", QUESTION), ("assistant", answer.text)]
    before = _store(home)
    quiet = agent.respond(QUESTION, record=False)
    assert quiet.conversation_id == "" and quiet.text == answer.text and _store(home) == before


def test_karma_set_later_is_what_the_store_reads(agent: Agent, home: Path) -> None:
    answer = agent.respond(QUESTION, karma=0.25)
    cid = answer.conversation_id
    assert conversations.by_id(conversations.load(home))[cid].karma == 0.25
    store = _store(home)
    agent.set_karma(cid, -3)
    agent.set_karma(cid, 1.5)
    assert conversations.by_id(conversations.load(home))[cid].karma == 1.5  # the last value wins
    assert _store(home) == store  # the store itself is append-only and untouched
    karma_file = home / "data" / "karma.jsonl"
    before = karma_file.read_bytes()
    with pytest.raises(UnknownConversation):
        agent.set_karma("agent-nope", 1.0)
    for bad in (float("nan"), float("inf"), True, "1.0"):
        with pytest.raises(InvalidInput):
            agent.set_karma(cid, bad)  # type: ignore[arg-type]
    assert karma_file.read_bytes() == before
    with Agent(home) as other:  # durable: another process sees it
        other.set_karma(cid, 2.0)
    assert conversations.by_id(conversations.load(home))[cid].karma == 2.0


def test_a_torn_karma_line_is_ignored_then_set_aside(agent: Agent, home: Path) -> None:
    cid = agent.respond(QUESTION).conversation_id
    karma_file = home / "data" / "karma.jsonl"
    with open(karma_file, "ab") as f:
        f.write(b'{"id":"' + cid.encode() + b'","kar')  # a crash in the middle of an append
    assert conversations.by_id(conversations.load(home))[cid].karma == 0.0
    agent.set_karma(cid, 0.5)
    assert conversations.by_id(conversations.load(home))[cid].karma == 0.5
    assert karma_file.read_bytes().endswith(b"\n")
    assert any(p.name.startswith("karma.jsonl.torn-") for p in karma_file.parent.iterdir())


def test_sampling_settings_shape_the_answer(agent: Agent) -> None:
    greedy = agent.respond(QUESTION, record=False).text
    assert "eats" in greedy
    stopped = agent.respond(QUESTION, stop="eats", record=False)
    assert stopped.text == greedy[: greedy.index("eats")] and stopped.finished
    short = agent.respond(QUESTION, max_tokens=2, record=False)
    assert short.tokens <= 2 and not short.finished
    drawn = [agent.respond(QUESTION, temperature=2.0, seed=s, record=False).text for s in (1, 1, 2, 3, 4)]
    assert drawn[0] == drawn[1]  # a seed makes a draw reproducible
    assert len(set(drawn)) > 1  # and the temperature makes draws differ


@pytest.mark.parametrize("query, kw", [
    ([{"role": "robot", "content": "hi"}], {}),
    ([{"role": "user", "content": None}], {}),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], {}),
    ([], {}),
    (QUESTION, {"temperature": -1}),
    (QUESTION, {"top_p": 0}),
    (QUESTION, {"max_tokens": 0}),
    (QUESTION, {"stop": ["", "x"]}),
    (QUESTION, {"seed": 1.5}),
    (QUESTION, {"karma": float("nan")}),
    (QUESTION, {"kind": "URGENT"}),
    ("What does the blurk eat? " * 200, {}),  # longer than the context
])
def test_bad_input_is_one_error_and_records_nothing(agent: Agent, home: Path, query: object,
                                                   kw: dict[str, object]) -> None:
    before = _store(home)
    with pytest.raises(InvalidInput):
        agent.respond(query, **kw)  # type: ignore[arg-type]
    assert _store(home) == before
