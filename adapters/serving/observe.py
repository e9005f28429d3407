"""What the router watches while it serves: the shadow's mirrored answers and the new HEAD's
burn-in answers. Both only ever append to the ledger; neither changes what the caller gets
(save one documented case, below).

Theory of operation
-------------------
**Shadow phase** (``Phase.SHADOW``): the n-th TRIVIAL query a router answers is mirrored to the
shadow generation when ``mirror_draw(seed, n) < traffic_percent / 100`` and HEAD's answer is
greedy (the shadow answers with the same settings; two random draws would measure the dice);
``mirror_draw`` reads the first 8 bytes of ``blake3("evo-shadow:<seed>:<n>")`` as a fraction of
2**64 (uniform in [0, 1), seeded, reproducible). HEAD answers first and the caller's
``Answer`` is HEAD's (its ``latency_s`` ends when HEAD's text is ready). Then the shadow answers the same prompt, the two
are compared (``similarity.compare``: exact match, character similarity, token agreement) and
``RecordShadow`` is appended (``sync=False``: the record is the shadow's only effect). The
shadow's answer never leaves the router; a failure on the shadow's side (no gguf, a generation
error, the append refused because the phase ended meanwhile) is counted in ``stats`` and
logged. Mirroring is inline: the call returns after the comparison is recorded.

Each mirrored answer is also **scored** by HEAD (the old generation), ``quality.score``: HEAD's
mean log-likelihood per token of the query (``prompt_logprob``: does HEAD know the question?)
and of the shadow's answer (``logprob``), recorded with the comparison and ``[shadow]``'s
``prompt_floor`` and ``logprob_floor``; the core judges them (``evo_core.decide_rollout``: the
shadow's quality is the share of plausible answers among those to queries HEAD knows). A
scoring failure is counted in ``stats.shadow_failures`` and the comparison is recorded unscored.

``replay(router, queries)`` answers recorded TRIVIAL queries (``trivial_queries``) by HEAD and
the shadow and records every comparison, so a shadow phase reaches ``min_samples`` without
live users.

**Burn-in** (``Phase.BURN_IN``): every answer of any kind served by HEAD while HEAD is the
generation under burn-in is observed, and ``RecordAnswer`` is appended (``sync=False``):

- ``error``: the generation raised, or its text is empty or whitespace;
- ``law_violation``: the text breaks a law: the laws config.toml configures (``[[laws]]``;
  none configured in a demo workspace: the demo world's), and in every workspace
  ``burn_in.forbidden_phrases`` (substrings, ignoring case);
- ``latency_ratio``: the n-th observed answer is also timed on the old HEAD (the hot standby)
  when ``latency_draw(seed, n) < latency_percent / 100`` (``blake3("evo-burn-in:<seed>:<n>")``):
  the old HEAD answers the same query, its text is discarded, and the ratio is the new HEAD's
  generation time over the old one's (None when not drawn, on an error, or when the old HEAD
  cannot answer);
- ``prompt_logprob``, ``logprob``: for a seeded ``quality_percent`` of the greedy answers that
  are not errors (``quality_draw(seed, n)``, ``blake3("evo-quality:<seed>:<n>")``; a sampled
  answer, ``Sampling.temperature > 0``, is never scored), the old HEAD's scores
  of the query and of the new HEAD's answer (``quality.score``), recorded with ``[burn_in]``'s
  floors (None when not drawn or when the old HEAD cannot score). The burn-in fails when too
  few of the judged answers are plausible.

When HEAD raises, the error is recorded first; then the caller gets the old HEAD's answer if it
is loaded (``Answer.generation`` names it; ``stats.standby_answers`` counts it), else the
exception propagates. An empty answer is an answer: it is returned as it is (and counted as an
error). Observing never fails the caller: a refused append (the burn-in ended meanwhile), a
config that does not load or a failed timing is counted in ``stats.observe_failures`` and
logged. The timing and the scoring are inline, after HEAD's text is ready (``latency_s`` does not
include them).

These functions are the router's: they use its loaded models, its ledger and its stats, through
the public side of it that ``Host`` names (``adapters.serving.router.Router`` is the one host).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import blake3

from adapters.serving import quality
from adapters.serving.served import GREEDY, Answer, Comparison, Completion, Query, RouterStats, Sampling, Served, query_text
from adapters.serving.similarity import compare
from evo_core.commands import RecordAnswer, RecordShadow
from evo_core.decide_rollout import judged, plausible
from evo_core.errors import NothingPending
from evo_core.state import BurnIn, Phase, State

if TYPE_CHECKING:
    from adapters.runtime.app import App
    from adapters.runtime.workspace import Workspace
    from evo_core.config import BurnInConfig, EvoConfig, ShadowConfig

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


def quality_draw(seed: int, n: int) -> float:
    """The uniform in [0, 1) that decides whether the n-th burn-in answer is scored by the old HEAD."""
    return _draw("evo-quality", seed, n)


def query_digest(query: str) -> str:
    return blake3.blake3(query.encode()).hexdigest()[:12]


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
    scored: int = 0  # comparisons whose shadow answer HEAD scored
    judged: int = 0  # of which answers to queries HEAD knows
    plausible: int = 0  # of which plausible
    mean_logprob: float | None = None  # over the judged answers


# ---------------------------------------------------------------- settings


class Settings:
    """config.toml of the router's workspace, validated again only when the file changed; a
    file that does not validate leaves the last good settings (the defaults at first)."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self._config: EvoConfig | None = None  # the last good one
        self._bad: tuple[int, int] | None = None  # the file that did not validate, told once

    def get(self, failed: Callable[[str], None]) -> EvoConfig:
        try:
            self._config = self.ws.config()  # validated again only when the file changed
            self._bad = None
        except Exception as exc:
            try:
                st = os.stat(self.ws.config_path)
                key: tuple[int, int] = (st.st_size, st.st_mtime_ns)
            except OSError:
                key = (-1, -1)
            if key != self._bad:
                failed(f"config.toml: {exc} (observing with the last good settings)")
                self._bad = key
            if self._config is None:
                from evo_core.config import EvoConfig

                self._config = EvoConfig()
        return self._config


class Host(Protocol):
    """What observing needs of the router that serves (``adapters.serving.router.Router``)."""

    app: App
    seed: int
    max_tokens: int
    stats: RouterStats
    settings: Settings

    def state(self) -> State: ...

    def head(self) -> str: ...

    def serve_head(self) -> Served: ...

    def model(self, name: str) -> Served: ...

    def loaded_model(self, name: str) -> Served | None: ...

    def shadow_failed(self, message: str) -> None: ...

    def remember(self, comparison: Comparison) -> None: ...

    def note_state(self, state: State) -> None: ...


# ---------------------------------------------------------------- the shadow


_UNSCORED = quality.Score(logprob=None, prompt_logprob=None, tokens=0)


def _score(old: Served, prompt: str, query: str, answer: Completion) -> quality.Score:
    return quality.score(old.llm, prompt, query, answer.text, answer.finished)


def _verdict(s: quality.Score, prompt_floor: float, logprob_floor: float) -> bool | None:
    """What the core will record (``evo_core.decide_rollout``), for the router's own report."""
    if s.logprob is None or s.prompt_logprob is None or not judged(s.prompt_logprob, prompt_floor):
        return None
    return plausible(s.logprob, logprob_floor)


def mirror(router: Host, head: Served, shadow_name: str, prompt: str, head_text: str,
           head_latency: float, query_id: str, query: str = "", sampling: Sampling = GREEDY) -> Comparison | None:
    """The shadow answers ``prompt`` (with HEAD's ``sampling``); the comparison and HEAD's score
    of the shadow's answer (never the answer) go to the ledger."""
    try:
        shadow = router.model(shadow_name)
        t0 = time.perf_counter()
        done = shadow.complete(prompt, router.max_tokens, sampling)
        shadow_latency = time.perf_counter() - t0
        tokenize = head.llm.tokenize
        match = compare(
            head_text,
            done.text,
            tokenize(head_text.encode(), add_bos=False, special=False),
            tokenize(done.text.encode(), add_bos=False, special=False),
        )
    except Exception as exc:
        router.shadow_failed(f"shadow {shadow_name}: {exc}")
        return None
    scored, verdict, floors = _UNSCORED, None, {}
    try:
        config: ShadowConfig = router.settings.get(router.shadow_failed).shadow
        scored = _score(head, prompt, query, done)
        if scored.logprob is not None:
            floors = dict(logprob_floor=config.logprob_floor, prompt_floor=config.prompt_floor)
            verdict = _verdict(scored, config.prompt_floor, config.logprob_floor)
            router.stats.scored += 1
    except Exception as exc:
        scored, verdict, floors = _UNSCORED, None, {}
        router.shadow_failed(f"scoring {query_id} by {head.name}: {exc}")
    del done
    recorded = False
    try:
        outcome = router.app.execute(
            RecordShadow(exact=match.exact, similarity=match.similarity, query_id=query_id,
                         logprob=scored.logprob, prompt_logprob=scored.prompt_logprob, **floors),
            sync=False,
        )
        recorded = True
        router.stats.recorded += 1
        router.note_state(outcome.state)
    except Exception as exc:  # e.g. NothingPending: the shadow phase ended meanwhile
        router.shadow_failed(f"recording {query_id}: {exc}")
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
        logprob=scored.logprob,
        prompt_logprob=scored.prompt_logprob,
        plausible=verdict,
    )
    router.remember(comparison)
    return comparison


def replay(router: Host, queries: Iterable[str], *, until_samples: int | None = None,
           until_judged: int | None = None) -> ReplayReport:
    """See ``Router.replay``."""
    state = router.state()
    if state.phase is not Phase.SHADOW or state.shadow is None:
        raise NothingPending(f"no shadow phase is running (phase {state.phase.value})")
    shadow_name = state.shadow.generation
    done = recorded = exact = 0
    sims: list[float] = []
    agreements: list[float] = []
    logprobs: list[float] = []
    scored = good = 0
    stopped = ""
    for i, query in enumerate(queries):
        state = router.state()
        if state.phase is not Phase.SHADOW or state.shadow is None or state.shadow.generation != shadow_name:
            stopped = f"the shadow phase ended (phase {state.phase.value})"
            break
        if (until_samples is not None or until_judged is not None) and (
            state.shadow.samples >= (until_samples or 0) and state.shadow.judged >= (until_judged or 0)
        ):
            break
        head = router.serve_head()
        prompt = head.render(query)
        t0 = time.perf_counter()
        text, _ = head.generate(prompt, router.max_tokens)
        query_id = f"replay:{router.seed}:{i}:{query_digest(query)}"
        done += 1
        comparison = mirror(router, head, shadow_name, prompt, text, time.perf_counter() - t0, query_id, query)
        if comparison is None:
            continue
        recorded += comparison.recorded
        exact += comparison.exact
        sims.append(comparison.similarity)
        if comparison.token_agreement is not None:
            agreements.append(comparison.token_agreement)
        scored += comparison.logprob is not None
        if comparison.logprob is not None and comparison.plausible is not None:
            logprobs.append(comparison.logprob)
            good += comparison.plausible
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
        scored=scored,
        judged=len(logprobs),
        plausible=good,
        mean_logprob=sum(logprobs) / len(logprobs) if logprobs else None,
    )


# ---------------------------------------------------------------- burn-in


class BurnInObserver:
    """One router's burn-in observation: its draw counter, the config and the workspace's laws."""

    def __init__(self, router: Host):
        self.router = router
        self.n = 0  # answers observed by this router (the latency and quality draws' index)
        self._demo: bool | None = None

    def config(self) -> BurnInConfig:
        """``[burn_in]`` of config.toml (``Settings``: validated again only when the file changed)."""
        return self.router.settings.get(self._failed).burn_in

    def demo(self) -> bool:
        """A demo workspace (``evo init --demo``): the demo world's laws apply."""
        if self._demo is None:
            self._demo = self.router.app.state().genesis_source == "demo"
        return self._demo

    def breaks_law(self, text: str) -> bool:
        from evo_core.config import broken_laws

        low = text.lower()
        if any(phrase.lower() in low for phrase in self.config().forbidden_phrases):
            return True
        laws = self.router.settings.get(self._failed).laws
        if laws:
            return bool(broken_laws(laws, text))
        if self.demo():
            from adapters.data.demo_world import violations

            return bool(violations(text))
        return False

    def respond(self, head: Served, query: Query, burn: BurnIn, t0: float, sampling: Sampling = GREEDY,
                on_text: Callable[[str], None] | None = None) -> Answer:
        """HEAD (the generation under burn-in) answers ``query``; the answer is observed (a
        sampled one is not scored for quality: the old HEAD's likelihood of a random draw
        measures the temperature, not the generation)."""
        router = self.router
        n = self.n
        self.n += 1
        words = query_text(query)
        query_id = f"burn:{router.seed}:{n}:{query_digest(words)}"
        g0 = time.perf_counter()
        try:
            done = head.complete(head.render(query), router.max_tokens, sampling, on_text)
            text, tokens = done.text, done.tokens
        except Exception as exc:
            self.record(RecordAnswer(error=True, law_violation=False, query_id=query_id))
            standby = router.loaded_model(burn.previous_head)
            if standby is None:
                raise
            log.warning("evo router: %s failed (%s); the hot standby %s answers", head.name, exc, standby.name)
            router.stats.standby_answers += 1
            done = standby.complete(standby.render(query), router.max_tokens, sampling)
            if on_text is not None and done.text:
                on_text(done.text)
            return Answer(text=done.text, latency_s=time.perf_counter() - t0, generation=standby.name,
                          tokens=done.tokens, query_id=query_id, finished=done.finished,
                          prompt_tokens=done.prompt_tokens)
        head_s = time.perf_counter() - g0
        answer = Answer(text=text, latency_s=time.perf_counter() - t0, generation=head.name,
                        tokens=tokens, query_id=query_id, finished=done.finished, prompt_tokens=done.prompt_tokens)
        try:
            config = self.config()
            error = not text.strip()
            law = self.breaks_law(text)
            ratio, scored = None, None
            if not error and latency_draw(router.seed, n) < config.latency_percent / 100.0:
                ratio = self.time_old(burn.previous_head, query, head_s, sampling)
            if not error and sampling.greedy and quality_draw(router.seed, n) < config.quality_percent / 100.0:
                scored = self.score_old(burn.previous_head, query, done)
        except Exception as exc:
            self._failed(f"observing {query_id}: {exc}")
            return answer
        scores: dict[str, float | None] = {}
        if scored is not None and scored.logprob is not None:
            scores = dict(logprob=scored.logprob, prompt_logprob=scored.prompt_logprob,
                          logprob_floor=config.logprob_floor, prompt_floor=config.prompt_floor)
        self.record(RecordAnswer(error=error, law_violation=law, latency_ratio=ratio, query_id=query_id, **scores))
        return answer

    def score_old(self, old: str, query: Query, answer: Completion) -> quality.Score | None:
        """The old HEAD's scores of ``query`` and of the new HEAD's answer to it."""
        try:
            served = self.router.model(old)
            scored = _score(served, served.render(query), query_text(query), answer)
        except Exception as exc:
            self._failed(f"scoring by the old HEAD {old}: {exc}")
            return None
        if scored.logprob is not None:
            self.router.stats.scored += 1
        return scored

    def time_old(self, old: str, query: Query, new_s: float, sampling: Sampling = GREEDY) -> float | None:
        """The new HEAD's generation time over the old HEAD's on the same query (its text discarded)."""
        router = self.router
        try:
            served = router.model(old)
            t0 = time.perf_counter()
            served.generate(served.render(query), router.max_tokens, sampling)
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
