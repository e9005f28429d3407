"""The serving router: the agent's queries answered by GEN_HEAD's ``model.gguf`` (llama.cpp).

Theory of operation
-------------------
``Router(home).respond(query, kind)`` answers with HEAD as the verified fold says it
(``App.state().head``: ``adapters.runtime.history``), never by following the
``models/<agent>-GHEAD`` symlink: the link is a convenience for people and tools, and an agent
that points it at a failed candidate or outside the archive changes nothing served. A cutover
or rollback is seen by the next query (the ledger is stat'ed on every query, below).

Serving checks bytes, not links. A generation is loaded only through
``generations.open_verified``: its ``models/archive/<generation>/model.gguf``, opened without
following a symlink, must be the bytes the verified ledger recorded when it was registered or
frozen (see ``adapters.serving.generations``). The check runs when a generation is loaded (HEAD,
the shadow, the standby, or ``answer(generation=...)``), never per query: ``load_llama`` reads
the weights into memory (no mmap), so a loaded generation no longer depends on its file, and a
file swapped after the load changes nothing served. Its cost at a (re)load is a stat per
archive file when nothing changed (file digests are cached by inode, size, mtime and ctime); a
changed file is hashed again. The default loader reads the checked file through
``/proc/self/fd/<n>`` (the very inode that was hashed); a ``loader`` given to the router gets the
archive path; either way the file is confirmed unchanged after the load.

Bytes that are not the recorded ones are never served. For a shadow or standby the router
counts and logs it (``shadow_failed``) and HEAD answers as always. For HEAD it raises
``ServingError`` (one line), unless a generation it loaded and served as HEAD before (or the hot
standby) is still in memory and no rollback has revoked it: then that last verified generation
keeps answering, and ``refused`` / ``last_refusal`` count and say why (logged once per reason).
The check is retried at the next query (a stat per file: an archive restored is served again).

Generations are loaded lazily with ``load_llama`` and kept in a small LRU (``hot`` >= 2
entries). The generations in use are pinned: HEAD, the shadow during a shadow phase, and the
hot standby (the previous HEAD during burn-in, else the HEAD served before the last change); so
after a cutover the old HEAD stays loaded and a rollback swaps instantly.

The router follows the ledger cheaply: it ``stat``s ``ledger.jsonl`` on every query and folds
(``App.state()``, which reuses the EventStore's in-memory cache and folds only new records)
only when the file's size or mtime moved. The stat is taken before the fold, so a record
appended meanwhile is folded by the next query.

What the router watches while it serves lives in ``adapters.serving.observe``: during a shadow
phase it mirrors a seeded ``traffic_percent`` of the TRIVIAL queries to the shadow generation
and appends each comparison with HEAD's score of the shadow's answer (``RecordShadow``),
``replay(queries)`` does the same with recorded queries so a quiet agent still reaches
``min_samples``; during burn-in every answer of the new HEAD is observed (``RecordAnswer``:
error, law violation, for a seeded ``latency_percent`` of them the latency over the old HEAD's
on the same query, and for a seeded ``quality_percent`` the old HEAD's score of the answer).
Scores are ``adapters.serving.quality``'s mean per-token log-likelihood. The caller always gets HEAD's
answer, except when HEAD raises during burn-in and the old HEAD is hot: then the old HEAD
answers (see that module).

Generation is greedy (temperature 0, top-k 1, no repeat penalty) with at most ``max_tokens``
new tokens, unless the caller passes other ``Sampling`` (``evo serve``'s clients do: then only
greedy answers are mirrored, and the burn-in scores only greedy answers); a query is one user
turn or a whole conversation (system prompt and history); the prompt is the chat text the
model was trained on (``adapters.data.format``: the GGUF's embedded ``tokenizer.chat_template``
when it differs from evo's plain template, rendered with Jinja as transformers does; else evo's
plain template), followed by the assistant tag.
Prompt processing uses as many threads as generation (``load_llama`` sets ``n_threads_batch``).
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from adapters.runtime.app import App
from adapters.serving import observe
from adapters.serving.generations import (
    ServingError,
    VerifiedGGUF,
    find_generation,
    gguf_path,
    open_verified,
    servable,
    trivial_queries,
)
from adapters.serving.observe import ReplayReport, latency_draw, mirror_draw, quality_draw, query_digest
from adapters.serving.served import (
    GREEDY,
    Answer,
    Comparison,
    Completion,
    Query,
    RouterStats,
    Sampling,
    Served,
    generation_params,
    prompt_renderer,
    query_text,
)
from evo_core.state import Phase, State

log = logging.getLogger(__name__)

TRIVIAL = "TRIVIAL"
KINDS = ("TRIVIAL", "STANDARD", "CRITICAL")  # only TRIVIAL queries are ever mirrored


def _default_loader(path: str | os.PathLike[str], **kw: Any) -> Any:
    from adapters.serving import llama  # late: llama_cpp is imported only when a model loads

    return llama.load_llama(path, **kw)


class Router:
    """GEN_HEAD answers; during a shadow phase TRIVIAL queries are mirrored (see the module doc)."""

    def __init__(
        self,
        home: str | os.PathLike[str],
        *,
        n_threads: int | None = None,
        seed: int = 0,
        max_tokens: int = 64,
        n_ctx: int = 256,
        hot: int = 3,
        loader: Callable[..., Any] | None = None,
        keep_comparisons: int = 100,
        app: App | None = None,
    ):
        if hot < 2:
            raise ValueError(f"hot must be >= 2 (HEAD and its standby), got {hot}")
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        self._own_app = app is None  # an agent or the runner shares its App: one fold, not two
        self.app = App(Path(home)) if app is None else app
        self.ws = self.app.ws
        self._ledger = os.fspath(self.ws.ledger_path)
        self.seed = seed
        self.max_tokens = max_tokens
        self.hot = hot
        self._load_kw: dict[str, Any] = dict(n_ctx=n_ctx, n_threads=n_threads, seed=seed)
        self._loader = loader or _default_loader
        self._by_fd = loader is None  # llama.cpp reads the checked inode (see the module doc)
        self._models: OrderedDict[str, Served] = OrderedDict()
        self._ledger_key: tuple[int, int, int] | None = None
        self._state: State = State()
        self._head: str | None = None
        self._standby: str | None = None
        self._trivial = 0
        self.settings = observe.Settings(self.ws)
        self._burn_in = observe.BurnInObserver(self)
        self._keep = keep_comparisons
        self.stats = RouterStats()
        self.refused = 0  # queries HEAD could not answer with its recorded bytes (see the module doc)
        self.last_refusal = ""
        self._logged: set[str] = set()
        self._not_loaded: dict[str, str] = {}  # shadow or standby -> why the last try to load it failed

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        for served in self._models.values():
            served.close()
        self._models.clear()
        if self._own_app:
            self.app.close()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def loaded(self) -> tuple[str, ...]:
        """The generations in memory, least recently used first."""
        return tuple(self._models)

    @property
    def standby(self) -> str | None:
        return self._standby

    # ------------------------------------------------------------------ following the ledger

    def state(self) -> State:
        """The folded ledger, re-folded only when ``ledger.jsonl`` changed since the last look."""
        try:
            st = os.stat(self._ledger)
            key = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            key = None
        if key is None or key != self._ledger_key:
            self._state = self.app.state()
            self._ledger_key = key
            self._on_ledger_moved(self._state)
        return self._state

    def _on_ledger_moved(self, state: State) -> None:
        """Keep what the phase needs hot: the shadow, and the previous HEAD during burn-in."""
        wanted = []
        if state.phase is Phase.SHADOW and state.shadow is not None:
            wanted.append(state.shadow.generation)
        if state.phase is Phase.BURN_IN and state.burn_in is not None:
            self._standby = state.burn_in.previous_head
            wanted.append(state.burn_in.previous_head)
        for name in wanted:
            if name not in self._models:
                try:
                    self.model(name)
                except Exception as exc:  # a standby or shadow that cannot load never blocks HEAD
                    message = f"loading {name}: {exc}"
                    if self._not_loaded.get(name) != message:  # once per reason, not per heartbeat
                        self._not_loaded[name] = message
                        self.shadow_failed(message)
                else:
                    self._not_loaded.pop(name, None)

    def head(self) -> str:
        """HEAD as the verified fold says it (never the GEN_HEAD symlink)."""
        head = self.state().head
        if head is None:
            raise ServingError(f"{self.ws.home}: no HEAD generation (run `evo init`)")
        return head

    # ------------------------------------------------------------------ models

    def model(self, name: str) -> Served:
        """The generation ``name``, loaded now if it is not in memory (least recently used
        evicted), only if its model.gguf is the recorded bytes; else ``ServingError``."""
        served = self._models.get(name)
        if served is not None:
            self._models.move_to_end(name)
            return served
        with open_verified(self.ws, self.state(), name) as checked:
            llm = self._load(checked)
        served = Served(name, checked.path, llm)
        self.stats.loads += 1
        self._models[name] = served
        self._evict()
        return served

    def _load(self, checked: VerifiedGGUF) -> Any:
        llm = self._loader(checked.fd_path if self._by_fd else checked.path, **self._load_kw)
        try:
            checked.confirm()
        except ServingError:
            close = getattr(llm, "close", None)
            if close is not None:
                close()
            raise
        return llm

    def loaded_model(self, name: str) -> Served | None:
        """The generation ``name`` if it is in memory (never loads it)."""
        return self._models.get(name)

    def _evict(self) -> None:
        pinned = {self._head, self._standby}
        shadow = self._state.shadow
        if self._state.phase is Phase.SHADOW and shadow is not None:
            pinned.add(shadow.generation)
        for name in list(self._models):
            if len(self._models) <= self.hot:
                return
            if name not in pinned:
                self._models.pop(name).close()

    def serve_head(self) -> Served:
        """HEAD, loaded; the HEAD served before it becomes the hot standby. HEAD's bytes not the
        recorded ones: the last verified generation still in memory, else ``ServingError``."""
        name = self.head()
        if name == self._head and name in self._models:
            return self.model(name)
        try:
            served = self.model(name)
        except ServingError as exc:
            fallback = self._last_verified(name)
            if fallback is None:
                raise
            self._refuse(str(exc), fallback)
            return fallback
        if name != self._head:
            if self._head is not None and self._head in self._models:
                self._standby = self._head  # the HEAD we served before: keep it hot
            self._head = name
        return served

    def _last_verified(self, head: str) -> Served | None:
        """The generation this router served as HEAD before (else its hot standby), if it is in
        memory, is not ``head`` and no rollback revoked it."""
        revoked = set(self._state.revoked)
        for name in (self._head, self._standby):
            if name is not None and name != head and name not in revoked and name in self._models:
                return self._models[name]
        return None

    def _refuse(self, message: str, fallback: Served) -> None:
        self.refused += 1
        self.last_refusal = message
        if message not in self._logged:
            self._logged.add(message)
            log.error("evo router: HEAD not served: %s; %s answers (the last verified generation)", message,
                      fallback.name)

    # ------------------------------------------------------------------ answering

    def answer(self, query: Query, generation: str | None = None, sampling: Sampling = GREEDY,
               on_text: Callable[[str], None] | None = None) -> Answer:
        """One answer from ``generation`` (default HEAD); never mirrored, never recorded."""
        t0 = time.perf_counter()
        served = self.model(generation) if generation is not None else self.serve_head()
        done = served.complete(served.render(query), self.max_tokens, sampling, on_text)
        return Answer(text=done.text, latency_s=time.perf_counter() - t0, generation=served.name, tokens=done.tokens,
                      finished=done.finished, prompt_tokens=done.prompt_tokens)

    def respond(self, query: Query, kind: str = TRIVIAL, sampling: Sampling = GREEDY,
                on_text: Callable[[str], None] | None = None) -> Answer:
        """HEAD's answer; a TRIVIAL query may be mirrored to the shadow (never returned), and
        during burn-in the new HEAD's answer is observed (``adapters.serving.observe``).

        ``query`` is one user turn or a whole conversation (``served.Query``); ``sampling`` how
        HEAD draws its answer (default greedy). Only greedy answers are mirrored: the shadow
        answers the same prompt with the same settings, and comparing two random draws would
        measure the dice. ``on_text`` gets HEAD's text piece by piece as it is generated."""
        t0 = time.perf_counter()
        state = self.state()
        head = self.serve_head()
        self.stats.queries += 1
        mirror_to = None
        query_id = ""
        if kind.upper() == TRIVIAL:
            n = self._trivial
            self._trivial += 1
            self.stats.trivial += 1
            shadow = state.shadow
            if state.phase is Phase.SHADOW and shadow is not None and shadow.generation != head.name:
                query_id = f"{self.seed}:{n}:{query_digest(query_text(query))}"
                if sampling.greedy and mirror_draw(self.seed, n) < shadow.traffic_percent / 100.0:
                    mirror_to = shadow.generation
        burn = state.burn_in
        if state.phase is Phase.BURN_IN and burn is not None and burn.generation == head.name:
            return self._burn_in.respond(head, query, burn, t0, sampling, on_text)
        prompt = head.render(query)
        done = head.complete(prompt, self.max_tokens, sampling, on_text)
        latency = time.perf_counter() - t0
        answer = Answer(text=done.text, latency_s=latency, generation=head.name, tokens=done.tokens,
                        query_id=query_id, finished=done.finished, prompt_tokens=done.prompt_tokens)
        if mirror_to is not None:
            self.stats.mirrored += 1
            observe.mirror(self, head, mirror_to, prompt, done.text, latency, query_id, query_text(query), sampling)
        return answer

    def shadow_failed(self, message: str) -> None:
        """Count and log a failure on the shadow's side (HEAD's answer is never affected)."""
        self.stats.shadow_failures += 1
        self.stats.last_failure = message
        log.warning("evo router: %s (HEAD's answer is unaffected)", message)

    def remember(self, comparison: Comparison) -> None:
        """Keep ``comparison`` in ``stats.comparisons`` (the last ``keep_comparisons`` of them)."""
        comparisons = self.stats.comparisons
        comparisons.append(comparison)
        if len(comparisons) > self._keep:
            del comparisons[: len(comparisons) - self._keep]

    def note_state(self, state: State) -> None:
        """The state an append through this router returned: what the router pins until it
        next looks at the ledger."""
        self._state = state

    # ------------------------------------------------------------------ replay

    def replay(self, queries: Iterable[str], *, until_samples: int | None = None,
               until_judged: int | None = None) -> ReplayReport:
        """Answer recorded TRIVIAL queries as shadow traffic: every one is mirrored and recorded.

        Stops early when the shadow phase ends or when the ledger holds ``until_samples``
        comparisons for the shadow and ``until_judged`` answers judged for quality (either
        alone when the other is None). Raises ``NothingPending`` when no shadow phase is running.
        """
        return observe.replay(self, queries, until_samples=until_samples, until_judged=until_judged)


__all__ = [
    "KINDS",
    "TRIVIAL",
    "Answer",
    "Comparison",
    "Completion",
    "GREEDY",
    "Query",
    "Sampling",
    "ReplayReport",
    "Router",
    "RouterStats",
    "Served",
    "ServingError",
    "find_generation",
    "generation_params",
    "gguf_path",
    "latency_draw",
    "mirror_draw",
    "prompt_renderer",
    "quality_draw",
    "query_text",
    "servable",
    "trivial_queries",
]
