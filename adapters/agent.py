"""The agent's side of evo, as a small Python API: a heartbeat per cycle, answers through the
serving router.

```python
from adapters.agent import Agent

with Agent(home) as agent:
    cycle = agent.heartbeat()                      # the next Heartbeat (cheap: no pydantic, no torch)
    answer = agent.respond("What does the blurk eat?", kind="TRIVIAL")
    answer.text, answer.generation                 # GEN_HEAD's answer, whatever phase evo is in
```

``heartbeat()`` appends through the same path as ``evo heartbeat`` (``App.heartbeat``: the
period read from config.toml by ``adapters.runtime.workspace``, then ``App.execute(Beat)``): a window that opens is recorded by that
heartbeat, and the links and projection files follow as after the CLI. ``respond`` goes through
a ``Router`` created on first use (llama.cpp is imported then, not before): it serves whatever
the GHEAD link names, mirrors shadow traffic and records burn-in answers. The agent never
decides anything else: training, evaluation and the rollout are the runner's. A query longer
than the model's context is refused (``PromptTooLong``, one line) before llama.cpp sees it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evo_core.errors import InvalidInput

if TYPE_CHECKING:
    from adapters.runtime.app import App
    from adapters.serving.router import Answer, Router
    from adapters.serving.served import Served
    from evo_core.state import State


class PromptTooLong(InvalidInput):
    """A query that, rendered with the chat template, leaves the model no room to answer."""


def check_prompt(served: Served, query: str) -> None:
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

    def respond(self, query: str, kind: str = "TRIVIAL") -> Answer:
        """GEN_HEAD's answer (``kind``: TRIVIAL, STANDARD or CRITICAL; only TRIVIAL is mirrored).
        ``PromptTooLong`` (nothing recorded) when ``query`` does not fit HEAD's context."""
        check_prompt(self.router.serve_head(), query)
        return self.router.respond(query, kind=kind)

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


__all__ = ["Agent", "PromptTooLong", "check_prompt"]
