"""``evo run``: the imperative shell that follows the ledger and performs what the core says is due.

Theory of operation
-------------------
One loop: fold the ledger (``App.state()``: the event store folds only the records appended
since its last look), ask ``reactions(state)`` what is due, perform one group through the
table from action type to handler (``adapters.runtime.perform``: all the due training at once in the
process pool, with per-candidate progress bars, else one action: an evaluation, a freeze, a
rollout step), whose handler appends the outcome, and ask again. During a shadow phase with
``shadow.replay`` on, the runner also replays trivial queries through the router once per
process (``ReplayShadow``, its own action, idempotent).

Nothing due (or a group that appended nothing): with ``until_idle`` it returns; otherwise it
sleeps until the ledger changes (``LedgerWatch``: inotify on the ledger's folder, a 0.5 s
``stat`` fallback), so an idle runner costs no CPU. A group that appended nothing is not
tried again until the ledger moved: the loop never spins.

Never in the agent's way: the runner holds the ledger's lock only inside an append (as every
writer does), never while it trains or evaluates, so a heartbeat waits at most one append.

Crash safety: everything the runner knows is in the ledger. Killed at any moment and started
again, it reconciles the links (``App.sync``), asks ``reactions`` again and gets what is still
missing: a candidate found TRAINING is retrained from scratch (a finished one never is), a
freeze temp folder of a dead process is swept, an archive renamed into place whose
CandidateFrozen never reached the ledger is re-used when whole (``freeze.archive.reclaim``).
Training workers die with the runner (``PR_SET_PDEATHSIG``, ``adapters.runtime.workers``), so none trains on unseen.

One runner per workspace: ``run`` holds ``<home>/.evo/runner.lock`` (``flock``, released by the
kernel however the process ends); a second one exits 1 naming the holder's pid, host and start.

A step that fails with a domain or workspace error (a config.toml that does not validate, a
window whose data cannot train) ends ``evo run --until-idle`` with its one line (exit 1); the
daemon prints the line and waits for the ledger to move before it asks again.

Signals: SIGINT/SIGTERM raise ``Interrupted`` out of whatever the runner is doing (the first
one; later ones are ignored while it stops). It kills its training workers (they ignore
SIGINT/SIGTERM themselves, so a Ctrl-C on the terminal never fails a candidate), appends
``WorkInterrupted`` naming the actions in progress (nothing when it was idle) and returns;
``evo run`` then exits 130 or 143. Interrupted work is simply due again at the next start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import msgspec

from adapters.runtime.app import App
from adapters.runtime.ledger_watch import LedgerWatch
from adapters.runtime.perform import HANDLERS, Handler, Turn, group, perform
from adapters.runtime.runner_lock import RunnerLock
from adapters.runtime.workers import stop_workers, train_worker
from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.errors import EvoError
from evo_core.reactions import Action, reactions
from evo_core.state import Phase, State
from ledger.port import LedgerPort
from ledger.record import GENESIS_PREV
from ledger.tail import Checkpoint

if TYPE_CHECKING:
    from evo_core.config import EvoConfig

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


class ReplayShadow(Action, frozen=True):
    """The runner's own: mirror replayed trivial queries to the shadow (``shadow.replay``)."""

    generation: str


class Interrupted(BaseException):
    """A signal stops the runner (raised out of whatever it was doing)."""

    def __init__(self, signal_name: str):
        super().__init__(signal_name)
        self.signal = signal_name


class RunReport(msgspec.Struct, frozen=True, kw_only=True):
    performed: tuple[str, ...]  # by name, in order: the actions due as each group began
    events: int  # non-heartbeat records that reached the ledger while it ran
    phase: str  # when it stopped
    head: str | None
    seq: int  # the ledger's last record when it stopped
    interrupted: str = ""  # "SIGINT" / "SIGTERM" when a signal stopped it
    watch: str = ""  # how it waited: "inotify" or "stat"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.interrupted, 0)


def action_name(action: Action) -> str:
    """``TrainCandidate:Luna-G001-a-c2500``: the action's type and its key (its first field)."""
    values = msgspec.structs.astuple(action)
    return f"{type(action).__name__}:{values[0]}" if values else type(action).__name__


class Runner:
    """Follows one workspace's ledger and performs what is due (see the module doc)."""

    def __init__(
        self,
        home: str | os.PathLike[str],
        *,
        say: Callable[[str], None] = print,
        progress: bool = True,
        worker: Callable[[bytes, Any], None] | None = None,
        use_inotify: bool = True,
        handlers: Mapping[type[Action], Handler] | None = None,
        ledger: LedgerPort | None = None,
    ):
        """``ledger``: another ledger than the workspace's file (the in-memory one in orchestration
        unit tests): the runner then only runs ``until_idle`` (it waits on the file's changes)."""
        self.home = Path(home)
        self.ledger = ledger
        self.app = App(self.home, ledger=ledger)
        self.say = say
        self.progress = progress
        self.worker = worker or train_worker
        self.use_inotify = use_inotify
        # the core's actions through adapters.runtime.perform's table, and the runner's own shadow replay
        self.handlers: dict[type[Action], Handler] = {**HANDLERS, ReplayShadow: self._replay, **(handlers or {})}
        self.watch: LedgerWatch | None = None
        self._current: tuple[str, ...] = ()  # the actions in progress
        self._signal = ""
        self._finishing = False
        self._stop_requested = False
        self._performed: list[str] = []
        self._events = 0
        self._phase: Phase | None = None
        self._replayed: dict[str, int] = {}  # shadow generation -> its samples at the last replay
        self._seen = Checkpoint(-1, "")
        self._seen_offset = 0

    def close(self) -> None:
        if self.watch is not None:
            self.watch.close()
            self.watch = None
        self.app.close()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the loop

    def run(self, until_idle: bool = False) -> RunReport:
        """Perform what is due until idle (``until_idle``) or until a signal stops it.
        ``RunnerBusy`` if another runner runs on the workspace (``adapters.runtime.runner_lock``)."""
        with self._exclusive(), self._signals():
            try:
                self._start()
                self._loop(until_idle)
            except Interrupted as stop:
                stop_workers()
                self._record_interruption(stop.signal)
            self._finishing = True  # a signal from now on is only noted
            return self._report()

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One runner per workspace file: held while it runs (a runner on another ledger, the
        in-memory one of unit tests, shares no workspace and takes no lock)."""
        if self.ledger is not None:
            yield
            return
        with RunnerLock(self.app.ws):
            yield

    def _start(self) -> None:
        from adapters.freeze.archive import sweep_leftovers

        loaded = self.app.store.load()
        self._seen, self._seen_offset = loaded.checkpoint, loaded.offset
        self.app.sync(loaded.state)  # the links and projection files agree with the ledger
        if self.app.ws.archive.is_dir():
            sweep_leftovers(self.app.ws.archive)

    def _loop(self, until_idle: bool) -> None:
        tried: Checkpoint | None = None  # where a group last appended nothing
        while True:
            if self._stop_requested:
                return
            loaded = self.app.store.load()
            state = loaded.state
            self._follow()
            self._note_phase(state)
            due = self.due(state)
            if due and loaded.checkpoint != tried:
                try:
                    self._perform(group(due))
                except EvoError as exc:
                    if until_idle:
                        raise  # `evo run --until-idle`: one line, exit 1
                    self._current = ()  # the daemon says why and waits for the ledger to move
                    self.say(f"evo run: {exc} (waiting for the ledger to move)")
                if self.app.store.ledger.tail() == loaded.checkpoint:
                    tried = loaded.checkpoint  # it did nothing: wait for the ledger to move
                continue
            if until_idle or self._stop_requested:
                return
            ledger, seen = self.app.store.ledger, loaded.checkpoint
            self._watch().wait(lambda: self._stop_requested or ledger.tail() != seen)
            if self._stop_requested:
                return

    def _watch(self) -> LedgerWatch:
        if self.watch is None:
            self.watch = LedgerWatch(self.app.ws.ledger_path, use_inotify=self.use_inotify)
        return self.watch

    def stop(self) -> None:
        """Ask the loop to return (from another thread): at once when it waits, else after the
        group it is performing. A runner embedded in an agent stops so; ``evo run`` by signals."""
        self._stop_requested = True
        if self.watch is not None:
            self.watch.wake()

    def due(self, state: State) -> list[Action]:
        """The core's reactions, plus the shadow replay: due while the shadow lacks samples,
        first, then again only if the previous replay added some (never over and over)."""
        due: list[Action] = list(reactions(state))
        shadow = state.shadow
        if state.phase is Phase.SHADOW and shadow is not None:
            if self._replayed.get(shadow.generation) != shadow.samples:
                config = self.config()
                if config.shadow.replay and shadow.samples < config.shadow.min_samples:
                    due.append(ReplayShadow(generation=shadow.generation))
        return due

    def config(self) -> EvoConfig:
        """config.toml, validated again only when the file changed (``Workspace.config``)."""
        return self.app.ws.config()

    def _perform(self, actions: list[Action]) -> None:
        self._current = tuple(action_name(a) for a in actions)
        self._performed.extend(self._current)
        turn = Turn(app=self.app, config=self.config(), progress=self.progress, worker=self.worker, follow=self._follow)
        perform(turn, actions, self.handlers)
        self._current = ()
        self._follow()

    def _replay(self, turn: Turn, actions: Sequence[Action]) -> None:
        """``ReplayShadow``: once per process while samples are missing (``due``)."""
        from adapters import rollout
        from adapters.serving.router import Router

        action, state = actions[0], turn.app.state()
        assert isinstance(action, ReplayShadow)
        self._replayed[action.generation] = state.shadow.samples if state.shadow is not None else 0
        with Router(self.home, app=turn.app) as router:
            rollout.replay_shadow(turn.app, turn.config, router)

    # ------------------------------------------------------------------ telling

    def _follow(self) -> None:
        """One line for every record appended since the last look (heartbeats aside)."""
        ledger = self.app.store.ledger
        for rec in ledger.records(self._seen.seq + 1, self._seen_offset, prev=self._seen.hash or GENESIS_PREV):
            self._seen, self._seen_offset = Checkpoint(rec.seq, rec.hash), rec.end
            if not isinstance(rec.event, ev.Heartbeat):
                from projections.summary import describe

                self._events += 1
                self.say(f"{rec.seq:>8}  {describe(rec.event)}")
                if isinstance(rec.event, ev.CandidatesRanked):
                    self._say_ranking(rec.event.window)

    def _say_ranking(self, window: int) -> None:
        """The ranking as the spec prints it (a ranked window's gates and scores never change)."""
        from projections.candidates import ranking_lines

        state = self.app.state()
        if state.window is not None and state.window.number == window:
            for line in ranking_lines(state):
                self.say(f"          {line}")

    def _note_phase(self, state: State) -> None:
        if state.phase is not self._phase:
            if self._phase is not None:
                self.say(f"phase {self._phase.value} -> {state.phase.value}")
            else:
                self.say(f"phase {state.phase.value} (HEAD {state.head}, cycle {state.cycle})")
            self._phase = state.phase

    def _report(self) -> RunReport:
        loaded = self.app.store.load()
        return RunReport(
            performed=tuple(self._performed),
            events=self._events,
            phase=loaded.state.phase.value,
            head=loaded.state.head,
            seq=loaded.checkpoint.seq,
            interrupted=self._signal,
            watch=self.watch.kind if self.watch is not None else "",
        )

    # ------------------------------------------------------------------ signals

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, _frame: FrameType | None) -> None:
            if self._signal or self._finishing:
                self._signal = self._signal or signal.Signals(signum).name
                return  # already stopping
            self._signal = signal.Signals(signum).name
            raise Interrupted(self._signal)

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def _record_interruption(self, signal_name: str) -> None:
        """``WorkInterrupted`` for the actions in progress (nothing when it was only waiting).
        The append goes through a fresh App: the old one may have been stopped mid-append."""
        actions, self._current = self._current, ()
        self.say(f"stopped by {signal_name}" + (f" during {', '.join(actions)}" if actions else ""))
        self.app.close()
        self.app = App(self.home, ledger=self.ledger)
        if actions:
            self.app.execute(
                cmd.RecordInterruption(
                    actions=actions,
                    signal=signal_name,
                    detail=f"evo run (pid {os.getpid()}) stopped; the actions are due again at its next start",
                )
            )
        self._follow()
