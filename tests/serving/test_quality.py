"""The old generation's judgement of the new one's answers (``adapters.serving.quality``) on real
llama.cpp and the demo models: the score is llama.cpp's log-softmax, the old HEAD knows the
questions it was taught, and through the router a garbage shadow fails on the default
thresholds while a student that learned new facts (and so answers differently) passes."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from adapters.runtime.app import App
from adapters.data import demo_world
from adapters.serving import quality
from adapters.serving.llama import load_llama
from adapters.serving.router import Router, generation_params, prompt_renderer, trivial_queries
from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.config import EvoConfig, ShadowConfig, render_config
from evo_core.state import Phase
from tests.cli.conftest import ArchivingDriver
from tests.core.helpers import BETTER, CFG, GOOD

GENESIS_QUESTIONS = [f.question(0) for f in demo_world.era_facts(0)] + [q for q, _ in demo_world.SMALL_TALK]
NEW_QUESTIONS = [f.question(p) for f in demo_world.era_facts(1) for p in (0, 1)]
# the defaults, the shadow shortened for a test
DEFAULTS = CFG.model_copy(update={"shadow": ShadowConfig(cycles=5, replay=True)})


@pytest.fixture(scope="module")
def old(demo_gguf: Path) -> Any:
    return load_llama(demo_gguf, n_ctx=256, n_threads=1)


def _answer(llm: Any, prompt: str, max_tokens: int = 24) -> tuple[str, bool]:
    choice = llm(prompt, **generation_params(max_tokens))["choices"][0]
    return choice["text"], choice["finish_reason"] == "stop"


def test_the_score_is_the_old_models_log_softmax_of_the_query_and_the_answer(old: Any, demo_model: Any) -> None:
    import torch

    model, _tok = demo_model
    render = prompt_renderer(old)
    for query, answer in [("What does the brax eat?", "The brax eats nuts."), ("Hello!", "Theedderye.")]:
        prompt = render(query)
        got = quality.score(old, prompt, query, answer, finished=True)
        at = prompt.index(query)
        prefix = list(old.tokenize(prompt[:at].encode(), add_bos=True, special=True))
        q = list(old.tokenize(query.encode(), add_bos=False, special=False))
        tail = list(old.tokenize(prompt[at + len(query):].encode(), add_bos=False, special=True))
        a = list(old.tokenize(answer.encode(), add_bos=False, special=False)) + [old.token_eos()]
        ids = prefix + q + tail + a
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
        lp = [float(logp[i - 1, ids[i]]) for i in range(1, len(ids))]
        n = len(prefix) - 1
        assert got.prompt_logprob == pytest.approx(sum(lp[n : n + len(q)]) / len(q), abs=1e-3)
        assert got.logprob == pytest.approx(sum(lp[-len(a):]) / len(a), abs=1e-3)
        assert got.tokens == len(a)
    assert quality.score(old, render("Hello!"), "Hello!", "", finished=False).logprob is None


def test_garbage_is_implausible_to_the_old_head_and_its_own_answer_is_not(old: Any) -> None:
    s, render = DEFAULTS.shadow, prompt_renderer(old)
    fact = demo_world.era_facts(0)[0]
    prompt = render(fact.question(0))
    right = quality.score(old, prompt, fact.question(0), fact.answer(), finished=True)
    garbage = quality.score(old, prompt, fact.question(0), "Theedderye.", finished=True)
    assert right.prompt_logprob is not None and right.prompt_logprob >= s.prompt_floor  # a question it knows
    assert right.logprob is not None and right.logprob >= s.logprob_floor
    assert garbage.logprob is not None and garbage.logprob < s.logprob_floor - 1.0
    new = demo_world.era_facts(1)[0]  # a correct new fact: unlikely too, but its question is unknown
    scored = quality.score(old, render(new.question(0)), new.question(0), new.answer(), finished=True)
    assert scored.logprob is not None and scored.logprob < s.logprob_floor
    assert scored.prompt_logprob is not None and scored.prompt_logprob < s.prompt_floor


def test_scoring_leaves_the_model_answering_as_before(old: Any) -> None:
    prompt = prompt_renderer(old)("Who are you?")
    before = _answer(old, prompt)
    quality.score(old, prompt, "Who are you?", "Garbage garbage garbage.", finished=False)
    assert _answer(old, prompt) == before


def test_the_old_head_knows_the_questions_it_was_taught_and_not_the_new_ones(old: Any) -> None:
    """What makes the judgement sound: a correct new fact is as unlikely to the old HEAD as
    garbage, so only answers to questions it knows are judged (``prompt_floor``)."""
    render, floor = prompt_renderer(old), DEFAULTS.shadow.prompt_floor
    known = [quality.score(old, render(q), q, "x", True).prompt_logprob for q in GENESIS_QUESTIONS]
    new = [quality.score(old, render(q), q, "x", True).prompt_logprob for q in NEW_QUESTIONS]
    assert all(v is not None for v in known + new)
    assert sum(v >= floor for v in known) >= 0.8 * len(known)  # type: ignore[operator]
    assert max(new) < floor  # type: ignore[type-var]


def test_a_student_keeps_what_the_old_head_knows_and_garbage_does_not(
    old: Any, student_gguf: Path, garbage_gguf: Path
) -> None:
    render, s = prompt_renderer(old), DEFAULTS.shadow
    student, garbage = load_llama(student_gguf, n_ctx=256, n_threads=1), load_llama(garbage_gguf, n_ctx=256, n_threads=1)
    new_facts = [f for f in demo_world.era_facts(1)][:8]
    learned = sum(_answer(student, render(f.question(0)))[0] == f.answer() for f in new_facts)
    assert learned >= 6  # the student learned the new era: it answers those unlike its teacher
    for model, lowest, highest in [(student, s.quality_threshold + 0.1, 1.0), (garbage, 0.0, 0.1)]:
        scores = [quality.score(old, render(q), q, *_answer(model, render(q))) for q in GENESIS_QUESTIONS]
        judged = [x.logprob for x in scores if x.prompt_logprob is not None and x.prompt_logprob >= s.prompt_floor]
        good = sum(lp is not None and lp >= s.logprob_floor for lp in judged) / len(judged)
        assert lowest <= good <= highest
        assert all(lp is not None and math.isfinite(lp) and lp <= 0 for lp in judged)


# ---------------------------------------------------------------- the shadow, through the router


class Env:
    """A copy of the demo workspace with the first era's conversations stored (the shadow's
    replayed queries are mostly about it, as in the demo), at SHADOW for a candidate serving
    ``gguf``."""

    def __init__(self, home: Path, config: EvoConfig, gguf: Path):
        from adapters.data.conversations import add

        self.home = home
        (home / "config.toml").write_text(render_config(config))
        self.driver = d = ArchivingDriver(config=config)  # every candidate frozen serving ``gguf``
        d.home, d.gguf = home, gguf
        d.app = App(home)
        add(d.app.ws, demo_world.conversations(1, demo_world.ERA_CYCLES, per_1000_cycles=200))
        d.state = d.app.state()
        d.window([GOOD, BETTER, "fail"])
        assert d.state.proposal is not None
        self.candidate = d.state.proposal.proposal.candidate
        d.approve()
        d.do(cmd.StartShadow(config=config))

    def complete(self) -> ev.ShadowCompleted:
        d = self.driver
        d.state = d.app.state()
        assert d.state.shadow is not None
        d.beat_to(d.state.shadow.until_cycle)
        done = d.do(cmd.CompleteShadow(config=d.config))[0]
        assert isinstance(done, ev.ShadowCompleted)
        return done


@pytest.mark.parametrize("which", ["student", "garbage"])
def test_the_shadow_passes_a_student_and_fails_garbage_on_the_default_thresholds(
    which: str, tmp_path: Path, demo_workspace: Path, student_gguf: Path, garbage_gguf: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(demo_workspace, home, symlinks=True)
    env = Env(home, DEFAULTS, student_gguf if which == "student" else garbage_gguf)
    s = DEFAULTS.shadow
    try:
        with Router(home, n_threads=1, max_tokens=24) as router:
            report = router.replay(trivial_queries(home), until_samples=s.min_samples, until_judged=s.min_judged)
        assert report.samples >= s.min_samples and report.judged >= s.min_judged and report.scored == report.recorded
        done = env.complete()
    finally:
        env.driver.app.close()
    assert done.judged == report.judged and done.scored == report.scored
    if which == "student":
        assert done.outcome == "passed" and done.reason == ""
        assert done.quality is not None and done.quality >= s.quality_threshold
        assert done.parity < 0.9  # it learned new facts: the old default parity threshold would fail it
        assert env.driver.state.phase is Phase.BURN_IN and env.driver.state.head == env.candidate
    else:
        assert done.outcome == "failed" and done.quality is not None and done.quality < 0.2
        assert done.reason.startswith("quality ") and done.logprob is not None and done.logprob < -5
        assert env.driver.state.phase is Phase.IDLE and env.driver.state.head != env.candidate
