"""The GEN_HEAD and GEN_HEAD-PARENT symlinks, derived from the ledger.

A link is repointed atomically: a new link is made beside it and renamed over it (rename is
atomic on POSIX), then the directory is fsynced. The ledger is appended first and the links
follow; after a crash between the two, ``reconcile`` (run by every command that reads state)
points them where the ledger says, so a link never disagrees with the ledger for long and never
points anywhere the ledger did not put HEAD.
"""

from __future__ import annotations

import os
from pathlib import Path

from adapters.runtime.workspace import Workspace
from evo_core.state import State
from ledger.recovery import fsync_dir


def link_target(generation: str) -> str:
    """Links are relative (``archive/<generation>``) so a workspace can be moved or copied."""
    return f"archive/{generation}"


def read_link(path: Path) -> str | None:
    try:
        return os.readlink(path)
    except (FileNotFoundError, OSError):
        return None


def point(path: Path, target: str | None) -> bool:
    """Make ``path`` a symlink to ``target`` (remove it for None). True if anything changed."""
    if read_link(path) == target and (target is not None or not path.is_symlink()):
        return False
    if target is None:
        if path.is_symlink():
            path.unlink()
            fsync_dir(path.parent)
            return True
        return False
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return True


def reconcile(ws: Workspace, state: State, agent: str) -> list[str]:
    """Point both links where the ledger says. Returns what changed, for the caller to report."""
    if state.head is None:
        return []
    ws.models.mkdir(parents=True, exist_ok=True)
    changed = []
    parent = state.parent
    wanted = [
        (ws.parent_link(agent), link_target(parent) if parent else None),
        (ws.head_link(agent), link_target(state.head)),
    ]
    for path, target in wanted:  # parent first: HEAD is the one readers follow
        if point(path, target):
            changed.append(f"{path.name} -> {target or '(none)'}")
    return changed
