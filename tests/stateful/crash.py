"""Killing the shell mid-command, as a crash would.

A ``Crasher`` patches one ``App`` so that the process dies at one of ``POINTS``:

* ``before_append``: before the ledger append (nothing happened);
* ``torn_append``: mid-write: part of the batch is in ``ledger.jsonl`` without its final
  newline, as a killed writer leaves it (the next append moves it aside);
* ``after_append``: the batch is durable, the first link swap never happens;
* ``between_swaps``: PARENT is repointed, HEAD is not.

Once it has fired the process is dead: every later link swap, append or projection rewrite of
that ``App`` raises too (a ``finally`` in the shell must not do work a killed process could not).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import adapters.runtime.materialize
from adapters.runtime import links
from adapters.runtime.app import App
from evo_core import events as ev
from ledger.record import encode_batch
from ledger.store import utc_now

POINTS = ("before_append", "torn_append", "after_append", "between_swaps")


class Crash(BaseException):
    """The process was killed here (BaseException: nothing in the shell may swallow it)."""


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

