"""The GEN_HEAD and GEN_HEAD-PARENT symlinks, derived from the ledger: a convenience, never
followed by evo.

A link is repointed atomically: a new link is made beside it and renamed over it (rename is
atomic on POSIX), then the directory is fsynced. The ledger is appended first and the links
follow; after a crash between the two, ``reconcile`` (run by every command that reads state)
points them where the (verified) ledger says, so a link never disagrees with the ledger for
long and never points anywhere the ledger did not put HEAD.

Anyone who can write the workspace can also point a link elsewhere: at another generation (a
failed candidate), outside the archive, at nothing, or put a regular file or a folder in its
place. Nothing in evo follows the links (the router serves HEAD from the verified fold and
loads only the recorded bytes from ``models/archive/``: ``adapters.serving.generations``), and
``reconcile`` repairs any of these: a wrong or dangling link is replaced; a file or folder in a
link's place is moved aside to ``.<link>.displaced-<pid>-<n>`` beside it (kept for the
operator to look at, never deleted) and the link made.
"""

from __future__ import annotations

import itertools
import os
import stat
from pathlib import Path

from adapters.runtime.workspace import Workspace
from evo_core.state import State
from ledger.recovery import fsync_dir

DISPLACED = ".displaced-"


def link_target(generation: str) -> str:
    """Links are relative (``archive/<generation>``) so a workspace can be moved or copied."""
    return f"archive/{generation}"


def read_link(path: Path) -> str | None:
    """The link's text (None: no symlink there). Reads the link itself, never what it names."""
    try:
        return os.readlink(path)
    except (FileNotFoundError, OSError):
        return None


def _occupied(path: Path) -> bool:
    """Something that is not a symlink stands at ``path`` (a file, a folder, a fifo...)."""
    try:
        return not stat.S_ISLNK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _displace(path: Path) -> Path:
    """Move what stands at ``path`` aside, beside it, under a name no one uses yet."""
    for n in itertools.count():
        aside = path.with_name(f".{path.name}{DISPLACED}{os.getpid()}-{n}")
        if not os.path.lexists(aside):
            os.rename(path, aside)
            return aside
    raise AssertionError("unreachable")


def point(path: Path, target: str | None) -> bool:
    """Make ``path`` a symlink to ``target`` (remove it for None). True if anything changed.

    Anything but a symlink standing at ``path`` (a file or a folder) is moved aside first."""
    displaced = _occupied(path)
    if displaced:
        _displace(path)
    current = read_link(path)
    if current == target:  # right already (for None: no link there)
        if displaced:
            fsync_dir(path.parent)
        return displaced
    if target is None:
        path.unlink()  # a link to something else
        fsync_dir(path.parent)
        return True
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if _occupied(tmp):
        _displace(tmp)
    elif os.path.lexists(tmp):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return True


def reconcile(ws: Workspace, state: State, agent: str) -> list[str]:
    """Point both links where the ledger says, repairing whatever is there instead (see the
    module doc). Returns what changed, for the caller to report."""
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
        occupied = _occupied(path)
        if point(path, target):
            aside = " (a file or folder stood in its place: moved aside)" if occupied else ""
            changed.append(f"{path.name} -> {target or '(none)'}{aside}")
    return changed
