"""``decide`` on the clock: heartbeats, the windows they open or skip, genesis; and any command
over a whole lifecycle. Illegal commands raise a typed ``DomainError`` and leave the state
exactly as it was (``refused``)."""

from __future__ import annotations

import pytest

from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.errors import CycleError, DomainError, InvalidInput
from evo_core.state import Phase, State
from tests.core.helpers import (
    BETTER,
    CFG,
    GENESIS,
    GOOD,
    PERIOD,
    Driver,
    check_history,
    check_invariants,
    refused,
)


# ---------------------------------------------------------------- heartbeats and windows


def test_beat_defaults_to_the_next_cycle() -> None:
    d = Driver()
    assert d.beat() == [ev.Heartbeat(cycle=1)]
    assert d.beat(count=2) == [ev.Heartbeat(cycle=2), ev.Heartbeat(cycle=3)]
    assert d.state.cycle == 3


@pytest.mark.parametrize("cycle", [5, 4, 0, -1])
def test_cycles_that_go_back_or_repeat_are_refused(cycle: int) -> None:
    d = Driver()
    d.beat(cycle=5)
    message = refused(d.state, cmd.Beat(period=PERIOD, cycle=cycle), CycleError)
    assert str(cycle) in message and "5" in message


@pytest.mark.parametrize("period, count", [(0, 1), (-3, 1), (10, 0)])
def test_beat_rejects_a_bad_period_or_count(period: int, count: int) -> None:
    refused(State(), cmd.Beat(period=period, count=count), InvalidInput)


def test_window_opens_when_a_heartbeat_reaches_the_period() -> None:
    d = Driver().genesis()
    d.beat_to(PERIOD - 1)
    assert d.state.phase is Phase.IDLE
    out = d.beat()
    assert out == [
        ev.Heartbeat(cycle=10),
        ev.WindowOpened(window=1, cycle=10, heartbeat_cycle=10, period=10, gen=1, head=GENESIS, parent=None),
    ]
    assert d.state.phase is Phase.WINDOW


def test_a_crossed_multiple_opens_its_window_and_skips_the_rest() -> None:
    d = Driver().genesis()
    out = d.beat(cycle=37)
    assert out[0] == ev.Heartbeat(cycle=37)
    assert out[1] == ev.WindowOpened(window=1, cycle=10, heartbeat_cycle=37, period=10, gen=1, head=GENESIS)
    skipped = out[2]
    assert isinstance(skipped, ev.WindowSkipped)
    assert (skipped.first_cycle, skipped.last_cycle, skipped.count) == (20, 30, 2)
    assert "window 1" in skipped.reason
    check_history(d.events)


def test_a_window_due_during_an_evolution_is_skipped_with_its_reason() -> None:
    d = Driver().genesis()
    d.open_window()
    d.beat_to(19)
    out = d.beat()
    assert out[1] == ev.WindowSkipped(
        first_cycle=20, last_cycle=20, count=1, heartbeat_cycle=20,
        reason="evolution in progress (phase window)",
    )
    assert d.state.window is not None and d.state.window.number == 1
    check_history(d.events)


def test_windows_before_genesis_are_skipped_not_lost() -> None:
    d = Driver()
    out = d.beat(cycle=25)
    assert isinstance(out[1], ev.WindowSkipped) and (out[1].first_cycle, out[1].count) == (10, 2)
    assert "no generation" in out[1].reason
    d.genesis()
    d.beat_to(30)
    assert d.state.phase is Phase.WINDOW and d.state.window is not None and d.state.window.cycle == 30
    check_history(d.events)


def test_a_batch_of_beats_covers_each_multiple_once() -> None:
    d = Driver().genesis()
    d.beat(count=35)
    check_history(d.events)
    opened = [e for e in d.events if isinstance(e, ev.WindowOpened)]
    assert [e.cycle for e in opened] == [10]


def test_register_genesis_twice_is_refused() -> None:
    d = Driver().genesis()
    refused(d.state, cmd.RegisterGenesis(generation="other"), DomainError, "already registered")


# ---------------------------------------------------------------- any command, the whole lifecycle


def test_unknown_command_is_a_domain_error() -> None:
    class Dance(cmd.Command):
        pass

    refused(State(), Dance(), DomainError, "unknown command")


def test_full_lifecycle_keeps_every_invariant() -> None:
    d = Driver().genesis()
    d.promote()
    d.window(["fail", "breach", "fail"])
    d.promote([BETTER, "fail", GOOD])
    d.rollback()
    d.beat_to(d.state.cycle + 25)
    check_invariants(d.state)
    check_history(d.events)


def test_every_reachable_phase_can_be_drained_to_idle() -> None:
    from tests.core.helpers import drain

    d = Driver().genesis()
    d.promote()
    d.open_window()
    assert drain(d.state, CFG).phase is Phase.IDLE
    d.window([GOOD, BETTER, "fail"])
    for step in (lambda: None, d.approve, lambda: d.do(cmd.StartShadow(config=CFG))):
        step()
        assert drain(d.state, CFG).phase is Phase.IDLE
