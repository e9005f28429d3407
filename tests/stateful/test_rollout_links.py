"""Crash examples around the cutover and the rollback, through the REAL shell
(``adapters.runtime.app.App`` on a workspace): a process killed between the ledger append and
the GEN_HEAD / GEN_HEAD-PARENT link swaps, or mid-append, and what a restart makes of it. The
random version of these is ``test_rollout_machine.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.runtime.app import App
from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.decide import decide
from evo_core.state import Phase
from ledger.record import encode_batch
from ledger.store import Ledger, utc_now
from tests import operator_key
from tests.core.helpers import BETTER, GOOD, SIGNED
from tests.stateful.crash import Crash, crash_links_at
from tests.stateful.rollout import CFG, GENESIS, P, ledger_state, new_workspace, read_links, runner_command, target


def shadow_done(home: Path) -> App:
    """A whole window, approval and shadow through the App, up to the cutover (CompleteShadow)."""
    app = App(home)
    app.execute(cmd.Beat(period=P, count=P))
    while app.state().phase is Phase.WINDOW:
        app.execute(runner_command(app.state(), [BETTER, GOOD]))
    app.execute(operator_key.signed(app, cmd.Approve(**SIGNED, operator="op")))
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
        app.execute(operator_key.signed(app, cmd.Rollback(**SIGNED, operator="op")))  # during the burn-in: back to the previous HEAD
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
