"""The rollout catches a broken model on the default quality thresholds, through the runner's
steps (``adapters.rollout``) and the router on real llama.cpp: a garbage candidate fails its
shadow; a garbage candidate that gets past a shadow without the quality check is rolled back at
burn-in; a student that learned new facts passes both and GEN_HEAD advances."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

from adapters import rollout
from adapters.runtime.app import App
from adapters.data import demo_world
from adapters.serving.router import Router
from evo_core import events as ev
from evo_core.config import BurnInConfig, EvoConfig, ShadowConfig, render_config
from evo_core.reactions import CompleteBurnIn, CompleteShadow, StartShadow
from evo_core.state import Phase
from tests.cli.conftest import ArchivingDriver
from tests.core.helpers import BETTER, CFG, GOOD
from tests.fixtures_models import GENESIS
from tests.serving.quality_models import build_garbage, build_student

# the default thresholds; only the phases' lengths and the burn-in's minimum shortened for a test
CONFIG = CFG.model_copy(update={
    "shadow": ShadowConfig(cycles=5, replay=True),
    "burn_in": BurnInConfig(cycles=3, min_answers=6, latency_percent=0.0),
})
NO_SHADOW_QUALITY = CONFIG.model_copy(update={"shadow": CONFIG.shadow.model_copy(update={"quality_threshold": 0.0})})
# what the agent asks while the new HEAD burns in: the facts it knows, new ones, small talk
ASKED = [f.question(0) for f in demo_world.era_facts(0)[:6] + demo_world.era_facts(1)[:3]] + ["Hello!", "Who are you?"]


@pytest.fixture(scope="module")
def models(demo_genesis: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.getbasetemp() / "quality-models"  # shared with tests/serving
    return {"student": build_student(demo_genesis, root), "garbage": build_garbage(demo_genesis, root)}


class Env:
    def __init__(self, home: Path, config: EvoConfig, gguf: Path):
        from adapters.data.conversations import add

        self.home, self.config = home, config
        (home / "config.toml").write_text(render_config(config))
        self.app = App(home)
        add(self.app.ws, demo_world.conversations(1, demo_world.ERA_CYCLES, per_1000_cycles=200))
        self.driver = ArchivingDriver(config=config)  # every candidate serves a copy of ``gguf``
        self.driver.home, self.driver.gguf = home, gguf
        self.driver.app = self.app
        self.driver.state = self.app.state()
        self.driver.window([GOOD, BETTER, "fail"])
        assert self.driver.state.proposal is not None
        self.candidate = self.driver.state.proposal.proposal.candidate
        self.driver.approve()

    def beat_past(self, until: int) -> None:
        self.driver.state = self.app.state()
        self.driver.beat_to(until)

    def shadow(self, router: Router) -> list[ev.Event]:
        assert rollout.start_shadow(self.app, self.config, StartShadow(generation=self.candidate))
        report = rollout.replay_shadow(self.app, self.config, router)
        assert report is not None
        if self.config.shadow.quality_threshold > 0:
            assert report.judged >= self.config.shadow.min_judged
        shadow = self.app.state().shadow
        assert shadow is not None
        self.beat_past(shadow.until_cycle)
        return rollout.complete_shadow(self.app, self.config, CompleteShadow(generation=self.candidate))

    def burn_in(self, router: Router) -> list[ev.Event]:
        for query in ASKED:
            assert router.respond(query, kind="STANDARD").generation == self.candidate
        burn = self.app.state().burn_in
        assert burn is not None and burn.answers == len(ASKED)
        self.beat_past(burn.until_cycle)
        return rollout.complete_burn_in(self.app, CONFIG, CompleteBurnIn(generation=self.candidate))


@pytest.fixture
def make_env(tmp_path: Path, demo_workspace: Path, models: dict[str, Path]) -> Iterator[Any]:
    envs: list[Env] = []

    def make(which: str, config: EvoConfig = CONFIG) -> Env:
        home = tmp_path / which
        shutil.copytree(demo_workspace, home, symlinks=True)
        env = Env(home, config, models[which])
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.app.close()


def _router(env: Env) -> Router:
    return Router(env.home, n_threads=1, max_tokens=24, app=env.app)


def test_a_student_that_learned_new_facts_passes_shadow_and_burn_in(make_env: Any) -> None:
    env = make_env("student")
    with _router(env) as router:
        shadow = env.shadow(router)
        assert [type(e) for e in shadow] == [ev.ShadowCompleted, ev.Promoted]
        done = shadow[0]
        assert isinstance(done, ev.ShadowCompleted) and done.outcome == "passed" and done.parity < 0.9
        events = env.burn_in(router)
    assert [type(e) for e in events] == [ev.BurnInPassed]
    passed = events[0]
    assert isinstance(passed, ev.BurnInPassed) and passed.quality is not None
    assert passed.quality >= CONFIG.burn_in.min_quality and passed.judged >= len(ASKED) // 2
    assert env.app.state().head == env.candidate


def test_a_garbage_candidate_fails_its_shadow(make_env: Any) -> None:
    env = make_env("garbage")
    with _router(env) as router:
        events = env.shadow(router)
    assert [type(e) for e in events] == [ev.ShadowCompleted]
    done = events[0]
    assert isinstance(done, ev.ShadowCompleted) and done.outcome == "failed" and "quality" in done.reason
    state = env.app.state()
    assert state.phase is Phase.IDLE and state.head == GENESIS


def test_garbage_that_gets_past_the_shadow_is_rolled_back_at_burn_in(make_env: Any) -> None:
    env = make_env("garbage", NO_SHADOW_QUALITY)
    with _router(env) as router:
        assert [type(e) for e in env.shadow(router)] == [ev.ShadowCompleted, ev.Promoted]
        events = env.burn_in(router)
        assert [type(e) for e in events] == [ev.BurnInFailed, ev.RolledBack]
        failed, back = events
        assert isinstance(failed, ev.BurnInFailed) and failed.quality is not None and failed.quality < 0.2
        assert "quality" in failed.reason and failed.errors == 0 and failed.law_violations == 0
        assert isinstance(back, ev.RolledBack) and back.automatic and back.to_generation == GENESIS
        assert router.respond("Hello!").generation == GENESIS
    assert env.app.state().head == GENESIS
