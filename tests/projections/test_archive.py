from __future__ import annotations

from projections import gen_archive
from tests.projections.conftest import SIGNED, FAIR, GENESIS, GOOD, WEAK, Sim, digest

A, B, C, D = (f"Luna-G001-{b}-c100" for b in "abcd")


def test_every_frozen_generation_with_its_label_and_hashes(story: Sim) -> None:
    entries = {e.name: e for e in gen_archive(story.records)}
    assert list(entries) == [GENESIS, A, B, C, D]
    assert entries[GENESIS].label == "genesis, HEAD"
    assert entries[GENESIS].archive_hash == digest("genesis archive")
    assert entries[A].label == "promoted, rolled back: tone regressed in chat"
    assert entries[B].label == "FAIL - laws gate"
    assert entries[C].label == "PASS but not selected"
    assert entries[D].label == "FAIL - budget: steps"
    assert entries[A].model_hash == digest("model " + A)
    assert entries[A].manifest_hash == digest("manifest " + A)
    assert entries[A].archive == f"models/archive/{A}"
    assert [e.promoted for e in entries.values()] == [True, True, False, False, False]


def test_promoted_head_and_rejected_proposals(sim: Sim) -> None:
    from evo_core import commands as cmd

    sim.genesis()
    sim.beat(100)
    sim.window({"a": GOOD, "b": FAIR})
    sim.do(cmd.Reject(**SIGNED, operator="travis", reason="not now"))
    sim.beat(200)
    sim.window({"a": GOOD})
    sim.approve()
    sim.shadow_and_promote()
    labels = {e.name: e.label for e in gen_archive(sim.records)}
    assert labels["Luna-G001-a-c100"] == "PASS, rejected: not now"
    assert labels["Luna-G001-b-c100"] == "PASS but not selected"
    assert labels["Luna-G001-a-c200"] == "promoted, in burn-in, HEAD"
    sim.burn_in()
    labels = {e.name: e.label for e in gen_archive(sim.records)}
    assert labels["Luna-G001-a-c200"] == "promoted, HEAD"
    assert labels[GENESIS] == "genesis"


def test_unfrozen_candidates_are_not_archived(sim: Sim) -> None:
    sim.genesis()
    sim.beat(100)
    sim.window({"a": WEAK})
    assert len(gen_archive(sim.records)) == 1 + 4
    from evo_core import commands as cmd

    sim.beat(200)
    sim.do(cmd.SpawnCandidates(config=sim.config))
    assert len(gen_archive(sim.records)) == 1 + 4
