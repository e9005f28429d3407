"""What the router serves with and what it reports: a loaded generation (``Served``), its
``Completion`` and the caller's ``Answer``, the sampling parameters and prompt of every answer,
and the router's counters (``RouterStats``, with the shadow ``Comparison``s).

Both the router (``adapters.serving.router``) and what it watches while it serves
(``adapters.serving.observe``) use these; neither imports the other's privates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Answer:
    text: str
    latency_s: float  # from the call to HEAD's text (the mirrored comparison is not included)
    generation: str
    tokens: int = 0  # new tokens generated
    query_id: str = ""


@dataclass(frozen=True)
class Completion:
    text: str
    tokens: int  # new tokens generated
    finished: bool  # the answer ended (end-of-turn), not cut at max_tokens


@dataclass(frozen=True)
class Comparison:
    query_id: str
    head: str
    shadow: str
    exact: bool
    similarity: float
    token_agreement: float | None
    head_latency_s: float
    shadow_latency_s: float
    recorded: bool
    logprob: float | None = None  # HEAD's mean log-likelihood per token of the shadow's answer
    prompt_logprob: float | None = None  # ... of the query
    plausible: bool | None = None  # None: not judged (not scored, or a query HEAD does not know)


@dataclass
class RouterStats:
    queries: int = 0
    trivial: int = 0
    mirrored: int = 0
    recorded: int = 0
    loads: int = 0
    shadow_failures: int = 0
    observed: int = 0  # burn-in answers recorded (RecordAnswer)
    timed: int = 0  # burn-in answers also timed on the old HEAD
    standby_answers: int = 0  # burn-in answers given by the old HEAD because HEAD raised
    scored: int = 0  # answers of the new generation scored by the old one (shadow and burn-in)
    observe_failures: int = 0
    last_failure: str = ""
    comparisons: list[Comparison] = field(default_factory=list)  # the last ``keep`` of them


class Served:
    """One loaded generation: its Llama and its prompt renderer."""

    def __init__(self, name: str, path: Path, llm: Any):
        self.name, self.path, self.llm = name, path, llm
        self.render = prompt_renderer(llm)

    def generate(self, prompt: str, max_tokens: int) -> tuple[str, int]:
        completion = self.complete(prompt, max_tokens)
        return completion.text, completion.tokens

    def complete(self, prompt: str, max_tokens: int) -> Completion:
        out = self.llm(prompt, **generation_params(max_tokens), stopping_criteria=_bounded(self.llm, max_tokens))
        choice = out["choices"][0]
        return Completion(
            text=choice["text"],
            tokens=int(out["usage"]["completion_tokens"]),
            finished=choice.get("finish_reason") == "stop",
        )

    def close(self) -> None:
        close = getattr(self.llm, "close", None)
        if close is not None:
            close()


def _bounded(llm: Any, max_tokens: int) -> Any:
    """A stop llama-cpp-python cannot skip: its completion loop does not count ``max_tokens``
    while the text ends in an incomplete UTF-8 sequence, so a model that keeps emitting stray
    byte tokens (a random or broken one) would run to the end of the context and fail there
    (``llama_decode returned 1``). This stops a few tokens past ``max_tokens`` (the normal stop
    comes first: answers are unchanged) and before the context is full."""
    from llama_cpp import StoppingCriteriaList

    start: list[int] = []
    limit = llm.n_ctx() - 1

    def stop(ids: Any, _logits: Any) -> bool:
        if not start:
            start.append(len(ids))
        return len(ids) - start[0] >= max_tokens + 8 or len(ids) >= limit

    return StoppingCriteriaList([stop])


def generation_params(max_tokens: int) -> dict[str, Any]:
    """The sampling parameters of every answer: greedy, bounded (the bench's bare call uses them)."""
    return dict(max_tokens=max_tokens, temperature=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0)


def prompt_renderer(llm: Any) -> Callable[[str], str]:
    """query -> the prompt text, as ``adapters.data.format.render(..., add_generation_prompt=True)``."""
    from adapters.data.format import CHAT_TEMPLATE, END, ROLE_TOKENS

    metadata = getattr(llm, "metadata", None) or {}
    template = metadata.get("tokenizer.chat_template")
    if not template or template == CHAT_TEMPLATE:
        user, assistant = ROLE_TOKENS["user"], ROLE_TOKENS["assistant"]
        return lambda query: f"{user}{query}{END}{assistant}"
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])

    def raise_exception(message: str) -> None:
        raise ValueError(message)

    env.globals["raise_exception"] = raise_exception
    compiled = env.from_string(template)
    specials = {}
    for name in ("bos", "eos"):
        token_id = metadata.get(f"tokenizer.ggml.{name}_token_id")
        if token_id is not None:
            specials[f"{name}_token"] = llm.detokenize([int(token_id)], special=True).decode("utf-8", "replace")
    # as render() does: a template that writes BOS itself loses it when llama.cpp adds one
    strip = specials.get("bos_token") if str(metadata.get("tokenizer.ggml.add_bos_token", "true")).lower() == "true" else None

    def rendered(query: str) -> str:
        text = compiled.render(messages=[{"role": "user", "content": query}], add_generation_prompt=True, **specials)
        return text[len(strip):] if strip and text.startswith(strip) else text

    return rendered
