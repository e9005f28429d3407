"""The agent's side of evo, as a small Python API: a heartbeat per cycle, answers through the
serving router.

```python
from adapters.agent import Agent

with Agent(home) as agent:
    cycle = agent.heartbeat()                      # the next Heartbeat (cheap: no pydantic, no torch)
    answer = agent.respond("What does the blurk eat?", kind="TRIVIAL")
    answer.text, answer.generation                 # GEN_HEAD's answer, whatever phase evo is in
    answer = agent.respond(
        [{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Hello."},
         {"role": "user", "content": "Who are you?"}],
        system="You are Luna.", temperature=0.7, top_p=0.9, max_tokens=32, stop=["."], seed=1,
    )
    agent.set_karma(answer.conversation_id, 0.8)  # later, when the agent knows how it went
```

``heartbeat()`` appends through the same path as ``evo heartbeat`` (``App.heartbeat``: the
period read from config.toml by ``adapters.runtime.workspace``, then ``App.execute(Beat)``): a window that opens is recorded by that
heartbeat, and the links and projection files follow as after the CLI. ``respond`` goes through
a ``Router`` created on first use (llama.cpp is imported then, not before): it serves whatever
the GHEAD link names, mirrors shadow traffic and records burn-in answers. The agent never
decides anything else: training, evaluation and the rollout are the runner's. A query longer
than the model's context is refused (``PromptTooLong``, one line) before llama.cpp sees it.

``respond`` takes one user turn or a whole conversation (``{"role", "content"}`` mappings or
``Message``s, roles system, user and assistant, ending with the user's turn), an optional
system prompt and the sampling settings (default greedy, evo's own). It records what it
answered (the messages and the answer) in the conversation store
(``adapters.data.conversations.record``, what ``evo ingest`` writes and the next window learns
from) at karma 0, under a fresh id it returns as ``Answer.conversation_id``; ``set_karma`` sets
the karma later (appended durably; the last value wins). ``record=False`` records nothing. The
conversation's cycle is the one in progress (the last heartbeat's + 1): a window that already
opened never claims it, the next one does.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evo_core.errors import InvalidInput

if TYPE_CHECKING:
    from adapters.data.conversations import Message
    from adapters.runtime.app import App
    from adapters.serving.router import Answer, Router
    from adapters.serving.served import Query, Sampling, Served
    from evo_core.state import State

ROLES = ("system", "user", "assistant")
MAX_STOP = 4  # stop strings, as the OpenAI API allows


class PromptTooLong(InvalidInput):
    """A query that, rendered with the chat template, leaves the model no room to answer."""


def check_prompt(served: Served, query: Query) -> None:
    """Refuse ``query`` (``InvalidInput``) when it is not text or, rendered with ``served``'s
    chat template, fills its whole context (llama.cpp would raise deep inside generation)."""
    try:
        data = served.render(query).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("the prompt is not valid text (it holds bytes that are not UTF-8): re-type it") from None
    llm = served.llm
    if not (hasattr(llm, "tokenize") and hasattr(llm, "n_ctx")):
        return  # a stand-in model (tests) has no context to overflow
    n_ctx = int(llm.n_ctx())
    tokens = len(llm.tokenize(data, add_bos=True, special=True))
    if tokens >= n_ctx:
        raise PromptTooLong(
            f"the prompt is {tokens} tokens with the chat template, but {served.name} reads at most "
            f"{n_ctx - 1} (its context is {n_ctx}): shorten it"
        )


class Agent:
    """One agent process's handle on a workspace (``home``). ``router_options`` go to ``Router``."""

    def __init__(self, home: str | os.PathLike[str], **router_options: Any):
        from adapters.runtime.app import App

        self.home = Path(home)
        self._app: App = App(self.home)
        self._router_options = router_options
        self._router: Router | None = None

    # ------------------------------------------------------------------ the clock

    def heartbeat(self) -> int:
        """Append the next heartbeat; returns its cycle."""
        from evo_core.events import Heartbeat

        outcome = self._app.heartbeat()
        return next(e.cycle for e in reversed(outcome.events) if isinstance(e, Heartbeat))

    def model_name(self) -> str:
        """The agent's name (config.toml's ``agent_name``): the model that follows HEAD."""
        return self._app.ws.heartbeat_settings().agent_name

    def state(self) -> State:
        """The folded ledger (phase, HEAD, the shadow or burn-in under way)."""
        return self._app.state()

    # ------------------------------------------------------------------ answering

    @property
    def router(self) -> Router:
        if self._router is None:
            from adapters.serving.router import Router

            self._router = Router(self.home, app=self._app, **self._router_options)
        return self._router

    def respond(
        self,
        query: str | Sequence[Mapping[str, Any] | Message],
        kind: str = "TRIVIAL",
        *,
        system: str | None = None,
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_tokens: int | None = None,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
        record: bool = True,
        karma: float = 0.0,
        on_text: Callable[[str], None] | None = None,
    ) -> Answer:
        """GEN_HEAD's answer to ``query`` (one user turn, or the conversation so far) as the module
        doc says (``kind``: TRIVIAL, STANDARD or CRITICAL; only TRIVIAL is mirrored), recorded
        unless ``record`` is False (``Answer.conversation_id``). ``InvalidInput`` (one line,
        nothing recorded) for a bad message or setting; ``PromptTooLong`` when the conversation
        does not fit HEAD's context. ``on_text`` gets the answer piece by piece as it is made."""
        from adapters.data import conversations
        from adapters.serving.router import KINDS

        messages = chat_messages(query, system)
        sampling = sampling_settings(temperature=temperature, top_p=top_p, max_tokens=max_tokens, stop=stop,
                                     seed=seed)
        if kind.upper() not in KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if record:
            conversations.check_karma(karma)  # a bad karma is refused before anything is answered
        router = self.router
        check_prompt(router.serve_head(), messages)
        answer = router.respond(messages, kind=kind, sampling=sampling, on_text=on_text)
        if not record:
            return answer
        stored = conversations.record(
            self._app.ws,
            [*messages, conversations.Message(role="assistant", content=answer.text)],
            cycle=router.state().cycle + 1,
            karma=karma,
        )
        return dataclasses.replace(answer, conversation_id=stored.id)

    def set_karma(self, conversation_id: str, karma: float) -> None:
        """The karma of a conversation ``respond`` recorded (or any stored one), set now: appended
        durably, the last value wins; ``InvalidInput`` for an unknown id or a karma that is not
        a finite number."""
        from adapters.data import conversations

        conversations.set_karma(self._app.ws, conversation_id, karma)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        if self._router is not None:
            self._router.close()
            self._router = None
        self._app.close()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def chat_messages(query: str | Sequence[Mapping[str, Any] | Message], system: str | None = None) -> list[Message]:
    """``query`` (one user turn, or ``{"role", "content"}`` mappings / ``Message``s) as the
    conversation HEAD answers, ``system`` first when given; ``InvalidInput`` when a message is
    malformed or the conversation does not end with the user's turn."""
    from adapters.data.conversations import Message

    if isinstance(query, str):
        raw: list[Any] = [{"role": "user", "content": query}]
    elif isinstance(query, Sequence):
        raw = list(query)
    else:
        raise InvalidInput(f"messages must be a string or a list of messages, got {type(query).__name__}")
    if system is not None:
        raw.insert(0, {"role": "system", "content": system})
    messages: list[Message] = []
    for i, item in enumerate(raw):
        role = item.get("role") if isinstance(item, Mapping) else getattr(item, "role", None)
        content = item.get("content") if isinstance(item, Mapping) else getattr(item, "content", None)
        if role not in ROLES:
            raise InvalidInput(f"messages[{i}]: role must be one of {', '.join(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise InvalidInput(f"messages[{i}]: content must be a string, got {type(content).__name__}")
        messages.append(Message(role=role, content=content))
    if not messages or messages[-1].role != "user":
        raise InvalidInput("the conversation must end with a user message (the turn HEAD answers)")
    return messages


def sampling_settings(*, temperature: float = 0.0, top_p: float = 1.0, max_tokens: int | None = None,
                      stop: str | Sequence[str] | None = None, seed: int | None = None) -> Sampling:
    """The ``Sampling`` of one answer, checked: temperature in [0, 2], top_p in (0, 1],
    max_tokens >= 1, at most ``MAX_STOP`` non-empty stop strings, an integer seed."""
    from adapters.serving.served import Sampling

    def number(name: str, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidInput(f"{name} must be a number, got {value!r}")
        return float(value)

    t = number("temperature", temperature)
    if not 0.0 <= t <= 2.0:
        raise InvalidInput(f"temperature must be between 0 and 2, got {temperature}")
    p = number("top_p", top_p)
    if not 0.0 < p <= 1.0:
        raise InvalidInput(f"top_p must be in (0, 1], got {top_p}")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise InvalidInput(f"max_tokens must be an integer >= 1, got {max_tokens!r}")
    stops = [stop] if isinstance(stop, str) else list(stop or ())
    if len(stops) > MAX_STOP or not all(isinstance(s, str) and s for s in stops):
        raise InvalidInput(f"stop must be a non-empty string or a list of at most {MAX_STOP} of them, got {stop!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InvalidInput(f"seed must be an integer, got {seed!r}")
    return Sampling(temperature=t, top_p=p, max_tokens=max_tokens, stop=tuple(stops), seed=seed)


__all__ = ["ROLES", "Agent", "PromptTooLong", "chat_messages", "check_prompt", "sampling_settings"]
