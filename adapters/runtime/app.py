"""The imperative shell around the core: load state, decide, append, then follow with effects.

Every write goes the same way: ``EventStore.execute`` folds the ledger (snapshot + tail),
runs ``decide`` and appends the events as one batch with the expected seq (retrying if another
process appended first). Only then are the links reconciled and the projection files
rewritten, both derived from the ledger, so a crash in between loses nothing: the next command
reconciles again.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import blake3

from adapters.runtime import links
from adapters.runtime.workspace import Workspace
from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.decide import decide
from evo_core.errors import DomainError
from evo_core.state import State
from evo_core.values import Proposal
from adapters.runtime.history import verified_fold
from ledger.eventstore import EventStore
from ledger.memory import MemorySnapshots
from ledger.port import LedgerPort
from ledger.store import Checkpoint, Ledger


def operator_name() -> str:
    try:
        return os.environ.get("EVO_OPERATOR") or getpass.getuser()
    except (KeyError, OSError):
        return "operator"


def proposal_hash(proposal: Proposal) -> str:
    return blake3.blake3(ev.encode_value(proposal)).hexdigest()


class Unauthorized(DomainError):
    """A command whose records the verified fold would not apply (a signature that does not
    verify with a key the ledger trusts, a rollback to a revoked generation): nothing appended."""


@dataclass
class Outcome:
    state: State
    checkpoint: Checkpoint
    events: list[ev.Event]


class App:
    """One workspace opened for one CLI command (or one runner)."""

    def __init__(
        self,
        home: Path,
        *,
        agent: str | None = None,
        snapshot_every: int | None = None,
        ledger: LedgerPort | None = None,
    ):
        """``ledger``: another ledger than the workspace's file (the in-memory one in orchestration
        unit tests; it passes the same contract suite); its snapshots stay in memory too."""
        self.ws = Workspace(home)
        self.ws.require()
        if agent is None or snapshot_every is None:
            settings = self.ws.heartbeat_settings()
            agent = agent or settings.agent_name
            snapshot_every = snapshot_every or settings.snapshot_every
        self.agent = agent
        port: LedgerPort = Ledger(home) if ledger is None else ledger
        # snapshots only in memory: a snapshot file is the agent's to write (``history``)
        self.store: EventStore[State] = EventStore(
            port, snapshots=MemorySnapshots(), snapshot_every=snapshot_every, fold=verified_fold(port)
        )
        self._deferred = 0
        self._dirty = False

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def state(self) -> State:
        return self.store.load().state

    def heartbeat(self, *, cycle: int | None = None, count: int = 1) -> Outcome:
        """The agent's clock: ``count`` heartbeats from ``cycle`` (default: the next one), with
        the period read from config.toml itself (tomllib: no pydantic on this path)."""
        period = self.ws.heartbeat_settings().evo_period_cycles
        return self.execute(cmd.Beat(period=period, cycle=cycle, count=count))

    def execute(self, command: cmd.Command, *, sync: bool = True) -> Outcome:
        state, checkpoint, events = self.store.execute(lambda s: self._admitted(s, decide(s, command)))
        if sync and any(not isinstance(e, ev.Heartbeat) for e in events):
            if self._deferred:
                links.reconcile(self.ws, state, self.agent)
                self._dirty = True
            else:
                self.sync(state)
        elif sync and events:
            # heartbeats move no link, but the agent may be the first process to run after a crash
            # between a cutover's (or rollback's) append and its link swap: two readlinks when right
            links.reconcile(self.ws, state, self.agent)
        return Outcome(state, checkpoint, events)

    def _admitted(self, state: State, events: list[ev.Event]) -> list[ev.Event]:
        """What ``decide`` returned, if the verified fold will apply all of it: the shell never
        appends a record that would be flagged (an unsigned or wrongly signed command is refused
        here, before anything is written)."""
        step = self.store.fold.evolve
        for event in events:
            after = step(state, event)
            if len(after.flagged) > len(state.flagged):
                raise Unauthorized(f"{ev.event_name(event)} refused: {after.flagged[-1].reason}")
            state = after
        return events

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Many commands in a row (a window's training or evaluation): the links follow every
        batch, the projection files (a full ledger read each) are rebuilt once, at the end,
        whatever happened in between."""
        self._deferred += 1
        try:
            yield
        finally:
            self._deferred -= 1
            if not self._deferred and self._dirty:
                self._dirty = False
                self.sync()

    def sync(self, state: State | None = None, *, files: bool = True) -> list[str]:
        """Links and (with ``files``) the projection files from the ledger (idempotent)."""
        from adapters.runtime.materialize import materialize

        state = state if state is not None else self.state()
        changed = links.reconcile(self.ws, state, self.agent)
        if files:
            materialize(self.ws, self.store, state)
        return changed
