"""Burn-in observation by the router (``adapters.serving.observe``) on real llama.cpp: every
answer of the new HEAD recorded (error, law violation, seeded latency against the old HEAD),
never at the caller's expense. The ledger is driven to BURN_IN through the real ledger; the
candidate serves a copy of the genesis's model.gguf, and a wrapping loader (the real Llama,
its text replaced) makes it fail in the ways a burn-in must catch."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

from adapters.runtime.app import App
from adapters.cli import main
from adapters.serving import router as router_mod
from adapters.serving.router import Router, latency_draw
from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.config import BurnInConfig, EvoConfig, render_config
from evo_core.state import Phase
from tests.cli.conftest import ArchivingDriver
from tests.core.helpers import BETTER, CFG, GOOD
from tests.fixtures_models import GENESIS

QUERIES = ["What does the blurk eat?", "Where does the zwob live?", "Hello!", "Who are you?", "Thank you!"]


def _config(**burn_in: Any) -> EvoConfig:
    return CFG.model_copy(update={"burn_in": BurnInConfig(cycles=3, min_answers=1, **burn_in)})


class _Faulty:
    """A real Llama; while its loader says so for its generation, it answers ``text`` or raises."""

    def __init__(self, llm: Any, name: str, loader: FaultLoader):
        self._llm, self._name, self._loader = llm, name, loader

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._llm, attr)

    def __call__(self, prompt: str, **kw: Any) -> Any:
        fault = self._loader.faults.get(self._name)
        if fault is RuntimeError:
            raise RuntimeError("llama_decode returned -3")
        out = self._llm(prompt, **kw)
        if fault is not None:
            out["choices"][0]["text"] = fault
        return out


class FaultLoader:
    def __init__(self) -> None:
        self.loads: list[str] = []
        self.faults: dict[str, Any] = {}  # generation -> replacement text, or RuntimeError

    def __call__(self, path: Path, **kw: Any) -> Any:
        name = Path(path).parent.name
        self.loads.append(name)
        return _Faulty(router_mod._default_loader(path, **kw), name, self)


class Env:
    """A workspace at BURN_IN: the genesis (``demo``, or a model-less init: no standby can
    answer) replaced by a promoted candidate frozen with the demo GGUF's bytes."""

    def __init__(self, home: Path, config: EvoConfig, gguf: Path):
        self.home = home
        (home / "config.toml").write_text(render_config(config))
        self.driver = d = ArchivingDriver(config=config)
        d.home, d.gguf = home, gguf
        d.app = App(home)
        d.state = d.app.state()
        d.window([GOOD, BETTER, "fail"])
        assert d.state.proposal is not None
        self.candidate = d.state.proposal.proposal.candidate
        d.approve()
        d.do(cmd.StartShadow(config=config))
        for i in range(config.shadow.min_samples):
            d.do(cmd.RecordShadow(exact=True, similarity=1.0, query_id=f"s{i}"))
        assert d.state.shadow is not None
        d.beat_to(d.state.shadow.until_cycle)
        d.do(cmd.CompleteShadow(config=config))
        assert d.state.phase is Phase.BURN_IN and d.state.head == self.candidate

    def observed(self) -> list[ev.AnswerObserved]:
        with App(self.home) as app:
            return [r.event for r in app.store.ledger.records() if isinstance(r.event, ev.AnswerObserved)]

    def router(self, loader: FaultLoader | None = None, **kw: Any) -> Router:
        return Router(self.home, n_threads=1, max_tokens=8, loader=loader, **kw)


@pytest.fixture
def make_env(tmp_path: Path, demo_workspace: Path) -> Iterator[Any]:
    envs: list[Env] = []
    gguf = demo_workspace / "models" / "archive" / GENESIS / "model.gguf"

    def make(config: EvoConfig, demo: bool = True, name: str = "home") -> Env:
        home = tmp_path / name
        if demo:
            shutil.copytree(demo_workspace, home, symlinks=True)
        else:
            assert main(["--home", str(home), "init", "--period", str(config.evo_period_cycles)]) == 0
        env = Env(home, config, gguf)
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.driver.app.close()


def test_every_answer_of_the_new_head_is_recorded_and_timed(make_env: Any) -> None:
    env = make_env(_config(latency_percent=100.0))
    loader = FaultLoader()
    with env.router(loader) as router:
        expected = [router.answer(q, generation=GENESIS).text for q in QUERIES]
        kinds = ["TRIVIAL", "STANDARD", "CRITICAL", "TRIVIAL", "STANDARD"]
        answers = [router.respond(q, kind=k) for q, k in zip(QUERIES, kinds)]
        stats = router.stats
    assert [a.text for a in answers] == expected  # the caller gets HEAD's answer
    assert all(a.generation == env.candidate and a.query_id.startswith("burn:0:") for a in answers)
    assert stats.observed == stats.timed == len(QUERIES) and stats.observe_failures == 0
    observed = env.observed()
    assert [(o.generation, o.error, o.law_violation, o.query_id) for o in observed] == [
        (env.candidate, False, False, a.query_id) for a in answers
    ]
    assert all(o.latency_ratio is not None and o.latency_ratio > 0 for o in observed)
    assert set(loader.loads) == {GENESIS, env.candidate}, loader.loads  # (the old HEAD loads twice: see the closing note of issue 13)
    burn = env.driver.app.state().burn_in
    assert burn is not None and burn.answers == len(QUERIES) and burn.latency_samples == len(QUERIES)


def test_the_latency_sample_is_the_seeded_draw(make_env: Any) -> None:
    env = make_env(_config(latency_percent=30.0))
    n = 40
    with env.router(seed=5) as router:
        for i in range(n):
            router.respond(QUERIES[i % len(QUERIES)])
    timed = [i for i, o in enumerate(env.observed()) if o.latency_ratio is not None]
    assert timed == [i for i in range(n) if latency_draw(5, i) < 0.3] and timed


def test_law_violations_and_empty_answers_are_caught(make_env: Any) -> None:
    env = make_env(_config(latency_percent=100.0))
    loader = FaultLoader()
    with env.router(loader) as router:
        loader.faults[env.candidate] = "You are STUPID."
        assert router.respond(QUERIES[0]).text == "You are STUPID."
        loader.faults[env.candidate] = " \n "
        empty = router.respond(QUERIES[1])
        assert empty.text == " \n " and empty.generation == env.candidate  # an empty answer is returned as is
    first, second = env.observed()
    assert (first.error, first.law_violation) == (False, True) and first.latency_ratio is not None
    assert (second.error, second.law_violation, second.latency_ratio) == (True, False, None)


def test_forbidden_phrases_outside_a_demo_workspace(make_env: Any) -> None:
    env = make_env(_config(forbidden_phrases=("LIVES IN",)), demo=False)
    loader = FaultLoader()
    with env.router(loader) as router:
        lives = router.respond("Where does the zwob live?")
        assert "lives in" in lives.text
        loader.faults[env.candidate] = "The secret code is 4711."  # a demo law: not this workspace's
        router.respond(QUERIES[2])
    assert [o.law_violation for o in env.observed()] == [True, False]


def test_a_failing_head_is_recorded_and_the_hot_standby_answers(make_env: Any) -> None:
    env = make_env(_config())
    loader = FaultLoader()
    with env.router(loader) as router:
        expected = router.answer(QUERIES[0], generation=GENESIS).text
        loader.faults[env.candidate] = RuntimeError
        answer = router.respond(QUERIES[0])
        assert answer.generation == GENESIS and answer.text == expected
        assert router.stats.standby_answers == 1
    [observed] = env.observed()
    assert observed.error and not observed.law_violation and observed.latency_ratio is None


def test_without_a_hot_standby_the_failure_propagates_after_recording(make_env: Any) -> None:
    env = make_env(_config())
    (env.home / "models" / "archive" / GENESIS).chmod(0o755)  # the genesis archive is read-only
    (env.home / "models" / "archive" / GENESIS / "model.gguf").unlink()  # the old HEAD cannot load
    loader = FaultLoader()
    with env.router(loader) as router:
        loader.faults[env.candidate] = RuntimeError
        with pytest.raises(RuntimeError, match="llama_decode"):
            router.respond(QUERIES[0])
        assert loader.loads == [env.candidate]
    [observed] = env.observed()
    assert observed.error


def test_a_refused_record_never_fails_the_answer(make_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_env(_config())
    with env.router() as router:
        stale = router.state()
        env.driver.rollback()  # the burn-in ends in another process ...
        monkeypatch.setattr(router, "state", lambda: stale)  # ... after the router looked
        monkeypatch.setattr(router, "head", lambda: env.candidate)
        answer = router.respond(QUERIES[0])
        assert answer.generation == env.candidate and answer.text.strip()
        assert router.stats.observed == 0 and router.stats.observe_failures == 1
        assert "no burn-in" in router.stats.last_failure
    assert env.observed() == []


def test_nothing_is_observed_once_head_is_not_the_generation_under_burn_in(make_env: Any) -> None:
    env = make_env(_config())
    with env.router() as router:
        env.driver.rollback()
        assert router.respond(QUERIES[0]).generation == GENESIS
        assert router.stats.observed == 0
    assert env.observed() == []
