"""Approval, shadow, cutover, burn-in and rollback through the REAL shell (``adapters.runtime.app.App``
on a workspace: the ledger file, fsync, the GEN_HEAD / GEN_HEAD-PARENT symlinks), with a crash
injected anywhere, checked against a trivial model of HEAD.

A crash is armed by the ``crash`` rule and fires in the next command that reaches its point
(or, half the time, the next one whose batch moves HEAD: a cutover or a rollback):

* ``before_append``: the process dies before the ledger append (nothing happened);
* ``torn_append``: it dies mid-write: part of the batch is in ``ledger.jsonl`` without its final
  newline, as a killed writer leaves it (the next append moves it aside);
* ``after_append``: the batch is durable, the first link swap never happens;
* ``between_swaps``: PARENT is repointed, HEAD is not.

Once it has fired the process is dead: every later link swap, append or projection rewrite of
that ``App`` raises too (a ``finally`` in the shell must not do work a killed process could not).
The ``App`` is dropped; the next rule opens a new one (``restart``: open + ``sync``, what
``evo status`` does at startup; or simply the next command, which must reconcile by itself).

The model knows HEAD, the promoted generations, the phase, the cycle, the shadow's samples and
the burn-in's answers; it predicts shadow and burn-in outcomes and rollback targets on its own.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import adapters.runtime.materialize
from adapters.runtime import links
from adapters.runtime.app import App
from adapters.runtime.create import init_workspace
from adapters.runtime.workspace import Workspace
from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.config import BurnInConfig, EvoConfig, ShadowConfig
from evo_core.decide import decide
from evo_core.errors import DomainError
from evo_core.evolve import fold
from evo_core.state import CandidateStatus, Phase, State
from evo_core.values import BudgetUsed, TrainingStats
from evo_core.window import draft_proposal
from ledger.record import encode_batch
from ledger.store import Ledger, utc_now
from tests.core.helpers import (
    BAD_RECALL_LAWS,
    BASELINE,
    BETTER,
    GOOD,
    SIGNED,
    check_history,
    check_invariants,
    fake_hash,
    proposal_hash,
)

CFG = EvoConfig(
    evo_period_cycles=5,
    max_concurrent_experiments=2,
    shadow=ShadowConfig(cycles=2, min_samples=2, parity_threshold=0.5),
    burn_in=BurnInConfig(cycles=2, min_answers=2),
)
P = CFG.evo_period_cycles
AGENT = "Luna"
GENESIS = "Luna-G000-genesis"
# tmpfs when there is one: the same code and syscalls, without waiting on the disk for each fsync
SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
POINTS = ("before_append", "torn_append", "after_append", "between_swaps")
OUTCOMES: list[Any] = [GOOD, BETTER, GOOD, BETTER, "fail", BAD_RECALL_LAWS]
# live answers in the burn-in: (error, law violation, latency ratio); mostly clean ones
CLEAN, UNTIMED, SLOWER = (False, False, 1.0), (False, False, None), (False, False, 1.5)
ERROR, LAW, SLOW = (True, False, None), (False, True, None), (False, False, 3.0)
ANSWERS = [CLEAN, CLEAN, CLEAN, UNTIMED, SLOWER, ERROR, LAW, SLOW]


class Crash(BaseException):
    """The process was killed here (BaseException: nothing in the shell may swallow it)."""


def target(generation: str | None) -> str | None:
    return links.link_target(generation) if generation else None


def gen_of(name: str) -> int:
    match = re.match(r"^Luna-G(\d{3})-", name)
    assert match, name
    return int(match.group(1))


def new_workspace(home: Path) -> None:
    init_workspace(home, period=P, max_concurrent=CFG.max_concurrent_experiments).close()


def ledger_state(home: Path) -> State:
    """A fresh fold of the whole ledger file: what the ledger says."""
    with Ledger(home, fsync=False) as led:
        return fold([r.event for r in led.records()])


def runner_command(state: State, outcomes: list[Any]) -> cmd.Command:
    """The runner's next step in an open window, decided from the ledger's state alone (so a
    runner restarted after a crash carries on where the ledger says)."""
    window = state.window
    assert window is not None and state.phase is Phase.WINDOW
    cands = state.window_candidates()
    outcome = {c.id: outcomes[i % len(outcomes)] for i, c in enumerate(cands)}
    by = {s: [c for c in cands if c.status is s] for s in CandidateStatus}
    if not window.candidates:
        return cmd.SpawnCandidates(config=CFG)
    if window.baseline is None:
        return cmd.RecordBaseline(metrics=BASELINE, config=CFG)
    if by[CandidateStatus.SPAWNED]:
        return cmd.StartTraining(candidate=by[CandidateStatus.SPAWNED][0].id)
    if by[CandidateStatus.TRAINING]:
        c = by[CandidateStatus.TRAINING][0]
        if outcome[c.id] == "fail":
            return cmd.FailTraining(candidate=c.id, reason="worker died")
        used = BudgetUsed(steps=10, walltime_minutes=1.0, tokens_processed=100)
        return cmd.FinishTraining(candidate=c.id, stats=TrainingStats(), budget_used=used)
    if by[CandidateStatus.TRAINED]:
        c = by[CandidateStatus.TRAINED][0]
        return cmd.RecordEvaluation(candidate=c.id, metrics=outcome[c.id], config=CFG)
    if window.ranking is None:
        return cmd.Rank()
    if unfrozen := [c for c in cands if not c.frozen]:
        c = unfrozen[0]
        return cmd.Freeze(
            candidate=c.id,
            archive=f"archive/{c.id}",
            archive_hash=fake_hash("archive" + c.id),
            model_hash=fake_hash("model" + c.id),
            manifest_hash=fake_hash("manifest" + c.id),
        )
    proposal, _reason = draft_proposal(state)
    return cmd.Propose(proposal=proposal, proposal_hash=proposal_hash(proposal) if proposal else "")


class Crasher:
    """Patches one ``App`` so that the process dies at ``point`` (with ``head_moves``: only in a
    command whose batch moves HEAD, a cutover or a rollback); dead stays dead."""

    def __init__(self, app: App, point: str, cut: float, head_moves: bool) -> None:
        self.app, self.point, self.cut, self.head_moves = app, point, cut, head_moves
        self.dead = False
        self.live = False  # the command in flight is one to crash in
        self.swaps = 0

    def die(self) -> None:
        self.dead = True
        raise Crash(self.point)

    @contextmanager
    def installed(self) -> Iterator[None]:
        ledger = self.app.store.ledger
        real_append, real_point = ledger.append, links.point
        real_materialize = adapters.runtime.materialize.materialize

        def append(events: Any, *, expected_seq: int | None = None) -> Any:
            if self.dead:
                self.die()
            moves = any(isinstance(e, (ev.Promoted, ev.RolledBack)) for e in events)
            self.live, self.swaps = moves or not self.head_moves, 0
            if self.live and self.point == "before_append":
                self.die()
            if self.live and self.point == "torn_append":
                ledger.recover()  # what a real writer does first under the lock
                tail = ledger.tail()
                data, _ = encode_batch(tail.seq + 1, tail.hash, events, utc_now())
                cut = min(len(data) - 1, max(1, int(len(data) * self.cut)))
                fd = os.open(ledger.path, os.O_WRONLY | os.O_APPEND)
                try:
                    os.write(fd, data[:cut])
                finally:
                    os.close(fd)
                self.die()
            return real_append(events, expected_seq=expected_seq)

        def point(path: Path, target: str | None) -> bool:
            self.swaps += 1
            if self.dead or self.live and (
                (self.point == "after_append" and self.swaps == 1)
                or (self.point == "between_swaps" and self.swaps == 2)
            ):
                self.die()
            return real_point(path, target)

        def materialize(*args: Any, **kwargs: Any) -> None:
            if self.dead:
                self.die()
            real_materialize(*args, **kwargs)

        ledger.append = append  # type: ignore[method-assign]
        links.point = point
        adapters.runtime.materialize.materialize = materialize
        try:
            yield
        finally:
            del ledger.append
            links.point = real_point
            adapters.runtime.materialize.materialize = real_materialize


class RolloutMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.home = Path(tempfile.mkdtemp(prefix="evo-rollout-", dir=SCRATCH))
        self.app: App | None = None
        self.armed: tuple[str, float, bool] | None = None
        self.stale = False  # a crash may have left the links behind the ledger
        self.pending: tuple[cmd.Command, int, tuple[str | None, str | None]] | None = None
        self.lost: list[ev.Event] = []
        self._fresh: tuple[tuple[int, int, int], list[ev.Event], State] | None = None
        # the model
        self.head = GENESIS
        self.promoted = [GENESIS]
        self.parent_of: dict[str, str | None] = {GENESIS: None}
        self.phase = "idle"
        self.cycle = 0
        self.window_head = GENESIS
        self.proposed: str | None = None
        self.burn_prev: str | None = None
        self.samples: list[float] = []
        self.answers: list[tuple[bool, bool, float | None]] = []

    def teardown(self) -> None:
        if self.app is not None:
            self.app.close()
        shutil.rmtree(self.home, ignore_errors=True)

    # ------------------------------------------------------------------ plumbing

    def open_app(self) -> App:
        if self.app is None:
            self.app = App(self.home, snapshot_every=7)
        return self.app

    def fresh(self) -> tuple[list[ev.Event], State]:
        """The ledger's events and their fresh fold (re-read only when the file changed)."""
        st_ = os.stat(self.home / "ledger.jsonl")
        key = (st_.st_ino, st_.st_size, st_.st_mtime_ns)
        if self._fresh is None or self._fresh[0] != key:
            with Ledger(self.home, fsync=False) as led:
                events = [r.event for r in led.records()]
            self._fresh = (key, events, fold(events))
        return self._fresh[1], self._fresh[2]

    @property
    def state(self) -> State:
        return self.open_app().state()

    def links_now(self) -> tuple[str | None, str | None]:
        ws = Workspace(self.home)
        return links.read_link(ws.head_link(AGENT)), links.read_link(ws.parent_link(AGENT))

    @contextmanager
    def process(self) -> Iterator[App]:
        """One process's lifetime: the App, with the armed crash installed. A crash ends the
        block (the ``with`` body stops there, as the process did) and the App is dropped."""
        app = self.open_app()
        if self.armed is None:
            yield app
            return
        crasher = Crasher(app, *self.armed)
        try:
            with crasher.installed():
                yield app
        except Crash:
            self.crashed(app, crasher.point)

    def run(self, command: cmd.Command) -> list[ev.Event]:
        """Execute ``command`` in a process of its own (``DomainError`` propagates); what the
        ledger durably holds for it: all its events, or none when the crash came first."""
        self.lost = []
        with self.process() as app:
            return self.step(app, command)
        return self.lost

    def step(self, app: App, command: cmd.Command) -> list[ev.Event]:
        self.pending = (command, app.store.ledger.tail().seq, self.links_now())
        out = app.execute(command).events
        self.stale = False  # every successful command reconciles the links
        note(f"{type(command).__name__} -> {[type(e).__name__ for e in out]}")
        self.expect(command, out)
        return out

    def crashed(self, app: App, point: str) -> None:
        assert self.pending is not None
        command, before_seq, before_links = self.pending
        self.armed = None
        app.close()
        self.app = None
        with Ledger(self.home, fsync=False) as led:
            out = [r.event for r in led.records(start_seq=before_seq + 1)]
        note(f"{type(command).__name__} CRASHED at {point} -> durable {[type(e).__name__ for e in out]}")
        event(f"crash at {point}")
        now = self.links_now()
        if point in ("before_append", "torn_append"):
            assert out == [] and now == before_links  # nothing happened
        else:
            assert out, "the append was durable before the crash"
            assert now[0] == before_links[0], "HEAD was swapped before the crash point"
            if point == "after_append":
                assert now[1] == before_links[1]
            else:
                assert now[1] == target(ledger_state(self.home).parent)
            self.stale = True
            if any(isinstance(e, (ev.Promoted, ev.RolledBack)) for e in out):
                event(f"crash at {point} of a HEAD move")
            self.expect(command, out)
        self.lost = out

    def refused(self, command: cmd.Command) -> None:
        app = self.open_app()
        tail = app.store.ledger.tail()
        with pytest.raises(DomainError) as info:
            app.execute(command)
        note(f"{type(command).__name__} refused: {info.value}")
        assert app.store.ledger.tail() == tail

    def beat_to(self, cycle: int) -> None:
        for _ in range(3):  # a crash loses at most one batch
            if self.cycle >= cycle:
                return
            self.run(cmd.Beat(period=P, count=cycle - self.cycle))
        assert self.cycle >= cycle

    # ------------------------------------------------------------------ the model

    def expect(self, command: cmd.Command, out: list[ev.Event]) -> None:
        """Check what the ledger recorded for ``command`` against the model, then update it."""
        kinds = [type(e) for e in out]
        if not isinstance(command, (cmd.Rollback, cmd.CompleteShadow, cmd.CompleteBurnIn)):
            assert ev.Promoted not in kinds and ev.RolledBack not in kinds, kinds
        match command:
            case cmd.Beat(count=n):
                beats = [e.cycle for e in out if isinstance(e, ev.Heartbeat)]
                assert beats == list(range(self.cycle + 1, self.cycle + n + 1))
                crossed = self.cycle // P < beats[-1] // P
                assert (ev.WindowOpened in kinds) == (crossed and self.phase == "idle"), kinds
                self.cycle = beats[-1]
                if ev.WindowOpened in kinds:
                    self.phase, self.window_head = "window", self.head
            case cmd.Propose():
                (done,) = out
                if isinstance(done, ev.Proposed):
                    self.phase, self.proposed = "proposed", done.proposal.candidate
                    self.parent_of[done.proposal.candidate] = self.window_head
                else:
                    assert isinstance(done, ev.NoPromotion), done
                    self.phase = "idle"
            case cmd.Approve():
                assert kinds == [ev.Approved]
                self.phase = "approved"
            case cmd.Reject():
                assert kinds == [ev.Rejected]
                self.phase = "idle"
            case cmd.StartShadow():
                assert kinds == [ev.ShadowStarted]
                self.phase, self.samples = "shadow", []
            case cmd.RecordShadow(similarity=similarity):
                assert kinds == [ev.ShadowCompared]
                self.samples.append(similarity)
            case cmd.CompleteShadow():
                done = out[0]
                assert isinstance(done, ev.ShadowCompleted)
                s = CFG.shadow
                n = len(self.samples)
                want = ("inconclusive" if n < s.min_samples
                        else "failed" if sum(self.samples) / n < s.parity_threshold else "passed")
                assert done.outcome == want, (done.outcome, want, self.samples)
                event(f"shadow {want}")
                if want == "failed":
                    self.phase = "idle"
                elif want == "passed":
                    assert kinds == [ev.ShadowCompleted, ev.Promoted]
                    promoted = out[1]
                    assert isinstance(promoted, ev.Promoted)
                    assert promoted.generation == self.proposed and promoted.previous_head == self.head
                    assert self.proposed is not None and self.proposed not in self.promoted
                    self.burn_prev, self.head = self.head, self.proposed
                    self.promoted.append(self.proposed)
                    self.phase, self.answers = "burn_in", []
                    event("promoted")
            case cmd.RecordAnswer(error=error, law_violation=law, latency_ratio=latency):
                assert kinds == [ev.AnswerObserved]
                self.answers.append((error, law, latency))
            case cmd.CompleteBurnIn():
                b = CFG.burn_in
                n = len(self.answers)
                if n < b.min_answers:
                    assert kinds == [ev.BurnInExtended]
                    event("burn-in extended")
                    return
                ratios = [r for _, _, r in self.answers if r is not None]
                failed = (sum(e for e, _, _ in self.answers) / n > b.max_error_rate
                          or sum(law for _, law, _ in self.answers) > b.max_law_violations
                          or (bool(ratios) and sum(ratios) / len(ratios) > b.max_latency_ratio))
                event(f"burn-in {'failed' if failed else 'passed'}")
                if failed:
                    assert kinds == [ev.BurnInFailed, ev.RolledBack]
                    back = out[1]
                    assert isinstance(back, ev.RolledBack) and back.automatic
                    assert back.to_generation == self.burn_prev
                    assert self.burn_prev is not None
                    self.head = self.burn_prev
                else:
                    assert kinds == [ev.BurnInPassed]
                self.phase = "idle"
            case cmd.Rollback(to=to):
                back_to = self.expected_rollback(to)
                (back,) = out
                assert isinstance(back, ev.RolledBack) and back.to_generation == back_to, (back, back_to)
                event(f"rollback in {self.phase}")
                assert back_to is not None
                self.head = back_to
                if self.phase != "window":
                    self.phase = "idle"
            case _:  # the runner's window steps: HEAD never moves
                assert self.phase == "window"

    def expected_rollback(self, to: str | None) -> str | None:
        """The model's rollback rule; None when it must be refused."""
        aborting = self.phase in ("approved", "shadow")
        want: str | None
        if to is not None:
            matches = [g for g in self.promoted if g == to] or [g for g in self.promoted if g.startswith(to)]
            if len(matches) != 1:
                return None
            want = matches[0]
        elif aborting:
            want = self.head
        elif self.phase == "burn_in":
            want = self.burn_prev
        else:
            earlier = [g for g in self.promoted if gen_of(g) < gen_of(self.head)]
            if not earlier:
                return None
            want = max(earlier, key=lambda g: (gen_of(g), self.promoted.index(g)))
        if want == self.head and not aborting:
            return None
        return want

    # ------------------------------------------------------------------ rules

    @initialize()
    def init(self) -> None:
        new_workspace(self.home)

    @rule(point=st.sampled_from(POINTS), cut=st.floats(0.0, 1.0), head_moves=st.booleans())
    def crash(self, point: str, cut: float, head_moves: bool) -> None:
        self.armed = (point, cut, head_moves)
        note(f"armed: crash at {point}" + (" of the next HEAD move" if head_moves else ""))

    @rule()
    def restart(self) -> None:
        """What every evo command's startup does: open the workspace, reconcile from the ledger."""
        if self.app is not None:
            self.app.close()
        self.app = App(self.home, snapshot_every=7)
        changed = self.app.sync()
        note(f"restart: {changed}")
        self.stale = False

    @rule(n=st.integers(1, 6))
    def beat(self, n: int) -> None:
        self.run(cmd.Beat(period=P, count=n))

    @precondition(lambda self: self.stale)
    @rule()
    def agent_heartbeats_first_after_a_crash(self) -> None:
        """The agent is often the first process to run after a crash, and it only heartbeats."""
        self.run(cmd.Beat(period=P))

    @precondition(lambda self: self.phase in ("idle", "window"))
    @rule(outcomes=st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=2), deferred=st.booleans())
    def window(self, outcomes: list[Any], deferred: bool) -> None:
        """Beat to the next window and run it to its proposal (or none), as `evo train` +
        `evo evaluate` would, restarting after a crash."""
        if self.phase == "idle":
            self.beat_to((self.cycle // P + 1) * P)
        for _ in range(30):
            if self.phase != "window":
                return
            with self.process() as app, app.deferred() if deferred else _nothing():
                while self.phase == "window":
                    self.step(app, runner_command(app.state(), outcomes))
        assert self.phase != "window"

    @precondition(lambda self: self.phase == "proposed")
    @rule(how=st.sampled_from(["pending", "full", "prefix", "stale", "reject", "reject-empty"]))
    def operator_decides(self, how: str) -> None:
        pending = self.state.proposal
        assert pending is not None
        if how == "stale":
            self.refused(cmd.Approve(**SIGNED, operator="op", proposal_hash=fake_hash("old proposal")))
        elif how == "reject-empty":
            self.refused(cmd.Reject(**SIGNED, operator="op", reason=""))
        elif how == "reject":
            self.run(cmd.Reject(**SIGNED, operator="op", reason="tone drifts"))
        else:
            given = {"pending": None, "full": pending.hash, "prefix": pending.hash[:8]}[how]
            self.run(cmd.Approve(**SIGNED, operator="op", proposal_hash=given))

    @precondition(lambda self: self.phase in ("approved", "shadow"))
    @rule(samples=st.lists(st.sampled_from([1.0, 1.0, 0.9, 0.3, 0.0]), max_size=3), complete=st.booleans())
    def shadow(self, samples: list[float], complete: bool) -> None:
        if self.phase == "approved" and not self.run(cmd.StartShadow(config=CFG)):
            return
        for i, similarity in enumerate(samples):
            self.run(cmd.RecordShadow(exact=similarity == 1.0, similarity=similarity, query_id=f"q{i}"))
        if not complete:
            return
        shadow = self.state.shadow
        assert shadow is not None
        if self.cycle < shadow.until_cycle:
            self.refused(cmd.CompleteShadow(config=CFG))
            self.beat_to(shadow.until_cycle)
        self.run(cmd.CompleteShadow(config=CFG))

    @precondition(lambda self: self.phase == "burn_in")
    @rule(
        answers=st.lists(st.sampled_from(ANSWERS), max_size=3),
        complete=st.booleans(),
    )
    def burn_in(self, answers: list[tuple[bool, bool, float | None]], complete: bool) -> None:
        for i, (error, law, latency) in enumerate(answers):
            self.run(cmd.RecordAnswer(error=error, law_violation=law, latency_ratio=latency, query_id=f"a{i}"))
        if not complete:
            return
        burn = self.state.burn_in
        assert burn is not None
        if self.cycle < burn.until_cycle:
            self.refused(cmd.CompleteBurnIn(config=CFG))
            self.beat_to(burn.until_cycle)
        self.run(cmd.CompleteBurnIn(config=CFG))

    @rule(data=st.data())
    def advance(self, data: st.DataObject) -> None:
        """The natural next step of whatever is in progress (the runner and a willing operator)."""
        if self.phase in ("idle", "window"):
            self.window([data.draw(st.sampled_from(OUTCOMES[:4]), label="outcome")], deferred=True)
        elif self.phase == "proposed":
            self.operator_decides("pending")
        elif self.phase in ("approved", "shadow"):
            self.shadow(data.draw(st.lists(st.sampled_from([1.0, 0.9]), min_size=1, max_size=2)), complete=True)
        else:
            self.burn_in(data.draw(st.lists(st.sampled_from(ANSWERS), min_size=2, max_size=3)), complete=True)

    @rule(
        to=st.sampled_from([None, None, GENESIS, "Luna-G00", "Luna-G001", "garbage", "last", "proposed"]),
        now=st.integers(0, 2),
    )
    def rollback(self, to: str | None, now: int) -> None:
        if now:  # an operator rolls back rarely: let most rollouts run their course
            return
        if to == "last":
            to = self.promoted[-1]
        elif to == "proposed":  # never promoted (yet): refused
            to = self.proposed if self.proposed and self.proposed not in self.promoted else "Luna-G099-x-c1"
        command = cmd.Rollback(operator="op", to=to)
        if self.expected_rollback(to) is None:
            self.refused(command)
        else:
            self.run(command)

    # ------------------------------------------------------------------ invariants

    @invariant()
    def the_ledger_verifies_and_folds_to_the_model(self) -> None:
        with Ledger(self.home, fsync=False) as led:
            report = led.verify()
        assert report.ok, report.problems
        events, state = self.fresh()
        check_history(events, P)  # every event one its phase accepts, windows covered
        check_invariants(state)
        assert state.head == self.head, (state.head, self.head)
        assert list(state.promoted) == self.promoted
        assert state.phase.value == self.phase, (state.phase, self.phase)
        assert state.cycle == self.cycle
        assert self.open_app().state() == state  # the store (snapshot + tail) agrees
        assert state.parent == self.parent_of[self.head]

    @invariant()
    def head_link_is_always_a_promoted_generation(self) -> None:
        head, _parent = self.links_now()
        assert head in {links.link_target(g) for g in self.promoted}, head

    @invariant()
    def links_agree_with_the_ledger_unless_a_crash_left_them(self) -> None:
        if self.stale:
            return
        _events, state = self.fresh()
        assert self.links_now() == (target(state.head), target(state.parent))
        assert self.links_now() == (target(self.head), target(self.parent_of[self.head]))


@contextmanager
def _nothing() -> Iterator[None]:
    yield


RolloutMachine.TestCase.settings = settings(
    max_examples=80,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestRolloutMachine = RolloutMachine.TestCase


# --------------------------------------------------------------------------- examples


def shadow_done(home: Path) -> App:
    """A whole window, approval and shadow through the App, up to the cutover (CompleteShadow)."""
    app = App(home)
    app.execute(cmd.Beat(period=P, count=P))
    while app.state().phase is Phase.WINDOW:
        app.execute(runner_command(app.state(), [BETTER, GOOD]))
    app.execute(cmd.Approve(**SIGNED, operator="op"))
    app.execute(cmd.StartShadow(config=CFG))
    for _ in range(CFG.shadow.min_samples):
        app.execute(cmd.RecordShadow(exact=True, similarity=1.0))
    app.execute(cmd.Beat(period=P, count=CFG.shadow.cycles))
    return app


def cut_over(app: App) -> str:
    out = app.execute(cmd.CompleteShadow(config=CFG)).events
    promoted = out[-1]
    assert isinstance(promoted, ev.Promoted)
    return promoted.generation


def crash_links_at(monkeypatch: pytest.MonkeyPatch, swap: int) -> None:
    """The process dies at link swap number ``swap`` (1: PARENT, 2: HEAD)."""
    real = links.point
    calls = [0]

    def point(path: Path, target: str | None) -> bool:
        calls[0] += 1
        if calls[0] >= swap:
            raise Crash(f"swap {swap}")
        return real(path, target)

    monkeypatch.setattr(links, "point", point)


def read_links(home: Path) -> tuple[str | None, str | None]:
    ws = Workspace(home)
    return links.read_link(ws.head_link(AGENT)), links.read_link(ws.parent_link(AGENT))


def assert_agree(home: Path) -> None:
    """The ledger verifies and both links point where a fresh fold of it says."""
    with Ledger(home, fsync=False) as led:
        report = led.verify()
    assert report.ok and report.torn is None, report
    state = ledger_state(home)
    assert read_links(home) == (target(state.head), target(state.parent))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    new_workspace(tmp_path / "w")
    return tmp_path / "w"


@pytest.mark.parametrize("restart", ["sync", "heartbeat"])
def test_a_crash_between_the_cutover_append_and_the_link_swap_is_reconciled_on_restart(
    home: Path, monkeypatch: pytest.MonkeyPatch, restart: str
) -> None:
    app = shadow_done(home)
    candidate = app.state().proposal.proposal.candidate  # type: ignore[union-attr]
    crash_links_at(monkeypatch, 1)
    with pytest.raises(Crash):
        app.execute(cmd.CompleteShadow(config=CFG))
    app.close()
    monkeypatch.undo()
    assert ledger_state(home).head == candidate  # the ledger says X
    assert read_links(home) == (target(GENESIS), None)  # the links still say Y
    with App(home) as again:  # restart: evo status's startup, or the agent's next heartbeat
        if restart == "sync":
            assert again.sync() == [f"Luna-GHEAD-PARENT -> {target(GENESIS)}", f"Luna-GHEAD -> {target(candidate)}"]
        else:
            again.execute(cmd.Beat(period=P))
    assert read_links(home) == (target(candidate), target(GENESIS))
    assert_agree(home)


def test_a_crash_between_the_two_link_swaps_leaves_head_untouched_until_restart(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = shadow_done(home)
    crash_links_at(monkeypatch, 2)
    with pytest.raises(Crash):
        cut_over(app)
    app.close()
    monkeypatch.undo()
    candidate = ledger_state(home).head
    assert candidate != GENESIS
    assert read_links(home) == (target(GENESIS), target(GENESIS))  # PARENT repointed, HEAD not
    with App(home) as again:
        assert again.sync() == [f"Luna-GHEAD -> {target(candidate)}"]
    assert read_links(home) == (target(candidate), target(GENESIS))


@pytest.mark.parametrize("restart", ["sync", "heartbeat"])
def test_a_crash_between_the_rollback_append_and_the_link_swap_is_reconciled_on_restart(
    home: Path, monkeypatch: pytest.MonkeyPatch, restart: str
) -> None:
    with shadow_done(home) as app:
        candidate = cut_over(app)
    assert read_links(home) == (target(candidate), target(GENESIS))
    app = App(home)
    crash_links_at(monkeypatch, 1)
    with pytest.raises(Crash):
        app.execute(cmd.Rollback(operator="op"))  # during the burn-in: back to the previous HEAD
    app.close()
    monkeypatch.undo()
    assert ledger_state(home).head == GENESIS  # the ledger says X
    assert read_links(home) == (target(candidate), target(GENESIS))  # the links still say Y
    with App(home) as again:
        if restart == "sync":
            again.sync()
        else:
            again.execute(cmd.Beat(period=P))
    assert read_links(home) == (target(GENESIS), None)
    assert_agree(home)


@pytest.mark.parametrize("torn", ["mid-record", "incomplete batch"])
def test_a_torn_cutover_append_promotes_nothing_and_is_moved_aside(home: Path, torn: str) -> None:
    app = shadow_done(home)
    state = app.state()
    app.close()
    events = decide(state, cmd.CompleteShadow(config=CFG))
    assert [type(e) for e in events] == [ev.ShadowCompleted, ev.Promoted]
    with Ledger(home) as led:
        tail = led.tail()
    data, _ = encode_batch(tail.seq + 1, tail.hash, events, utc_now())
    cut = len(data) - 1 if torn == "mid-record" else data.index(b"\n") + 1
    with open(home / "ledger.jsonl", "ab") as f:
        f.write(data[:cut])  # a writer killed mid-write
    with App(home) as again:  # restart
        again.sync()
        assert again.state() == state and ledger_state(home).head == GENESIS
        assert read_links(home) == (target(GENESIS), None)
        candidate = cut_over(again)  # the next append moves the torn tail aside first
    assert len(list(home.glob("ledger.jsonl.torn-*"))) == 1
    assert read_links(home) == (target(candidate), target(GENESIS))
    assert_agree(home)
