"""Approval, shadow, cutover, burn-in and rollback through the REAL shell (``adapters.runtime.app.App``
on a workspace: the ledger file, fsync, the GEN_HEAD / GEN_HEAD-PARENT symlinks), with a crash
injected anywhere, checked against a trivial model of HEAD.

A crash (``crash.py``) is armed by the ``crash`` rule and fires in the next command that reaches
its point (or, half the time, the next one whose batch moves HEAD: a cutover or a rollback).
The ``App`` is dropped; the next rule opens a new one (``restart``: open + ``sync``, what
``evo status`` does at startup; or simply the next command, which must reconcile by itself).

The model is ``HeadModel`` (``model.py``: HEAD, the promoted generations and their parents, the
phase, the shadow's samples and the burn-in's answers; it predicts shadow and burn-in outcomes
and rollback targets on its own), which ``test_machine.py`` shares, plus the cycle.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from adapters.runtime import links
from adapters.runtime.app import App
from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.errors import DomainError
from evo_core.state import State
from adapters.runtime.history import verified_fold
from ledger.store import Ledger
from tests import operator_key
from tests.core.helpers import SIGNED, check_history, check_invariants, fake_hash
from tests.stateful.crash import POINTS, Crash, Crasher
from tests.stateful.model import Answer, HeadModel
from tests.stateful.rollout import (
    ANSWERS,
    CFG,
    GENESIS,
    OUTCOMES,
    P,
    SCRATCH,
    ledger_state,
    new_workspace,
    read_links,
    runner_command,
    target,
)


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
        self.model = HeadModel()
        self.model.register(GENESIS)  # the workspace starts with its genesis
        self.cycle = 0

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
                state, step = State(), verified_fold(led).evolve  # the fold every process uses
                for e in events:
                    state = step(state, e)
            self._fresh = (key, events, state)
        return self._fresh[1], self._fresh[2]

    @property
    def state(self) -> State:
        return self.open_app().state()

    def links_now(self) -> tuple[str | None, str | None]:
        return read_links(self.home)

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
        command = operator_key.signed(app, command)  # what the tests mark SIGNED, signed for real
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
            app.execute(operator_key.signed(app, command))
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
                assert (ev.WindowOpened in kinds) == (crossed and self.model.phase == "idle"), kinds
                self.cycle = beats[-1]
                if ev.WindowOpened in kinds:
                    self.model.open_window()
            case cmd.Propose():
                (done,) = out
                if isinstance(done, ev.Proposed):
                    self.model.propose(done.proposal.candidate)
                else:
                    assert isinstance(done, ev.NoPromotion), done
                    self.model.phase = "idle"
            case cmd.Approve():
                assert kinds == [ev.Approved]
                self.model.phase = "approved"
            case cmd.Reject():
                assert kinds == [ev.Rejected]
                self.model.phase = "idle"
            case cmd.StartShadow():
                assert kinds == [ev.ShadowStarted]
                self.model.start_shadow()
            case cmd.RecordShadow(similarity=similarity):
                assert kinds == [ev.ShadowCompared]
                self.model.samples.append(similarity)
            case cmd.CompleteShadow():
                done = out[0]
                assert isinstance(done, ev.ShadowCompleted)
                want = self.model.shadow_verdict(CFG)
                assert done.outcome == want, (done.outcome, want, self.model.samples)
                event(f"shadow {want}")
                if want == "passed":
                    assert kinds == [ev.ShadowCompleted, ev.Promoted]
                    promoted = out[1]
                    assert isinstance(promoted, ev.Promoted)
                    assert promoted.generation == self.model.proposed and promoted.previous_head == self.model.head
                    event("promoted")
                self.model.complete_shadow(want)
            case cmd.RecordAnswer(error=error, law_violation=law, latency_ratio=latency):
                assert kinds == [ev.AnswerObserved]
                self.model.answers.append((error, law, latency))
            case cmd.CompleteBurnIn():
                verdict = self.model.burn_in_verdict(CFG)
                if verdict == "extended":
                    assert kinds == [ev.BurnInExtended]
                    event("burn-in extended")
                elif verdict == "failed":
                    event("burn-in failed")
                    assert kinds == [ev.BurnInFailed, ev.RolledBack]
                    back = out[1]
                    assert isinstance(back, ev.RolledBack) and back.automatic
                    assert back.to_generation == self.model.burn_prev
                else:
                    event("burn-in passed")
                    assert kinds == [ev.BurnInPassed]
                self.model.complete_burn_in(verdict)
            case cmd.Rollback(to=to):
                back_to = self.model.expected_rollback(to)
                (back,) = out
                assert isinstance(back, ev.RolledBack) and back.to_generation == back_to, (back, back_to)
                event(f"rollback in {self.model.phase}")
                assert back_to is not None
                self.model.roll_back(back_to)
            case _:  # the runner's window steps: HEAD never moves
                assert self.model.phase == "window"

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

    @precondition(lambda self: self.model.phase in ("idle", "window"))
    @rule(outcomes=st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=2), deferred=st.booleans())
    def window(self, outcomes: list[Any], deferred: bool) -> None:
        """Beat to the next window and run it to its proposal (or none), as `evo train` +
        `evo evaluate` would, restarting after a crash."""
        if self.model.phase == "idle":
            self.beat_to((self.cycle // P + 1) * P)
        for _ in range(30):
            if self.model.phase != "window":
                return
            with self.process() as app, app.deferred() if deferred else nullcontext():
                while self.model.phase == "window":
                    self.step(app, runner_command(app.state(), outcomes))
        assert self.model.phase != "window"

    @precondition(lambda self: self.model.phase == "proposed")
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

    @precondition(lambda self: self.model.phase in ("approved", "shadow"))
    @rule(samples=st.lists(st.sampled_from([1.0, 1.0, 0.9, 0.3, 0.0]), max_size=3), complete=st.booleans())
    def shadow(self, samples: list[float], complete: bool) -> None:
        if self.model.phase == "approved" and not self.run(cmd.StartShadow(config=CFG)):
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

    @precondition(lambda self: self.model.phase == "burn_in")
    @rule(
        answers=st.lists(st.sampled_from(ANSWERS), max_size=3),
        complete=st.booleans(),
    )
    def burn_in(self, answers: list[Answer], complete: bool) -> None:
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
        if self.model.phase in ("idle", "window"):
            self.window([data.draw(st.sampled_from(OUTCOMES[:4]), label="outcome")], deferred=True)
        elif self.model.phase == "proposed":
            self.operator_decides("pending")
        elif self.model.phase in ("approved", "shadow"):
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
            to = self.model.promoted[-1]
        elif to == "proposed":  # never promoted (yet): refused
            proposed = self.model.proposed
            to = proposed if proposed and proposed not in self.model.promoted else "Luna-G099-x-c1"
        command = cmd.Rollback(**SIGNED, operator="op", to=to)
        if self.model.expected_rollback(to) is None:
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
        assert state.head == self.model.head, (state.head, self.model.head)
        assert list(state.promoted) == self.model.promoted
        assert state.phase.value == self.model.phase, (state.phase, self.model.phase)
        assert state.cycle == self.cycle
        assert self.open_app().state() == state  # the store (snapshot + tail) agrees
        assert state.parent == self.model.parent_of[self.model.head]

    @invariant()
    def head_link_is_always_a_promoted_generation(self) -> None:
        head, _parent = self.links_now()
        assert head in {links.link_target(g) for g in self.model.promoted}, head

    @invariant()
    def links_agree_with_the_ledger_unless_a_crash_left_them(self) -> None:
        if self.stale:
            return
        _events, state = self.fresh()
        assert self.links_now() == (target(state.head), target(state.parent))
        assert self.links_now() == (target(self.model.head), target(self.model.parent_of[self.model.head]))



RolloutMachine.TestCase.settings = settings(
    max_examples=80,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestRolloutMachine = RolloutMachine.TestCase
