"""The GEN_HEAD links: repointed by rename (never absent mid-swap), reconciled from the ledger."""

from __future__ import annotations

import os
from pathlib import Path

from adapters.runtime import links
from adapters.runtime.workspace import Workspace
from evo_core.state import Generation, State


def test_point_creates_repoints_and_removes_without_leaving_temp_links(tmp_path: Path) -> None:
    link = tmp_path / "Luna-GHEAD"
    assert links.point(link, "archive/a") is True
    assert os.readlink(link) == "archive/a"
    assert links.point(link, "archive/a") is False  # already right: nothing touched
    inode = os.lstat(link).st_ino
    assert links.point(link, "archive/b") is True
    assert os.readlink(link) == "archive/b" and os.lstat(link).st_ino != inode
    assert links.point(link, None) is True and not link.is_symlink()
    assert links.point(link, None) is False
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_leftover_temp_link_from_a_crash_is_replaced(tmp_path: Path) -> None:
    link = tmp_path / "Luna-GHEAD"
    os.symlink("archive/stale", tmp_path / f".Luna-GHEAD.tmp-{os.getpid()}")
    links.point(link, "archive/a")
    assert os.readlink(link) == "archive/a"
    assert [p.name for p in tmp_path.iterdir()] == ["Luna-GHEAD"]


def test_reconcile_points_both_links_where_the_state_says(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    gens = {
        "G0": Generation(name="G0", gen=0, parent=None, promoted=True),
        "G1": Generation(name="G1", gen=1, parent="G0", promoted=True),
    }
    state = State(head="G1", genesis="G0", promoted=("G0", "G1"), generations=gens)
    changed = links.reconcile(ws, state, "Luna")
    assert changed == ["Luna-GHEAD-PARENT -> archive/G0", "Luna-GHEAD -> archive/G1"]
    assert os.readlink(ws.head_link("Luna")) == "archive/G1"
    assert links.reconcile(ws, state, "Luna") == []
    back = State(head="G0", genesis="G0", promoted=("G0", "G1"), generations=gens)
    links.reconcile(ws, back, "Luna")
    assert os.readlink(ws.head_link("Luna")) == "archive/G0"
    assert not ws.parent_link("Luna").is_symlink()
