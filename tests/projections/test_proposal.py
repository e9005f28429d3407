from __future__ import annotations

import json

from evo_core import commands as cmd
from evo_core.values import Metrics
from projections import proposal_document, render_proposal
from tests.projections.conftest import SIGNED, FAIR, GENESIS, GOOD, WEAK, Sim, digest

A = "Luna-G001-a-c100"
BETTER = Metrics(recall=0.95, generalize=0.90, tone_drift=0.0, law_violations=0)


def test_pending_proposal_document(sim: Sim) -> None:
    sim.genesis()
    sim.beat(100)
    sim.window({"a": GOOD, "b": FAIR})
    doc = proposal_document(sim.state, timestamp=sim.records[-1].at)
    assert doc is not None
    data = json.loads(render_proposal(doc))
    assert data["action"] == "PROMOTE" and data["status"] == "pending"
    assert data["current_head"] == GENESIS and data["proposed_head"] == A
    assert data["gates"] == {
        "recall": True, "generalize": True, "tone": True, "laws": True, "budget": True
    }
    assert data["hashes"] == {"model": digest("model " + A), "manifest": digest("manifest " + A)}
    assert sim.state.proposal is not None
    h = sim.state.proposal.hash
    assert data["proposal_hash"] == h
    assert data["approve"] == f"evo approve --proposal {h[:16]} --key OPERATOR_KEY"
    assert data["reject"].startswith("evo reject --reason")
    assert abs(data["improvement"] - (data["score"] - data["head_score"])) < 1e-12
    assert data["metrics"]["recall"] == GOOD.recall
    assert data["window"] == 1 and data["timestamp"] == sim.records[-1].at
    assert render_proposal(doc).startswith('{\n  "action": "PROMOTE"')


def test_no_document_without_a_proposal(sim: Sim) -> None:
    sim.genesis()
    assert proposal_document(sim.state) is None
    sim.beat(100)
    sim.window({"a": WEAK})
    assert proposal_document(sim.state) is None


def test_approved_then_gone_after_promotion_or_rejection(sim: Sim) -> None:
    sim.genesis()
    sim.beat(100)
    sim.window({"a": GOOD})
    sim.approve()
    doc = proposal_document(sim.state)
    assert doc is not None and doc.status == "approved" and doc.approve is None
    assert doc.approved_by == "travis"
    sim.shadow_and_promote()
    assert proposal_document(sim.state) is None

    sim.burn_in()
    sim.beat(200)
    sim.window({"a": BETTER}, baseline=GOOD)
    sim.do(cmd.Reject(**SIGNED, operator="travis", reason="no"))
    assert proposal_document(sim.state) is None
