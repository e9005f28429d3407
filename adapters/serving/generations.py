"""Which generations can be served, and the recorded queries a shadow phase can replay.

A generation is servable when it has a ``model.gguf``: in its archive folder once frozen, in
its training folder (``work/<candidate>/``) before.
"""

from __future__ import annotations

import os
from pathlib import Path

from adapters.runtime.workspace import Workspace, WorkspaceError
from evo_core.names import by_prefix

GGUF_NAME = "model.gguf"


class ServingError(WorkspaceError):
    """Nothing can answer (no HEAD, no model.gguf): exit 1, one line."""


def gguf_path(ws: Workspace, generation: str) -> Path | None:
    """A generation's model.gguf: its archive folder first, then its training folder."""
    for folder in (ws.archive / generation, ws.home / "work" / generation):
        path = folder / GGUF_NAME
        if path.is_file():
            return path
    return None


def servable(ws: Workspace) -> list[str]:
    """Every generation with a model.gguf (archive folders, then training folders), sorted."""
    names: set[str] = set()
    for root in (ws.archive, ws.home / "work"):
        if root.is_dir():
            names.update(p.parent.name for p in root.glob(f"*/{GGUF_NAME}") if p.is_file())
    return sorted(names)


def unservable(ws: Workspace, name: str) -> str:
    """Why a known generation cannot answer, and what to do about it."""
    if any((root / name / "weights" / "config.json").is_file() for root in (ws.archive, ws.home / "work")):
        return f"generation {name} has no {GGUF_NAME} (run `evo export {name}`)"
    return (
        f"generation {name} has no model: this workspace was initialised without one "
        "(`evo init --demo` or `evo init --base-model DIR` registers a model)"
    )


def find_generation(ws: Workspace, name: str) -> str:
    """A generation with a model.gguf named ``name`` or by a unique prefix; else ``ServingError``."""
    names = servable(ws)
    if name in names:
        return name
    known = {p.name for root in (ws.archive, ws.home / "work") if root.is_dir() for p in root.iterdir() if p.is_dir()}
    if name in known:
        raise ServingError(unservable(ws, name))
    matches = by_prefix(name, names)
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (f" and {len(matches) - 5} more" if len(matches) > 5 else "")
        raise ServingError(f"{name!r} is ambiguous: {shown}")
    without = by_prefix(name, sorted(known))
    if len(without) == 1:
        raise ServingError(unservable(ws, without[0]))
    raise ServingError(f"no generation with a {GGUF_NAME} matches {name!r}")


def trivial_queries(ws: Workspace | str | os.PathLike[str], limit: int | None = None) -> list[str]:
    """User turns of the TRIVIAL-looking stored conversations, newest first, each text once.

    TRIVIAL-looking: one user turn (no system message), karma >= 0, at most 200 characters, not
    a prompt that tempts one of the operator's laws, and no assistant message that breaks one.
    """
    from adapters.data.conversations import load
    from adapters.data.demo_world import LAWS, violations

    tempting = {prompt for law in LAWS for prompt in law.tempting}
    seen: set[str] = set()
    out: list[str] = []
    conversations = load(ws if isinstance(ws, Workspace) else Workspace(Path(ws)))
    for conv in sorted(conversations, key=lambda c: c.cycle, reverse=True):  # stable: ties keep store order
        users = [m.content for m in conv.messages if m.role == "user"]
        if conv.karma < 0 or len(users) != 1 or any(m.role == "system" for m in conv.messages):
            continue
        query = users[0]
        if len(query) > 200 or not query.strip() or query in tempting or query in seen:
            continue
        if any(violations(m.content) for m in conv.messages if m.role == "assistant"):
            continue
        seen.add(query)
        out.append(query)
        if limit is not None and len(out) >= limit:
            break
    return out
