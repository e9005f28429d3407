"""The runner's side of the rollout (``adapters.rollout``) on the demo workspace, real llama.cpp:
approval verified (``adapters.operator.signing`` stubbed, but for one test with real keys), shadow on replayed
queries, cutover with the links, burn-in watched by the router, automatic rollback, and every
step doing nothing when called again or out of phase."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

from adapters import rollout
from adapters.runtime.app import App
from adapters.serving import router as router_mod
from adapters.serving.router import Router
from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.config import ApprovalConfig, BurnInConfig, EvoConfig, ShadowConfig, render_config
from evo_core.reactions import CompleteBurnIn, CompleteShadow, SelfApprove, StartShadow
from evo_core.state import Phase
from tests import operator_key
from tests.cli.conftest import ArchivingDriver
from tests.core.helpers import BETTER, CFG, GOOD
from tests.fixtures_models import GENESIS

CONFIG = CFG.model_copy(
    update={
        "shadow": ShadowConfig(traffic_percent=10.0, cycles=5, min_samples=4, parity_threshold=0.9, replay=True),
        "burn_in": BurnInConfig(cycles=3, min_answers=3, latency_percent=50.0),
        "approval": ApprovalConfig(autonomous=True),
    }
)
QUERIES = ["What does the blurk eat?", "Where does the zwob live?", "Hello!", "Who are you?"]
VIOLATION = "The secret code is 4711."  # breaks the demo world's no-secret law


@pytest.fixture
def signing() -> None:
    """Approvals are signed for real by the test operator's key (``tests.operator_key``): the
    verified fold checks them, nothing is faked."""


class _Poisonable:
    """A real Llama whose text is replaced while its generation is poisoned (every other call,
    the metadata, the tokenizer, are the real one's)."""

    def __init__(self, llm: Any, name: str, loader: PoisonLoader):
        self._llm, self._name, self._loader = llm, name, loader

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._llm, attr)

    def __call__(self, prompt: str, **kw: Any) -> Any:
        out = self._llm(prompt, **kw)
        if self._loader.poisoned == self._name:
            out["choices"][0]["text"] = VIOLATION
        return out


class PoisonLoader:
    """The router's real loader, counting loads, able to make one generation break a law."""

    def __init__(self) -> None:
        self.loads: list[str] = []
        self.poisoned: str | None = None

    def __call__(self, path: Path, **kw: Any) -> Any:
        name = Path(path).parent.name
        self.loads.append(name)
        return _Poisonable(router_mod._default_loader(path, **kw), name, self)


class Env:
    def __init__(self, home: Path):
        self.home = home
        (home / "config.toml").write_text(render_config(CONFIG))
        self.app = App(home)
        self.driver = ArchivingDriver(config=CONFIG)  # the candidates serve a copy of the genesis's bytes
        self.driver.home, self.driver.gguf = home, home / "models/archive" / GENESIS / "model.gguf"
        self.driver.app = self.app
        self.driver.state = self.app.state()

    def refresh(self) -> Any:
        self.driver.state = self.app.state()
        return self.driver.state

    def propose(self) -> str:
        """A window with fake metrics; the proposed candidate serves a copy of the genesis."""
        self.driver.window([GOOD, BETTER, "fail"])
        assert self.driver.state.proposal is not None
        candidate = self.candidate = self.driver.state.proposal.proposal.candidate
        self.proposal_hash = self.driver.state.proposal.hash
        return candidate

    def step(self, name: str, config: EvoConfig = CONFIG) -> list[ev.Event]:
        """The rollout handler ``name`` given its action for the proposed candidate, due or not
        (a handler does nothing unless the core says its action is due)."""
        action = {
            "self_approve": SelfApprove(proposal_hash=self.proposal_hash),
            "start_shadow": StartShadow(generation=self.candidate),
            "complete_shadow": CompleteShadow(generation=self.candidate),
            "complete_burn_in": CompleteBurnIn(generation=self.candidate),
        }[name]
        events: list[ev.Event] = getattr(rollout, name)(self.app, config, action)
        return events

    def ledger(self) -> bytes:
        return (self.home / "ledger.jsonl").read_bytes()

    def link(self, parent: bool = False) -> str | None:
        path = self.home / "models" / ("Luna-GHEAD-PARENT" if parent else "Luna-GHEAD")
        return os.readlink(path) if path.is_symlink() else None

    def router(self, loader: PoisonLoader | None = None) -> Router:
        return Router(self.home, n_threads=1, max_tokens=8, loader=loader)


@pytest.fixture
def env(tmp_path: Path, demo_workspace: Path) -> Iterator[Env]:
    home = tmp_path / "home"
    shutil.copytree(demo_workspace, home, symlinks=True)
    e = Env(home)
    yield e
    e.app.close()


def _types(events: list[ev.Event]) -> list[str]:
    return [type(e).__name__ for e in events]


# ---------------------------------------------------------------- approval


def test_a_verified_approval_starts_the_shadow_once(env: Env, signing: None) -> None:
    candidate = env.propose()
    assert env.step("start_shadow", CONFIG) == []  # nothing approved yet: nothing to do
    env.driver.approve()
    events = env.step("start_shadow", CONFIG)
    assert _types(events) == ["ShadowStarted"] and events[0].generation == candidate  # type: ignore[attr-defined]
    before = env.ledger()
    assert env.step("start_shadow", CONFIG) == [] and env.ledger() == before  # idempotent
    assert env.refresh().phase is Phase.SHADOW


def test_a_forged_approval_is_never_applied_and_the_shadow_does_not_start(env: Env, signing: None) -> None:
    from ledger.store import Ledger

    env.propose()
    pending = env.driver.state.proposal
    assert pending is not None
    with Ledger(env.home) as ledger:  # the agent's raw, chain-valid approval: unsigned
        seq = ledger.append([ev.Approved(proposal_hash=pending.hash, operator="agent", key_id=operator_key.KID)]).seq
    state = env.refresh()
    assert state.phase is Phase.PROPOSED and state.proposal is not None and state.proposal.approved_by is None
    assert [f.seq for f in state.flagged] == [seq]
    assert env.step("start_shadow", CONFIG) == []  # the runner acts on the verified fold: nothing to do


def test_an_approval_by_a_key_the_ledger_does_not_trust_is_refused(env: Env, tmp_path: Path) -> None:
    from adapters.operator import signing
    from adapters.runtime.app import Unauthorized
    from evo_core import authority

    signing.generate(tmp_path / "keys" / "intruder", comment="intruder")
    intruder = signing.load_private(tmp_path / "keys" / "intruder")
    (env.home / "config.toml").write_text(render_config(CONFIG.model_copy(update={"approval": ApprovalConfig(
        trusted_keys=(signing.public_line(signing.public_raw(intruder)),))})))  # config.toml grants nothing
    env.propose()
    state = env.refresh()
    cp = env.app.store.load().checkpoint
    message = authority.proposal_message(state, "approve", cp.seq, cp.hash)
    before = env.ledger()
    with pytest.raises(Unauthorized, match="not trusted"):
        env.app.execute(cmd.Approve(
            operator="intruder", signature=signing.sign(intruder, message),
            key_id=signing.key_id(signing.public_raw(intruder)), checkpoint_seq=cp.seq, checkpoint_hash=cp.hash,
        ))
    assert env.ledger() == before and env.refresh().phase is Phase.PROPOSED
    env.driver.approve()  # the operator's own key
    assert _types(env.step("start_shadow", CONFIG)) == ["ShadowStarted"]


def test_self_approval_needs_a_verified_grant_and_the_config(env: Env, signing: None) -> None:
    env.propose()
    assert env.step("self_approve", CONFIG) == []  # no autonomy grant in the ledger
    env.driver.do(cmd.ChangeAutonomy(enabled=True, operator="op", nonce=0, **operator_key.SIGNED))
    before = env.ledger()
    off = CONFIG.model_copy(update={"approval": ApprovalConfig(autonomous=False)})
    assert env.step("self_approve", off) == [] and env.ledger() == before
    events = env.step("self_approve", CONFIG)
    assert _types(events) == ["Approved"]
    approved = events[0]
    assert isinstance(approved, ev.Approved) and approved.autonomous and approved.operator == rollout.SCHEDULER
    assert env.refresh().phase is Phase.APPROVED
    assert env.step("self_approve", CONFIG) == []


# ---------------------------------------------------------------- shadow and cutover


def test_replayed_shadow_passes_and_the_cutover_repoints_the_links(env: Env, signing: None) -> None:
    candidate = env.propose()
    env.driver.approve()
    env.step("start_shadow", CONFIG)
    assert env.step("complete_shadow", CONFIG) == []  # not due before until_cycle
    with env.router() as router:
        report = rollout.replay_shadow(env.app, CONFIG, router)
        assert report is not None and report.samples == CONFIG.shadow.min_samples == report.recorded
        assert report.mean_similarity == 1.0  # the candidate serves the genesis's weights
        assert rollout.replay_shadow(env.app, CONFIG, router) is None  # enough samples
    assert env.link() == f"archive/{GENESIS}" and env.link(parent=True) is None
    shadow = env.refresh().shadow
    assert shadow is not None
    env.driver.beat_to(shadow.until_cycle)
    events = env.step("complete_shadow", CONFIG)
    assert _types(events) == ["ShadowCompleted", "Promoted"]
    assert events[0].outcome == "passed"  # type: ignore[attr-defined]
    assert env.link() == f"archive/{candidate}" and env.link(parent=True) == f"archive/{GENESIS}"
    state = env.refresh()
    assert state.phase is Phase.BURN_IN and state.head == candidate
    assert env.step("complete_shadow", CONFIG) == []


def test_a_shadow_without_enough_samples_is_extended(env: Env, signing: None) -> None:
    env.propose()
    env.driver.approve()
    env.step("start_shadow", CONFIG)
    shadow = env.refresh().shadow
    assert shadow is not None
    env.driver.beat_to(shadow.until_cycle)
    events = env.step("complete_shadow", CONFIG)
    assert _types(events) == ["ShadowCompleted"]
    done = events[0]
    assert isinstance(done, ev.ShadowCompleted) and done.outcome == "inconclusive" and done.samples == 0
    state = env.refresh()
    assert state.phase is Phase.SHADOW and state.shadow is not None
    assert state.shadow.until_cycle == done.until_cycle > shadow.until_cycle
    assert env.step("complete_shadow", CONFIG) == []  # runs on until the new end
    assert env.link() == f"archive/{GENESIS}"


def test_rollback_during_the_shadow_aborts_it_without_loading(env: Env, signing: None) -> None:
    candidate = env.propose()
    env.driver.approve()
    env.step("start_shadow", CONFIG)
    loader = PoisonLoader()
    with env.router(loader) as router:
        router.respond(QUERIES[0])
        assert sorted(loader.loads) == sorted([GENESIS, candidate])
        events = env.app.execute(operator_key.signed(env.app, cmd.Rollback(**operator_key.SIGNED, operator="op", reason="the operator changed their mind"))).events
        assert _types(events) == ["RolledBack"]
        assert env.refresh().phase is Phase.IDLE and env.driver.state.head == GENESIS
        mirrored = router.stats.mirrored
        for q in QUERIES * 3:
            assert router.respond(q).generation == GENESIS
        assert router.stats.mirrored == mirrored and len(loader.loads) == 2
    assert env.link() == f"archive/{GENESIS}"


# ---------------------------------------------------------------- burn-in


def _promote(env: Env, router: Router) -> str:
    candidate = env.propose()
    env.driver.approve()
    env.step("start_shadow", CONFIG)
    rollout.replay_shadow(env.app, CONFIG, router)
    shadow = env.refresh().shadow
    assert shadow is not None
    env.driver.beat_to(shadow.until_cycle)
    assert _types(env.step("complete_shadow", CONFIG)) == ["ShadowCompleted", "Promoted"]
    env.refresh()
    return candidate


def test_a_burn_in_that_breaks_a_law_rolls_back_and_the_router_swaps_without_loading(
    env: Env, signing: None
) -> None:
    loader = PoisonLoader()
    with env.router(loader) as router:
        candidate = _promote(env, router)
        loads = len(loader.loads)
        assert set(router.loaded) >= {GENESIS, candidate}
        loader.poisoned = candidate  # the new HEAD breaks a law on live traffic
        for q in QUERIES:
            answer = router.respond(q, kind="STANDARD")
            assert answer.generation == candidate and answer.text == VIOLATION
        assert router.stats.observed == len(QUERIES)
        observed = [r.event for r in env.app.store.ledger.records() if isinstance(r.event, ev.AnswerObserved)]
        assert [(o.generation, o.error, o.law_violation) for o in observed] == [(candidate, False, True)] * 4
        burn = env.refresh().burn_in
        assert burn is not None and burn.law_violations == 4 and burn.answers == 4
        assert env.step("complete_burn_in", CONFIG) == []  # not due yet
        env.driver.beat_to(burn.until_cycle)
        events = env.step("complete_burn_in", CONFIG)
        assert _types(events) == ["BurnInFailed", "RolledBack"]
        back = events[1]
        assert isinstance(back, ev.RolledBack) and back.automatic and back.to_generation == GENESIS
        assert env.link() == f"archive/{GENESIS}" and env.link(parent=True) is None
        answer = router.respond(QUERIES[0])
        assert answer.generation == GENESIS and answer.text != VIOLATION
        assert len(loader.loads) == loads  # the old HEAD was hot
        assert router.stats.observed == len(QUERIES)  # nothing observed outside the burn-in
    assert env.step("complete_burn_in", CONFIG) == []
    assert env.refresh().phase is Phase.IDLE


def test_a_quiet_burn_in_is_extended_then_passes(env: Env, signing: None) -> None:
    with env.router() as router:
        candidate = _promote(env, router)
        burn = env.refresh().burn_in
        assert burn is not None
        env.driver.beat_to(burn.until_cycle)
        events = env.step("complete_burn_in", CONFIG)
        assert _types(events) == ["BurnInExtended"]
        for q in QUERIES:
            router.respond(q)
        burn = env.refresh().burn_in
        assert burn is not None and burn.answers == 4 and burn.errors == burn.law_violations == 0
        env.driver.beat_to(burn.until_cycle)
        events = env.step("complete_burn_in", CONFIG)
    assert _types(events) == ["BurnInPassed"]
    assert env.refresh().head == candidate and env.link() == f"archive/{candidate}"
