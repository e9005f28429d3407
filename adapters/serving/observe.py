"""What the router watches while it serves: the shadow's mirrored answers and the new HEAD's
burn-in answers. Both only ever append to the ledger; neither changes what the caller gets
(save one documented case, below).

Theory of operation
-------------------
**Shadow phase** (``Phase.SHADOW``): the n-th TRIVIAL query a router answers is mirrored to the
shadow generation when ``mirror_draw(seed, n) < traffic_percent / 100``; ``mirror_draw`` reads
the first 8 bytes of ``blake3("evo-shadow:<seed>:<n>")`` as a fraction of 2**64 (uniform in
[0, 1), seeded, reproducible). HEAD answers first and the caller's ``Answer`` is HEAD's (its
``latency_s`` ends when HEAD's text is ready). Then the shadow answers the same prompt, the two
are compared (``similarity.compare``: exact match, character similarity, token agreement) and
``RecordShadow`` is appended (``sync=False``: the record is the shadow's only effect). The
shadow's answer never leaves the router; a failure on the shadow's side (no gguf, a generation
error, the append refused because the phase ended meanwhile) is counted in ``stats`` and
logged. Mirroring is inline: the call returns after the comparison is recorded.

``replay(router, queries)`` answers recorded TRIVIAL queries (``trivial_queries``) by HEAD and
the shadow and records every comparison, so a shadow phase reaches ``min_samples`` without
live users.

**Burn-in** (``Phase.BURN_IN``): every answer of any kind served by HEAD while HEAD is the
generation under burn-in is observed, and ``RecordAnswer`` is appended (``sync=False``):

- ``error``: the generation raised, or its text is empty or whitespace;
- ``law_violation``: the text breaks a law: the demo world's laws (``demo_world.violations``)
  in a demo workspace, and in every workspace ``burn_in.forbidden_phrases`` (substrings,
  ignoring case);
- ``latency_ratio``: the n-th observed answer is also timed on the old HEAD (the hot standby)
  when ``latency_draw(seed, n) < latency_percent / 100`` (``blake3("evo-burn-in:<seed>:<n>")``):
  the old HEAD answers the same query, its text is discarded, and the ratio is the new HEAD's
  generation time over the old one's (None when not drawn, on an error, or when the old HEAD
  cannot answer).

When HEAD raises, the error is recorded first; then the caller gets the old HEAD's answer if it
is loaded (``Answer.generation`` names it; ``stats.standby_answers`` counts it), else the
exception propagates. An empty answer is an answer: it is returned as it is (and counted as an
error). Observing never fails the caller: a refused append (the burn-in ended meanwhile), a
config that does not load or a failed timing is counted in ``stats.observe_failures`` and
logged. The timing is inline, after HEAD's text is ready (``latency_s`` does not include it).

These functions are the router's: they use its loaded models, its ledger and its stats.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import blake3

from adapters.serving.similarity import compare
from evo_core.commands import RecordAnswer, RecordShadow
from evo_core.errors import NothingPending
from evo_core.state import BurnIn, Phase

if TYPE_CHECKING:
    from adapters.serving.router import Answer, Router, _Served
    from evo_core.config import BurnInConfig

log = logging.getLogger("adapters.serving.router")

_SCALE = float(1 << 64)


def _draw(prefix: str, seed: int, n: int) -> float:
    digest = blake3.blake3(f"{prefix}:{seed}:{n}".encode()).digest(8)
    return int.from_bytes(digest, "big") / _SCALE


def mirror_draw(seed: int, n: int) -> float:
    """The uniform in [0, 1) that decides whether the n-th TRIVIAL query is mirrored."""
    return _draw("evo-shadow", seed, n)


def latency_draw(seed: int, n: int) -> float:
    """The uniform in [0, 1) that decides whether the n-th burn-in answer is timed on the old HEAD."""
    return _draw("evo-burn-in", seed, n)


def query_digest(query: str) -> str:
    return blake3.blake3(query.encode()).hexdigest()[:12]


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


@dataclass(frozen=True)
class ReplayReport:
    generation: str  # the shadow
    head: str
    queries: int  # queries answered
    recorded: int  # comparisons appended to the ledger
    exact: int
    mean_similarity: float
    mean_token_agreement: float | None
    samples: int  # the shadow's samples in the ledger afterwards
    stopped: str = ""  # why the replay ended early ("" = it used every query or reached its goal)


# ---------------------------------------------------------------- the shadow


def mirror(router: Router, head: _Served, shadow_name: str, prompt: str, head_text: str,
           head_latency: float, query_id: str) -> Comparison | None:
    """The shadow answers ``prompt``; the comparison (never the answer) goes to the ledger."""
    try:
        shadow = router._get(shadow_name)
        t0 = time.perf_counter()
        shadow_text, _ = shadow.generate(prompt, router.max_tokens)
        shadow_latency = time.perf_counter() - t0
        tokenize = head.llm.tokenize
        match = compare(
            head_text,
            shadow_text,
            tokenize(head_text.encode(), add_bos=False, special=False),
            tokenize(shadow_text.encode(), add_bos=False, special=False),
        )
        del shadow_text
    except Exception as exc:
        router._shadow_failed(f"shadow {shadow_name}: {exc}")
        return None
    recorded = False
    try:
        outcome = router.app.execute(
            RecordShadow(exact=match.exact, similarity=match.similarity, query_id=query_id), sync=False
        )
        recorded = True
        router.stats.recorded += 1
        router._state = outcome.state
    except Exception as exc:  # e.g. NothingPending: the shadow phase ended meanwhile
        router._shadow_failed(f"recording {query_id}: {exc}")
    comparison = Comparison(
        query_id=query_id,
        head=head.name,
        shadow=shadow_name,
        exact=match.exact,
        similarity=match.similarity,
        token_agreement=match.token_agreement,
        head_latency_s=head_latency,
        shadow_latency_s=shadow_latency,
        recorded=recorded,
    )
    comparisons = router.stats.comparisons
    comparisons.append(comparison)
    if len(comparisons) > router._keep:
        del comparisons[: len(comparisons) - router._keep]
    return comparison


def replay(router: Router, queries: Iterable[str], *, until_samples: int | None = None) -> ReplayReport:
    """See ``Router.replay``."""
    state = router.state()
    if state.phase is not Phase.SHADOW or state.shadow is None:
        raise NothingPending(f"no shadow phase is running (phase {state.phase.value})")
    shadow_name = state.shadow.generation
    done = recorded = exact = 0
    sims: list[float] = []
    agreements: list[float] = []
    stopped = ""
    for i, query in enumerate(queries):
        state = router.state()
        if state.phase is not Phase.SHADOW or state.shadow is None or state.shadow.generation != shadow_name:
            stopped = f"the shadow phase ended (phase {state.phase.value})"
            break
        if until_samples is not None and state.shadow.samples >= until_samples:
            break
        head = router._serve_head()
        prompt = head.render(query)
        t0 = time.perf_counter()
        text, _ = head.generate(prompt, router.max_tokens)
        query_id = f"replay:{router.seed}:{i}:{query_digest(query)}"
        done += 1
        comparison = mirror(router, head, shadow_name, prompt, text, time.perf_counter() - t0, query_id)
        if comparison is None:
            continue
        recorded += comparison.recorded
        exact += comparison.exact
        sims.append(comparison.similarity)
        if comparison.token_agreement is not None:
            agreements.append(comparison.token_agreement)
    final = router.state()
    return ReplayReport(
        generation=shadow_name,
        head=router.head(),
        queries=done,
        recorded=recorded,
        exact=exact,
        mean_similarity=sum(sims) / len(sims) if sims else 0.0,
        mean_token_agreement=sum(agreements) / len(agreements) if agreements else None,
        samples=final.shadow.samples if final.shadow is not None and final.phase is Phase.SHADOW else 0,
        stopped=stopped,
    )


# ---------------------------------------------------------------- burn-in


class BurnInObserver:
    """One router's burn-in observation: its draw counter, the config and the workspace's laws."""

    def __init__(self, router: Router):
        self.router = router
        self.n = 0  # answers observed by this router (the latency draws' index)
        self._config: BurnInConfig | None = None
        self._config_key: tuple[int, int] | None = None
        self._demo: bool | None = None

    def config(self) -> BurnInConfig:
        """``[burn_in]`` of config.toml, validated again only when the file changed."""
        path = self.router.ws.config_path
        try:
            st = os.stat(path)
            key = (st.st_size, st.st_mtime_ns)
        except OSError:
            key = None
        if self._config is None or key != self._config_key:
            try:
                self._config = self.router.ws.load_config().burn_in
            except Exception as exc:
                from evo_core.config import BurnInConfig

                self._failed(f"config.toml: {exc} (observing with the last good [burn_in] settings)")
                if self._config is None:
                    self._config = BurnInConfig()
            self._config_key = key
        return self._config

    def demo(self) -> bool:
        """A demo workspace (``evo init --demo``): the demo world's laws apply."""
        if self._demo is None:
            from evo_core.events import GenerationRegistered

            self._demo = False
            for rec in self.router.app.store.ledger.records():
                if isinstance(rec.event, GenerationRegistered):
                    self._demo = rec.event.source == "demo"
                    break
        return self._demo

    def breaks_law(self, text: str) -> bool:
        low = text.lower()
        if any(phrase.lower() in low for phrase in self.config().forbidden_phrases):
            return True
        if self.demo():
            from adapters.data.demo_world import violations

            return bool(violations(text))
        return False

    def respond(self, head: _Served, query: str, burn: BurnIn, t0: float) -> Answer:
        """HEAD (the generation under burn-in) answers ``query``; the answer is observed."""
        from adapters.serving.router import Answer

        router = self.router
        n = self.n
        self.n += 1
        query_id = f"burn:{router.seed}:{n}:{query_digest(query)}"
        g0 = time.perf_counter()
        try:
            text, tokens = head.generate(head.render(query), router.max_tokens)
        except Exception as exc:
            self.record(RecordAnswer(error=True, law_violation=False, query_id=query_id))
            standby = router._models.get(burn.previous_head)
            if standby is None:
                raise
            log.warning("evo router: %s failed (%s); the hot standby %s answers", head.name, exc, standby.name)
            router.stats.standby_answers += 1
            text, tokens = standby.generate(standby.render(query), router.max_tokens)
            return Answer(text=text, latency_s=time.perf_counter() - t0, generation=standby.name,
                          tokens=tokens, query_id=query_id)
        head_s = time.perf_counter() - g0
        answer = Answer(text=text, latency_s=time.perf_counter() - t0, generation=head.name,
                        tokens=tokens, query_id=query_id)
        try:
            error = not text.strip()
            law = self.breaks_law(text)
            ratio = None
            if not error and latency_draw(router.seed, n) < self.config().latency_percent / 100.0:
                ratio = self.time_old(burn.previous_head, query, head_s)
        except Exception as exc:
            self._failed(f"observing {query_id}: {exc}")
            return answer
        self.record(RecordAnswer(error=error, law_violation=law, latency_ratio=ratio, query_id=query_id))
        return answer

    def time_old(self, old: str, query: str, new_s: float) -> float | None:
        """The new HEAD's generation time over the old HEAD's on the same query (its text discarded)."""
        router = self.router
        try:
            served = router._get(old)
            t0 = time.perf_counter()
            served.generate(served.render(query), router.max_tokens)
            old_s = time.perf_counter() - t0
        except Exception as exc:
            self._failed(f"timing the old HEAD {old}: {exc}")
            return None
        if old_s <= 0 or new_s <= 0:
            return None
        router.stats.timed += 1
        return new_s / old_s

    def record(self, command: RecordAnswer) -> None:
        try:
            self.router.app.execute(command, sync=False)
            self.router.stats.observed += 1
        except Exception as exc:  # e.g. NothingPending: the burn-in ended meanwhile
            self._failed(f"recording {command.query_id}: {exc}")

    def _failed(self, message: str) -> None:
        stats = self.router.stats
        stats.observe_failures += 1
        stats.last_failure = message
        log.warning("evo router: %s (the answer is unaffected)", message)
