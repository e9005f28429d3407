from __future__ import annotations

import json
from typing import Any

from evo_core import events as ev
from projections import evolution_log, render_jsonl
from tests.projections.conftest import SIGNED, FAIR, GENESIS, GOOD, WEAK, Sim

A = "Luna-G001-a-c100"


def _lines(sim: Sim) -> list[dict[str, Any]]:
    text = render_jsonl(evolution_log(sim.records))
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_promote_and_rollback_entries_have_from_and_to(story: Sim) -> None:
    lines = _lines(story)
    promote = [x for x in lines if x["action"] == "PROMOTE"]
    rollback = [x for x in lines if x["action"] == "ROLLBACK"]
    assert len(promote) == 1 and len(rollback) == 1
    assert (promote[0]["from"], promote[0]["to"], promote[0]["cycle"]) == (GENESIS, A, 115)
    assert rollback[0]["from"] == A and rollback[0]["to"] == GENESIS
    assert rollback[0]["reason"] == "tone regressed in chat"
    assert rollback[0]["operator"] == "travis" and rollback[0]["automatic"] is False
    assert rollback[0]["cycle"] == 150


def test_entries_carry_seq_cycle_timestamp_and_skip_heartbeats(story: Sim) -> None:
    lines = _lines(story)
    actions = [x["action"] for x in lines]
    assert actions == [
        "GENESIS",
        "WINDOW_OPENED",
        "CANDIDATE_FAILED",
        "RANKED",
        "ARCHIVED",
        "ARCHIVED",
        "ARCHIVED",
        "ARCHIVED",
        "PROPOSE",
        "APPROVE",
        "SHADOW_STARTED",
        "SHADOW_COMPLETED",
        "PROMOTE",
        "GEN_HEAD_ADVANCED",
        "ROLLBACK",
    ]
    seqs = [x["seq"] for x in lines]
    assert seqs == sorted(seqs)
    for x in lines:
        record = story.records[x["seq"]]
        assert x["timestamp"] == record.at
        assert not isinstance(record.event, ev.Heartbeat)
        assert isinstance(x["summary"], str) and x["summary"]
        assert (x["at"], x["type"]) == (record.at, ev.event_name(record.event))  # the shape log --json shares
    advanced = next(x for x in lines if x["action"] == "GEN_HEAD_ADVANCED")
    assert "GEN_HEAD advanced to " + A in str(advanced["summary"])


def test_no_promotion_rejection_and_automatic_rollback(sim: Sim) -> None:
    sim.genesis()
    sim.beat(100)
    sim.window({"a": WEAK})
    sim.beat(200)
    sim.window({"a": GOOD, "b": FAIR})
    from evo_core import commands as cmd

    sim.do(cmd.Reject(**SIGNED, operator="travis", reason="later"))
    sim.beat(300)
    sim.window({"a": GOOD})
    sim.approve()
    sim.shadow_and_promote()
    sim.burn_in(errors=30)
    lines = _lines(sim)
    by = {x["action"]: x for x in lines}
    assert by["NO_PROMOTION"]["window"] == 1
    assert by["REJECT"]["reason"] == "later"
    assert by["BURN_IN_FAILED"]["generation"] == "Luna-G001-a-c300"
    assert by["ROLLBACK"]["automatic"] is True and by["ROLLBACK"]["to"] == GENESIS
    assert "operator" not in by["ROLLBACK"]


def test_skipped_windows_are_logged(sim: Sim) -> None:
    sim.beat(250)  # no genesis: windows 100 and 200 are skipped
    lines = _lines(sim)
    assert [(x["action"], x["cycle"]) for x in lines] == [
        ("WINDOW_SKIPPED", 100),
        ("WINDOW_SKIPPED", 200),
    ]
    assert "no generation registered" in str(lines[0]["reason"])
