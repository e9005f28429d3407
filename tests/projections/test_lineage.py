from __future__ import annotations

import csv
import io

from projections import COLUMNS, lineage_rows, render_csv, replay
from tests.projections.conftest import GENESIS, GOOD, Sim

A, B, C, D = (f"Luna-G001-{b}-c100" for b in "abcd")


def _by_name(sim: Sim) -> dict[str, dict[str, str]]:
    text = render_csv(lineage_rows(sim.records))
    return {row["gen_name"]: row for row in csv.DictReader(io.StringIO(text))}


def test_one_row_per_generation_ordered_by_gen_then_branch(story: Sim) -> None:
    rows = lineage_rows(story.records)
    assert [r.gen_name for r in rows] == [GENESIS, A, B, C, D]
    text = render_csv(rows)
    assert text.splitlines()[0] == ",".join(COLUMNS)
    assert text.endswith("\n") and "\r" not in text


def test_promoted_and_head_columns_after_rollback(story: Sim) -> None:
    rows = _by_name(story)
    assert {n: r["promoted"] for n, r in rows.items()} == {
        GENESIS: "true", A: "true", B: "false", C: "false", D: "false"
    }
    assert {n for n, r in rows.items() if r["head"] == "true"} == {GENESIS}


def test_head_column_marks_the_promoted_candidate(story: Sim) -> None:
    before = Sim()
    before.records = story.records[: story.records.index(next(
        r for r in story.records if type(r.event).__name__ == "RolledBack"))]
    rows = _by_name(before)
    assert rows[A]["head"] == "true" and rows[GENESIS]["head"] == "false"


def test_status_seed_strategy_window_cycle(story: Sim) -> None:
    rows = _by_name(story)
    assert rows[A]["status"] == "PASS"
    assert rows[B]["status"] == "FAIL - laws gate"
    assert rows[C]["status"] == "PASS"
    assert rows[D]["status"] == "FAIL - budget: steps"
    assert rows[GENESIS]["status"] == "GENESIS"
    assert [rows[x]["seed"] for x in (A, B, C, D)] == ["424242", "424243", "424244", "424245"]
    assert rows[A]["strategy"] == "recent_weighted"
    assert rows[A]["window"] == "1" and rows[A]["cycle"] == "100"
    assert rows[A]["parent"] == GENESIS and rows[A]["stabilizer"] == ""
    assert rows[A]["archive"] == f"models/archive/{A}"
    assert float(rows[A]["score"]) > float(rows[C]["score"])
    assert rows[D]["score"] == ""
    assert rows[GENESIS]["cycle"] == "0"


def test_rollback_script_previous_target(story: Sim) -> None:
    """The spec's rollback.ps1: last promoted row, then the last promoted row with a lower gen."""
    rows = list(csv.DictReader(io.StringIO(render_csv(lineage_rows(story.records)))))
    promoted = [r for r in rows if r["promoted"] == "true"]
    current = promoted[-1]
    target = [r for r in promoted if int(r["gen_id"]) < int(current["gen_id"])][-1]
    assert (current["gen_name"], target["gen_name"]) == (A, GENESIS)


def test_in_flight_candidates_show_their_training_status(sim: Sim) -> None:
    from evo_core import commands as cmd

    sim.genesis()
    sim.beat(100)
    sim.do(cmd.SpawnCandidates(config=sim.config))
    sim.do(cmd.StartTraining(candidate=sim.cand("a")))
    rows = {r.gen_name: r for r in lineage_rows(sim.records)}
    assert rows[A].status == "TRAINING"
    assert rows[B].status == "SPAWNED"
    assert rows[A].archive == "" and rows[A].promoted is False


def test_accepts_a_replayed_history(story: Sim) -> None:
    assert lineage_rows(replay(story.records)) == lineage_rows(story.records)


def test_second_generation_has_a_stabilizer() -> None:
    story = Sim()  # the story without its rollback: A stays HEAD and breeds G002
    story.genesis()
    story.beat(100)
    story.window({"a": GOOD})
    story.beat(105)
    story.approve()
    story.shadow_and_promote()
    story.burn_in()
    story.beat(200)
    story.window({"a": GOOD})
    rows = {r.gen_name: r for r in lineage_rows(story.records)}
    g2 = rows["Luna-G002-a-c200"]
    assert (g2.gen_id, g2.parent, g2.stabilizer, g2.window, g2.cycle) == (2, A, GENESIS, 2, 200)
