"""``evo serve`` as a user meets it: a real ``evo serve`` process on a free localhost port, over a
copy of the demo workspace (real GGUF, real llama.cpp, real ledger), driven with the official
``openai`` client: chat with and without streaming, the model list, health, OpenAI-shaped errors,
and a cutover and a rollback (records another process appends) followed without a restart."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.data import conversations
from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.config import ShadowConfig
from evo_core.state import Phase
from tests.core.helpers import CFG
from tests.fixtures_models import GENESIS
from tests.serving.test_router import QUERIES, Env

openai = pytest.importorskip("openai")

MODEL = "Luna"
QUESTION = "What does the blurk eat?"


class Server:
    """``evo serve --port 0`` in a subprocess; ``url`` is what it printed once listening."""

    def __init__(self, home: Path, *extra: str):
        self.home = home
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "adapters.cli", "--home", str(home), "serve", "--port", "0", "--json",
             "--threads", "1", "--n-ctx", "256", "--max-tokens", "8", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=60)
            raise AssertionError(f"evo serve exited {self.proc.returncode}: {self.proc.stderr.read()}")  # type: ignore[union-attr]
        self.started = json.loads(line)
        self.url: str = self.started["url"]
        self.client = openai.OpenAI(base_url=self.url, api_key="unused", max_retries=0, timeout=120)

    def get(self, path: str) -> tuple[int, Any]:
        """A plain GET of ``path`` under the server's root: status and decoded JSON body."""
        root = self.url.removesuffix("/v1")
        try:
            with urllib.request.urlopen(root + path, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def post(self, path: str, data: bytes) -> tuple[int, Any]:
        request = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def stop(self) -> str:
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=60)
        return err


def _config(percent: float) -> Any:
    shadow = ShadowConfig(traffic_percent=percent, cycles=5, min_samples=2, min_judged=2, parity_threshold=0.9)
    return CFG.model_copy(update={"shadow": shadow})


@pytest.fixture(scope="module")
def idle(demo_workspace: Path, demo_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server over a copy of the demo workspace with nothing under way (HEAD = the genesis)."""
    home = tmp_path_factory.mktemp("serve-idle") / "home"
    shutil.copytree(demo_workspace, home, symlinks=True)
    server = Server(home)
    yield server
    server.stop()


def _stored(home: Path) -> dict[str, conversations.Conversation]:
    return conversations.by_id(conversations.load(home))


# ---------------------------------------------------------------- answering


def test_it_listens_on_localhost_and_names_head(idle: Server) -> None:
    assert idle.started["host"] == "127.0.0.1" and idle.url.startswith("http://127.0.0.1:")
    assert idle.started["model"] == MODEL and idle.started["generation"] == GENESIS
    assert idle.get("/health") == (200, {"status": "ok", "model": MODEL, "generation": GENESIS, "phase": "idle"})


def test_models_lists_the_agents_model(idle: Server) -> None:
    models = idle.client.models.list()
    assert [m.id for m in models.data] == [MODEL]
    assert idle.client.models.retrieve(MODEL).owned_by == "evo"
    with pytest.raises(openai.NotFoundError):
        idle.client.models.retrieve("gpt-4o")


def test_a_chat_is_heads_greedy_answer_and_is_recorded(idle: Server) -> None:
    before = _stored(idle.home)
    raw = idle.client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": QUESTION}]
    )
    chat = raw.parse()
    answer = chat.choices[0].message
    assert chat.model == GENESIS and raw.headers["x-evo-generation"] == GENESIS
    assert answer.role == "assistant" and "blurk" in answer.content
    assert chat.choices[0].finish_reason in ("stop", "length")
    assert chat.usage is not None and 0 < chat.usage.completion_tokens <= 8 and chat.usage.prompt_tokens > 0
    again = idle.client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}])
    assert again.choices[0].message.content == answer.content  # greedy by default: the same answer

    after = _stored(idle.home)
    stored = after[raw.headers["x-evo-conversation"]]
    assert len(after) == len(before) + 2
    assert [(m.role, m.content) for m in stored.messages] == [("user", QUESTION), ("assistant", answer.content)]
    assert stored.karma == 0.0


def test_a_conversation_with_a_system_prompt_history_and_sampling(idle: Server) -> None:
    messages: list[Any] = [
        {"role": "developer", "content": "You are Luna."},
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": [{"type": "text", "text": "Where does "}, {"type": "text", "text": "the zwob live?"}]},
    ]
    kw: dict[str, Any] = dict(model=MODEL, messages=messages, temperature=1.0, top_p=0.9, seed=7, max_tokens=6,
                              extra_body={"evo_karma": 0.5})
    raw = idle.client.chat.completions.with_raw_response.create(**kw)
    first = raw.parse()
    assert first.choices[0].message.content == idle.client.chat.completions.create(**kw).choices[0].message.content
    assert first.usage is not None and first.usage.completion_tokens <= 6
    stored = _stored(idle.home)[raw.headers["x-evo-conversation"]]
    assert [m.role for m in stored.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert stored.messages[3].content == "Where does the zwob live?" and stored.karma == 0.5

    stopped = idle.client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}],
                                                  stop=["eats"])
    assert "eats" not in stopped.choices[0].message.content and stopped.choices[0].finish_reason == "stop"


def test_streaming_sends_openai_chunks_that_add_up_to_the_answer(idle: Server) -> None:
    whole = idle.client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}])
    chunks = list(idle.client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": QUESTION}], stream=True,
        stream_options={"include_usage": True},
    ))
    assert all(c.object == "chat.completion.chunk" and c.model == GENESIS for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) >= 2  # piece by piece
    finished = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finished == [whole.choices[0].finish_reason]
    usage = chunks[-1].usage  # the last chunk, asked for: no choices, the usage
    assert not chunks[-1].choices and usage is not None and usage.completion_tokens > 0 and usage.prompt_tokens > 0


def test_the_stream_ends_with_done(idle: Server) -> None:
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": QUESTION}], "stream": True}).encode()
    request = urllib.request.Request(idle.url + "/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.read().decode().split("\n\n") if line]
    assert events[-1] == "data: [DONE]" and all(e.startswith("data: ") for e in events)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("kw, error, param", [
    (dict(model="gpt-4o"), "NotFoundError", "model"),
    (dict(messages=[]), "BadRequestError", "messages"),
    (dict(messages=[{"role": "robot", "content": "hi"}]), "BadRequestError", "messages[0].role"),
    (dict(messages=[{"role": "tool", "content": "42", "tool_call_id": "x"}]), "BadRequestError", "messages[0].role"),
    (dict(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
     "BadRequestError", "messages[0].content"),
    (dict(messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]),
     "BadRequestError", "messages"),
    (dict(n=2), "BadRequestError", "n"),
    (dict(temperature=3.0), "BadRequestError", "temperature"),
    (dict(top_p=0.0), "BadRequestError", "top_p"),
    (dict(max_tokens=0), "BadRequestError", "max_tokens"),
    (dict(stop=["a", "b", "c", "d", "e"]), "BadRequestError", "stop"),
    (dict(tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}]), "BadRequestError", "tools"),
    (dict(extra_body={"evo_kind": "URGENT"}), "BadRequestError", "evo_kind"),
    (dict(extra_body={"frobnicate": 1}), "BadRequestError", "frobnicate"),
])
def test_a_bad_request_gets_an_openai_error_and_records_nothing(idle: Server, kw: dict[str, Any], error: str,
                                                                param: str) -> None:
    before = _stored(idle.home)
    request: dict[str, Any] = dict(model=MODEL, messages=[{"role": "user", "content": QUESTION}])
    with pytest.raises(getattr(openai, error)) as caught:
        idle.client.chat.completions.create(**{**request, **kw})
    body = caught.value.body
    assert isinstance(body, dict) and body["param"] == param and body["message"]
    assert body["type"] == "invalid_request_error"
    assert _stored(idle.home) == before


def test_a_prompt_longer_than_the_context_is_refused_before_the_stream_starts(idle: Server) -> None:
    long = "What does the blurk eat? " * 200
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as caught:
            idle.client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": long}],
                                                stream=stream)
        assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "context_length_exceeded"


def test_malformed_json_and_wrong_paths_get_openai_errors(idle: Server) -> None:
    status, body = idle.post("/chat/completions", b"{not json")
    assert status == 400 and set(body["error"]) == {"message", "type", "param", "code"}
    assert "not valid JSON" in body["error"]["message"]
    assert idle.post("/chat/completions", b"[1, 2]")[0] == 400
    status, body = idle.post("/chat/completions", json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode())
    assert status == 400 and body["error"]["param"] == "model"
    status, body = idle.get("/v1/nowhere")
    assert status == 404 and body["error"]["type"] == "invalid_request_error"
    status, body = idle.get("/v1/chat/completions")
    assert status == 405 and "error" in body
    assert idle.get("/health")[0] == 200  # still answering


# ---------------------------------------------------------------- the rollout, live


def _events(home: Path, kind: type) -> list[Any]:
    from adapters.runtime.app import App

    with App(home) as app:
        return [r.event for r in app.store.ledger.records() if isinstance(r.event, kind)]


def test_shadow_cutover_and_rollback_are_followed_without_a_restart(
    demo_workspace: Path, demo_gguf: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(demo_workspace, home, symlinks=True)
    env = Env(home, demo_gguf, _config(percent=100.0))
    server = Server(home)
    try:
        ask = dict(model=MODEL, messages=[{"role": "user", "content": QUERIES[0]}])
        assert server.client.chat.completions.create(**ask).model == GENESIS
        candidate = env.shadow()  # another process (the runner, the operator) moves the ledger

        for query in QUERIES[:2]:  # HEAD answers; every TRIVIAL request is mirrored to the shadow
            chat = server.client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": query}])
            assert chat.model == GENESIS
        assert len(_events(home, ev.ShadowCompared)) == 2
        sampled = server.client.chat.completions.create(**ask, temperature=0.8, seed=1)
        assert sampled.model == GENESIS and len(_events(home, ev.ShadowCompared)) == 2  # sampled: not mirrored
        critical = server.client.chat.completions.create(**ask, extra_body={"evo_kind": "CRITICAL"})
        assert critical.model == GENESIS and len(_events(home, ev.ShadowCompared)) == 2  # only TRIVIAL

        d = env.driver
        assert d.app.state().shadow is not None
        d.beat_to(d.app.state().shadow.until_cycle)  # type: ignore[union-attr]
        d.do(cmd.CompleteShadow(config=d.config))
        assert d.state.phase is Phase.BURN_IN and d.state.head == candidate

        observed = len(_events(home, ev.AnswerObserved))
        chat = server.client.chat.completions.create(**ask)
        assert chat.model == candidate and chat.system_fingerprint == candidate  # the cutover, live
        streamed = list(server.client.chat.completions.create(**ask, stream=True))
        assert {c.model for c in streamed} == {candidate}
        assert server.get("/health")[1]["generation"] == candidate
        assert len(_events(home, ev.AnswerObserved)) == observed + 2  # burn-in watches the new HEAD

        d.rollback()
        assert server.client.chat.completions.create(**ask).model == GENESIS  # the rollback, live
        assert server.get("/health")[1] == {"status": "ok", "model": MODEL, "generation": GENESIS, "phase": "idle"}
    finally:
        err = server.stop()
    assert "Traceback" not in err


# ---------------------------------------------------------------- the command line


def test_no_record_records_nothing(demo_workspace: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(demo_workspace, home, symlinks=True)
    before = (home / "data" / "conversations.jsonl").read_bytes()
    server = Server(home, "--no-record")
    try:
        assert server.started["record"] is False
        raw = server.client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": QUESTION}])
        assert raw.parse().choices[0].message.content and "x-evo-conversation" not in raw.headers
    finally:
        server.stop()
    assert (home / "data" / "conversations.jsonl").read_bytes() == before


def test_a_port_in_use_or_no_workspace_is_one_line_and_exit_1(idle: Server, tmp_path: Path) -> None:
    port = str(idle.started["port"])
    taken = subprocess.run([sys.executable, "-m", "adapters.cli", "--home", str(idle.home), "serve", "--port", port],
                           capture_output=True, text=True, timeout=300)
    assert taken.returncode == 1 and taken.stdout == ""
    assert taken.stderr.startswith("evo: error: ") and len(taken.stderr.strip().splitlines()) == 1
    missing = subprocess.run([sys.executable, "-m", "adapters.cli", "--home", str(tmp_path / "none"), "serve"],
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
    usage = subprocess.run([sys.executable, "-m", "adapters.cli", "serve", "--port", "70000"],
                           capture_output=True, text=True, timeout=300)
    assert usage.returncode == 2 and "not a TCP port" in usage.stderr
