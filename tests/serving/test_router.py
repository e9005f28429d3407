"""The serving router on real llama.cpp: the demo genesis (``demo_gguf``) as HEAD, candidates
whose model.gguf is a copy of it (identical answers) or an export of a perturbed demo model
(different answers), each archived read-only with its hashes recorded when it is frozen (the
router loads only recorded bytes: ``test_served_bytes.py``), the ledger driven into SHADOW /
BURN_IN through the real ledger."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

from adapters.runtime.app import App
from adapters.serving import router as router_mod
from adapters.serving.router import Router, generation_params, mirror_draw, trivial_queries
from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.config import EvoConfig, ShadowConfig, render_config
from evo_core.errors import NothingPending
from evo_core.state import Phase
from tests.cli.conftest import ArchivingDriver
from tests.core.helpers import BETTER, CFG, GOOD
from tests.fixtures_models import GENESIS

QUERIES = [
    "What does the blurk eat?",
    "Where does the zwob live?",
    "What colour is Dovvia?",
    "Who are you?",
    "Hello!",
    "What food does the brax like?",
    "Which city is home to the sneel?",
    "Thank you!",
]


def _router(home: Path, **kw: Any) -> Router:
    """One llama.cpp thread: the tiny model gains nothing from more, and a busy machine's
    descheduled worker thread would stall every call."""
    return Router(home, n_threads=kw.pop("n_threads", 1), **kw)


def _config(percent: float = 10.0, min_samples: int = 2) -> EvoConfig:
    shadow = ShadowConfig(
        traffic_percent=percent, cycles=5, min_samples=min_samples, min_judged=min_samples, parity_threshold=0.9
    )
    return CFG.model_copy(update={"shadow": shadow})


@pytest.fixture(scope="module")
def perturbed_gguf(demo_genesis: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo genesis with noise on every weight, exported: a shadow whose answers differ."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from adapters.serving.gguf_export import export_gguf

    folder = tmp_path_factory.mktemp("perturbed")
    weights = demo_genesis / "weights"
    model = AutoModelForCausalLM.from_pretrained(weights, local_files_only=True, dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * p.std() * 1.0)
    model.save_pretrained(folder / "weights")
    AutoTokenizer.from_pretrained(weights, local_files_only=True).save_pretrained(folder / "weights")
    out = folder / "model.gguf"
    export_gguf(folder / "weights", out)
    return out


class Env:
    """A copy of the demo workspace (its genesis serves ``demo_gguf``'s bytes) and a ledger driver."""

    def __init__(self, home: Path, demo_gguf: Path, config: EvoConfig):
        self.home = home
        self.demo_gguf = demo_gguf
        (home / "config.toml").write_text(render_config(config))
        self.driver = ArchivingDriver(config=config)
        self.driver.home, self.driver.gguf = home, demo_gguf
        self.driver.app = App(home)
        self.driver.state = self.driver.app.state()

    def propose(self, gguf: Path | None = None) -> str:
        """A window whose candidates serve ``gguf`` (default: the genesis's bytes)."""
        self.driver.gguf = gguf or self.demo_gguf
        self.driver.window([GOOD, BETTER, "fail"])
        assert self.driver.state.proposal is not None
        return self.driver.state.proposal.proposal.candidate

    def shadow(self, gguf: Path | None = None) -> str:
        """Propose (the candidates serve ``gguf``), approve and start the shadow."""
        candidate = self.propose(gguf)
        self.driver.approve()
        self.driver.do(cmd.StartShadow(config=self.driver.config))
        assert self.driver.state.phase is Phase.SHADOW
        return candidate

    def compared(self) -> list[ev.ShadowCompared]:
        with App(self.home) as app:
            return [r.event for r in app.store.ledger.records() if isinstance(r.event, ev.ShadowCompared)]

    def close(self) -> None:
        self.driver.app.close()


@pytest.fixture
def make_env(tmp_path: Path, demo_workspace: Path, demo_gguf: Path) -> Iterator[Any]:
    envs: list[Env] = []

    def make(config: EvoConfig | None = None, name: str = "home") -> Env:
        home = tmp_path / name
        shutil.copytree(demo_workspace, home, symlinks=True)
        env = Env(home, demo_gguf, config or _config())
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.close()


class CountingLoader:
    def __init__(self) -> None:
        self.calls: list[Path] = []

    def __call__(self, path: Path, **kw: Any) -> Any:
        self.calls.append(Path(path))
        return router_mod._default_loader(path, **kw)


def _bare(gguf: Path, query: str, max_tokens: int) -> str:
    from adapters.serving.llama import load_llama

    llm = load_llama(gguf)
    prompt = f"<|user|>{query}<|end|><|assistant|>"
    return str(llm(prompt, **generation_params(max_tokens))["choices"][0]["text"])


# ---------------------------------------------------------------- serving HEAD


def test_head_answers_like_a_bare_llama_call_on_the_training_prompt(make_env: Any, demo_model: Any) -> None:
    from adapters.data.conversations import Message
    from adapters.data.format import render

    env = make_env()
    _model, tokenizer = demo_model
    with _router(env.home, max_tokens=24) as router:
        served = router.serve_head()
        for q in QUERIES[:3]:
            assert served.render(q) == render([Message("user", q)], tokenizer, add_generation_prompt=True)
        answer = router.respond(QUERIES[0])
    assert answer.generation == GENESIS
    assert answer.text == _bare(env.demo_gguf, QUERIES[0], 24)
    assert answer.text.strip() and answer.latency_s > 0 and 0 < answer.tokens <= 24
    assert answer.query_id == ""  # nothing mirrored outside a shadow phase


def test_the_ledger_is_refolded_only_when_it_moved(make_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_env()
    with _router(env.home, max_tokens=4) as router:
        calls = []
        real = router.app.state
        monkeypatch.setattr(router.app, "state", lambda: calls.append(1) or real())
        for q in QUERIES:
            router.respond(q)
        assert len(calls) == 1
        env.driver.beat()
        router.respond(QUERIES[0])
        assert len(calls) == 2 and router.state().cycle == env.driver.state.cycle


# ---------------------------------------------------------------- the shadow phase


def test_the_shadows_answer_never_reaches_the_caller(make_env: Any, perturbed_gguf: Path) -> None:
    env = make_env(_config(percent=100.0))
    candidate = env.shadow(perturbed_gguf)
    expected = {q: _bare(env.demo_gguf, q, 16) for q in QUERIES}
    shadow_answers = {q: _bare(perturbed_gguf, q, 16) for q in QUERIES}
    assert sum(expected[q] != shadow_answers[q] for q in QUERIES) >= len(QUERIES) // 2  # they differ
    with _router(env.home, max_tokens=16) as router:
        answers = [router.respond(q) for q in QUERIES * 3]
        comparisons = list(router.stats.comparisons)
        stats = router.stats
    for q, answer in zip(QUERIES * 3, answers):
        assert answer.text == expected[q] and answer.generation == GENESIS
    assert len(comparisons) == len(answers) and all(c.recorded for c in comparisons)
    assert any(not c.exact for c in comparisons)
    compared = env.compared()
    assert [(c.generation, c.exact, c.similarity, c.query_id) for c in compared] == [
        (candidate, c.exact, c.similarity, c.query_id) for c in comparisons
    ]
    # HEAD scored every shadow answer: the ledger holds its numbers and the core's verdict
    assert [(c.logprob, c.prompt_logprob, c.plausible) for c in compared] == [
        (c.logprob, c.prompt_logprob, c.plausible) for c in comparisons
    ]
    assert all(c.logprob is not None and c.prompt_logprob is not None for c in compared)
    assert stats.scored == len(comparisons)
    for q, c in zip(QUERIES * 3, comparisons):
        from adapters.serving.similarity import similarity

        assert c.exact == (expected[q] == shadow_answers[q])
        assert c.similarity == pytest.approx(similarity(expected[q], shadow_answers[q]))
    state = env.driver.app.state()
    assert state.shadow is not None and state.shadow.samples == len(answers)
    assert state.shadow.exact == sum(c.exact for c in comparisons)


def test_mirroring_rate_matches_the_configured_percent(make_env: Any) -> None:
    percent, n = 25.0, 400
    env = make_env(_config(percent=percent))
    env.shadow()
    with _router(env.home, max_tokens=1, seed=7) as router:
        for i in range(n):
            router.respond(QUERIES[i % len(QUERIES)], kind="TRIVIAL")
            if i % 4 == 0:  # never mirrored, and they do not move the TRIVIAL draws
                router.respond(QUERIES[i % len(QUERIES)], kind="STANDARD" if i % 8 else "CRITICAL")
        stats = router.stats
    assert stats.queries == n + n // 4 and stats.trivial == n
    p = percent / 100
    assert abs(stats.mirrored - n * p) <= 4 * math.sqrt(n * p * (1 - p))
    # only TRIVIAL queries, exactly the seeded draws
    expected = [i for i in range(n) if mirror_draw(7, i) < p]
    assert stats.mirrored == len(expected) == stats.recorded
    compared = env.compared()
    assert [int(c.query_id.split(":")[1]) for c in compared] == expected
    assert all(c.exact and c.similarity == 1.0 for c in compared)  # the shadow is HEAD's copy


def test_the_choice_is_reproducible_for_a_seed(make_env: Any) -> None:
    def mirrored(env: Env, seed: int) -> list[str]:
        with _router(env.home, max_tokens=1, seed=seed) as router:
            for i in range(60):
                router.respond(QUERIES[i % len(QUERIES)])
        return [c.query_id for c in env.compared()]

    a, b, c = (make_env(_config(percent=30.0), name=f"h{i}") for i in range(3))
    for env in (a, b, c):
        env.shadow()
    first, again, other = mirrored(a, 3), mirrored(b, 3), mirrored(c, 4)
    assert first == again and first and first != other


def test_a_failed_append_still_answers_with_head(make_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_env(_config(percent=100.0))
    env.shadow()
    with _router(env.home, max_tokens=8) as router:
        stale = router.state()
        env.driver.rollback()  # the shadow is aborted by another process
        monkeypatch.setattr(router, "state", lambda: stale)  # ... after the router looked
        answer = router.respond(QUERIES[0])
        assert answer.text == _bare(env.demo_gguf, QUERIES[0], 8) and answer.generation == GENESIS
        assert router.stats.mirrored == 1 and router.stats.recorded == 0 and router.stats.shadow_failures == 1
        assert "no shadow phase" in router.stats.last_failure
    assert env.compared() == []


def test_a_shadow_without_gguf_never_blocks_head(make_env: Any) -> None:
    env = make_env(_config(percent=100.0))
    candidate = env.shadow()
    folder = env.home / "models" / "archive" / candidate
    folder.chmod(0o755)
    (folder / "model.gguf").unlink()
    with _router(env.home, max_tokens=8) as router:
        answer = router.respond(QUERIES[1])
        assert answer.generation == GENESIS and answer.text == _bare(env.demo_gguf, QUERIES[1], 8)
        assert router.stats.shadow_failures >= 1 and router.stats.recorded == 0


# ---------------------------------------------------------------- cutover and rollback


def test_rollback_swaps_to_the_hot_standby_without_reloading(make_env: Any) -> None:
    env = make_env(_config(percent=100.0))
    candidate = env.shadow()
    loader = CountingLoader()
    with _router(env.home, max_tokens=4, loader=loader) as router:
        router.respond(QUERIES[0])  # HEAD + shadow loaded
        router.respond(QUERIES[1])  # min_samples comparisons recorded
        assert len(loader.calls) == 2
        d = env.driver
        assert d.state.shadow is not None
        d.beat_to(d.state.shadow.until_cycle)
        d.do(cmd.CompleteShadow(config=d.config))
        assert d.state.phase is Phase.BURN_IN and d.state.head == candidate
        assert router.respond(QUERIES[0]).generation == candidate  # cutover: already hot
        assert router.standby == GENESIS and set(router.loaded) == {GENESIS, candidate}
        d.rollback()
        assert router.respond(QUERIES[0]).generation == GENESIS  # rollback: instant
        assert len(loader.calls) == 2


def test_a_router_started_during_burn_in_keeps_the_previous_head_hot(make_env: Any) -> None:
    env = make_env(_config(percent=10.0))
    candidate = env.shadow()
    d = env.driver
    d.do(cmd.RecordShadow(exact=True, similarity=1.0, query_id="x"))
    d.do(cmd.RecordShadow(exact=True, similarity=1.0, query_id="y"))
    assert d.state.shadow is not None
    d.beat_to(d.state.shadow.until_cycle)
    d.do(cmd.CompleteShadow(config=d.config))
    assert d.state.phase is Phase.BURN_IN
    loader = CountingLoader()
    with _router(env.home, max_tokens=4, loader=loader) as router:
        assert router.respond(QUERIES[0]).generation == candidate
        assert len(loader.calls) == 2 and GENESIS in router.loaded
        d.rollback()
        assert router.respond(QUERIES[0]).generation == GENESIS
        assert len(loader.calls) == 2


def test_the_lru_never_evicts_head_or_its_standby(make_env: Any) -> None:
    env = make_env()
    env.propose()
    others = list(env.driver.candidates())  # frozen: recorded bytes, servable by name
    assert len(others) == 3
    loader = CountingLoader()
    with _router(env.home, max_tokens=2, hot=2, loader=loader) as router:
        router.respond(QUERIES[0])
        for name in others:
            assert router.answer(QUERIES[0], generation=name).generation == name
            assert GENESIS in router.loaded and len(router.loaded) == 2
        router.respond(QUERIES[0])
        assert len(loader.calls) == 4  # HEAD loaded once
    with pytest.raises(ValueError):
        _router(env.home, hot=1)


# ---------------------------------------------------------------- replay


def test_trivial_queries_come_from_the_store_without_law_prompts(make_env: Any) -> None:
    from adapters.data.demo_world import LAWS

    env = make_env()
    queries = trivial_queries(env.home, limit=30)
    assert len(queries) == 30 and len(set(queries)) == 30
    tempting = {p for law in LAWS for p in law.tempting}
    assert not tempting & set(queries)
    assert trivial_queries(env.home, limit=5) == queries[:5]


def test_replay_completes_a_shadow_phase(make_env: Any) -> None:
    env = make_env(_config(percent=1.0, min_samples=6))
    candidate = env.shadow()
    with _router(env.home, max_tokens=8) as router:
        report = router.replay(trivial_queries(env.home, limit=20), until_samples=6)
    assert report.generation == candidate and report.head == GENESIS
    assert report.recorded == report.queries == report.samples == 6
    assert report.exact == 6 and report.mean_similarity == 1.0 and report.mean_token_agreement == 1.0
    d = env.driver
    d.state = d.app.state()
    assert d.state.shadow is not None
    d.beat_to(d.state.shadow.until_cycle)
    completed = d.do(cmd.CompleteShadow(config=d.config))
    assert isinstance(completed[0], ev.ShadowCompleted) and completed[0].outcome == "passed"
    assert completed[0].samples == 6


def test_replay_outside_a_shadow_phase_is_refused(make_env: Any) -> None:
    env = make_env()
    with _router(env.home) as router, pytest.raises(NothingPending):
        router.replay(QUERIES)


def test_replay_stops_when_the_shadow_phase_ends(make_env: Any) -> None:
    env = make_env()
    env.shadow()

    def queries() -> Iterator[str]:
        yield QUERIES[0]
        env.driver.rollback()
        yield QUERIES[1]
        yield QUERIES[2]

    with _router(env.home, max_tokens=4) as router:
        report = router.replay(queries())
    assert report.recorded == 1 and report.queries == 1 and "ended" in report.stopped


# ---------------------------------------------------------------- the prompt


class _StubLlama:
    def __init__(self, template: str | None):
        self.metadata = {"tokenizer.ggml.bos_token_id": "1"} if template is None else {
            "tokenizer.chat_template": template, "tokenizer.ggml.bos_token_id": "1", "tokenizer.ggml.eos_token_id": "2"}

    def detokenize(self, ids: list[int], special: bool = False) -> bytes:
        return {1: b"<s>", 2: b"</s>"}[ids[0]]


def test_the_prompt_follows_the_models_chat_template() -> None:
    from adapters.data.conversations import Message
    from adapters.data.format import CHAT_TEMPLATE, render_plain

    plain = render_plain([Message("user", "Hi?")], add_generation_prompt=True)
    assert router_mod.prompt_renderer(_StubLlama(None))("Hi?") == plain
    assert router_mod.prompt_renderer(_StubLlama(CHAT_TEMPLATE))("Hi?") == plain
    other = (
        "{{ bos_token }}{% for m in messages %}\n[{{ m['role'] }}] {{ m['content'] }}{{ eos_token }}\n{% endfor %}"
        "{% if add_generation_prompt %}[assistant] {% endif %}"
    )
    # llama.cpp adds BOS when it tokenizes the prompt, so the template's own BOS is dropped
    assert router_mod.prompt_renderer(_StubLlama(other))("Hi?") == "[user] Hi?</s>\n[assistant] "
    no_bos = _StubLlama(other)
    no_bos.metadata["tokenizer.ggml.add_bos_token"] = "false"
    assert router_mod.prompt_renderer(no_bos)("Hi?") == "<s>[user] Hi?</s>\n[assistant] "
