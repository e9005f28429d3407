from __future__ import annotations

import msgspec

from evo_core import commands as cmd
from evo_core import events as ev
from projections.report_data import report_data
from tests.projections.conftest import BASELINE, FAIR, GENESIS, GOOD, LAWLESS, Sim

A, B, C, D = (f"Luna-G001-{b}-c100" for b in "abcd")


class Mystery(ev.Event, frozen=True):
    note: str


def test_lineage_nodes_mark_promotion_failure_rollback_and_head(story: Sim) -> None:
    data = report_data(story.records)
    nodes = {n.name: n for n in data.nodes}
    assert [n.name for n in data.nodes] == [GENESIS, A, B, C, D]
    assert nodes[GENESIS].kind == "genesis" and nodes[GENESIS].head and data.head == GENESIS
    assert nodes[A].promoted and nodes[A].rolled_back and nodes[A].proposed and not nodes[A].head
    assert nodes[B].failed and nodes[B].status == "FAIL - laws gate"
    assert nodes[D].failed and nodes[D].status == "FAIL - budget: steps"
    assert not nodes[C].failed and not nodes[C].promoted and nodes[C].status == "PASS"
    assert all(nodes[n].parent == GENESIS for n in (A, B, C, D))
    assert data.seq == story.seq and data.cycle == 160 and data.checkpoint == ""


def test_the_window_row_follows_the_rollout(story: Sim) -> None:
    (w,) = report_data(story.records).windows
    assert (w.number, w.cycle, w.head) == (1, 100, GENESIS)
    assert w.baseline == BASELINE and w.baseline_score is not None
    assert [(c.name, c.rank) for c in w.candidates] == [(A, 1), (B, 3), (C, 2), (D, 4)]
    assert w.outcome == f"proposed {A}" and len(w.proposal_hash) == 64
    assert w.approval.startswith("approved by travis")
    assert w.shadow.startswith("passed: parity 0.950")
    assert w.promoted == f"{A} at cycle 115"
    assert w.burn_in.startswith("passed")
    assert len(w.rollbacks) == 1 and "by travis" in w.rollbacks[0] and "tone regressed" in w.rollbacks[0]


def test_plots_have_heads_baseline_and_each_evaluated_branch(story: Sim) -> None:
    story.beat(200)
    story.window({"a": FAIR, "b": GOOD, "c": LAWLESS}, baseline=GOOD)
    data = report_data(story.records)
    plots = {p.metric: p for p in data.plots}
    assert list(plots) == ["recall", "generalize", "tone_drift", "score"]
    series = {s.label: s for s in plots["recall"].series}
    assert list(series) == ["HEAD", "branch a", "branch b", "branch c"]  # d never evaluated
    assert [(p.x, p.y) for p in series["HEAD"].points] == [(1, BASELINE.recall), (2, GOOD.recall)]
    assert [(p.x, p.y, p.passed) for p in series["branch c"].points] == [(1, FAIR.recall, True), (2, LAWLESS.recall, False)]
    score_head = {s.label: s for s in plots["score"].series}["HEAD"]
    assert [p.y for p in score_head.points] == [w.baseline_score for w in data.windows]
    assert data.windows[1].outcome == "no promotion: no candidate passed the gates"


def test_no_promotion_and_skipped_windows(sim: Sim) -> None:
    sim.genesis()
    sim.beat(100)
    sim.window({"a": LAWLESS, "b": LAWLESS})
    sim.beat(350)  # 200 and 300 pass during a window-free stretch: one opens, the other is skipped
    data = report_data(sim.records)
    assert data.windows[0].outcome == "no promotion: no candidate passed the gates"
    assert data.windows[0].approval == "" and data.windows[0].promoted == ""
    assert all(n.failed for n in data.nodes if n.kind == "candidate")
    assert [w.number for w in data.windows] == [1, 2] and data.windows[1].outcome == "open"
    assert len(data.skipped) == 1 and "cycle 300" in data.skipped[0]


def test_empty_ledger_and_unknown_events() -> None:
    empty = report_data([])
    assert empty.seq is None and empty.nodes == () and empty.windows == () and empty.head is None
    assert [len(p.series[0].points) for p in empty.plots] == [0, 0, 0, 0]
    s = Sim()
    s.genesis()
    s.beat(100)
    s.do(cmd.SpawnCandidates(config=s.config))
    mystery = msgspec.structs.replace(s.records[1], event=Mystery(note="a newer ledger"))
    records = [*s.records[:1], mystery, *s.records[1:]]
    data = report_data(records)
    assert len(data.nodes) == 1 + len(data.windows[0].candidates) and data.head == GENESIS
