"""What the router serves with and what it reports: a loaded generation (``Served``), its
``Completion`` and the caller's ``Answer``, the sampling parameters and prompt of every answer,
and the router's counters (``RouterStats``, with the shadow ``Comparison``s).

Both the router (``adapters.serving.router``) and what it watches while it serves
(``adapters.serving.observe``) use these; neither imports the other's privates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

# What a caller asks: one user turn (a string) or a whole conversation, as ``Message``s or
# ``{"role", "content"}`` mappings (roles system, user, assistant), ending with the user's turn.
Query = Union[str, Sequence[Any]]


@dataclass(frozen=True)
class Answer:
    text: str
    latency_s: float  # from the call to HEAD's text (the mirrored comparison is not included)
    generation: str
    tokens: int = 0  # new tokens generated
    query_id: str = ""
    finished: bool = True  # the answer ended (end-of-turn or a stop string), not cut at max_tokens
    prompt_tokens: int = 0
    conversation_id: str = ""  # set by ``Agent.respond`` when it recorded the conversation


@dataclass(frozen=True)
class Completion:
    text: str
    tokens: int  # new tokens generated
    finished: bool  # the answer ended (end-of-turn), not cut at max_tokens
    prompt_tokens: int = 0


@dataclass(frozen=True)
class Sampling:
    """How one answer is drawn. The default is evo's: greedy (what the shadow compares and the
    old HEAD scores). ``max_tokens`` None: the router's bound; ``seed`` None: the model's."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def params(self, max_tokens: int) -> dict[str, Any]:
        """llama-cpp-python's arguments: ``generation_params`` when greedy, else temperature and
        nucleus sampling alone (no top-k, min-p or repeat penalty: what the OpenAI API means)."""
        bound = self.max_tokens if self.max_tokens is not None else max_tokens
        if self.greedy:
            params = generation_params(bound)
        else:
            params = dict(max_tokens=bound, temperature=self.temperature, top_k=0, top_p=self.top_p,
                          min_p=0.0, repeat_penalty=1.0)
        if self.stop:
            params["stop"] = list(self.stop)
        if self.seed is not None:
            params["seed"] = self.seed
        return params


GREEDY = Sampling()


def query_text(query: Query) -> str:
    """The user's words of ``query``: the string, or the content of the conversation's last user
    turn (what the old HEAD's familiarity is measured on, and what a query id digests)."""
    if isinstance(query, str):
        return query
    for message in reversed(query):
        if _field(message, "role") == "user":
            return str(_field(message, "content"))
    return ""


def _field(message: Any, name: str) -> Any:
    return message[name] if isinstance(message, Mapping) else getattr(message, name)


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

    def generate(self, prompt: str, max_tokens: int, sampling: Sampling = GREEDY) -> tuple[str, int]:
        completion = self.complete(prompt, max_tokens, sampling)
        return completion.text, completion.tokens

    def complete(self, prompt: str, max_tokens: int, sampling: Sampling = GREEDY,
                 on_text: Callable[[str], None] | None = None) -> Completion:
        """``prompt`` completed as ``sampling`` says (``max_tokens``: the bound when it names
        none); ``on_text`` gets each piece of text as llama.cpp streams it."""
        params = sampling.params(max_tokens)
        stop = _bounded(self.llm, params["max_tokens"])
        if on_text is None:
            out = self.llm(prompt, **params, stopping_criteria=stop)
            choice = out["choices"][0]
            usage = out["usage"]
            return Completion(
                text=choice["text"],
                tokens=int(usage["completion_tokens"]),
                finished=choice.get("finish_reason") == "stop",
                prompt_tokens=int(usage["prompt_tokens"]),
            )
        pieces: list[str] = []
        finish = None
        for chunk in self.llm(prompt, **params, stopping_criteria=stop, stream=True):
            choice = chunk["choices"][0]
            if choice["text"]:
                pieces.append(choice["text"])
                on_text(choice["text"])
            finish = choice.get("finish_reason") or finish
        text = "".join(pieces)
        tokenize = self.llm.tokenize  # a stream reports no usage: count as llama.cpp tokenises
        return Completion(
            text=text,
            tokens=len(tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else 0,
            finished=finish == "stop",
            prompt_tokens=len(tokenize(prompt.encode("utf-8"), add_bos=True, special=True)),
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


def chat(query: Query) -> list[dict[str, str]]:
    """``query`` as the ``[{"role", "content"}]`` list a chat template reads."""
    if isinstance(query, str):
        return [{"role": "user", "content": query}]
    return [{"role": str(_field(m, "role")), "content": str(_field(m, "content"))} for m in query]


def prompt_renderer(llm: Any) -> Callable[[Query], str]:
    """query -> the prompt text, as ``adapters.data.format.render(..., add_generation_prompt=True)``."""
    from adapters.data.format import CHAT_TEMPLATE, END, ROLE_TOKENS

    metadata = getattr(llm, "metadata", None) or {}
    template = metadata.get("tokenizer.chat_template")
    if not template or template == CHAT_TEMPLATE:

        def plain(query: Query) -> str:
            turns = "".join(f"{ROLE_TOKENS[m['role']]}{m['content']}{END}" for m in chat(query))
            return turns + ROLE_TOKENS["assistant"]

        return plain
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

    def rendered(query: Query) -> str:
        text = compiled.render(messages=chat(query), add_generation_prompt=True, **specials)
        return text[len(strip):] if strip and text.startswith(strip) else text

    return rendered
