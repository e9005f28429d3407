"""Where a generation's merged weights are, when a window trains on them.

A trained candidate is archived with its adapter, not its merged weights (``adapters.freeze.archive``):
``generation_dir`` finds a generation's loadable Hugging Face folder:

1. ``models/archive/<name>/weights/`` (a genesis; an older workspace's candidate);
2. ``cache/weights/<name>/`` when its files hash to the ``weights_hash`` the archived
   ``export.json`` recorded for the weights the GGUF was exported from (the cache is derived data
   in a folder the agent can write: anything else there is rebuilt, never trusted);
3. else rebuilt there from its archived adapter and its parent's folder (step 1-3 for the parent),
   checked against the archived merge record (``adapters.models.merge.materialize``);
4. ``work/<name>/weights/`` for a generation not archived yet.

``retire_work`` moves a frozen candidate's merged weights from its work folder into the cache (the
same bytes the archive's export.json names, so no rebuild is needed for a promoted one) and deletes
its work ``model.gguf`` (the archive holds it): one copy of each. ``prune_cache`` keeps the cache to
the generations a window still trains from (HEAD and its parent).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from adapters.runtime.workspace import Workspace
from evo_core.state import State

GGUF_NAME = "model.gguf"


def cache_root(ws: Workspace) -> Path:
    return ws.home / "cache" / "weights"


def _recorded_weights_hash(ws: Workspace, name: str) -> str:
    try:
        export = json.loads((ws.archive / name / "export.json").read_text())
    except (OSError, ValueError):
        return ""
    value = export.get("weights_hash") if isinstance(export, dict) else None
    return value if isinstance(value, str) else ""


def _cached(ws: Workspace, name: str) -> Path | None:
    from adapters.models.hf import ModelError, weights_hash

    folder = cache_root(ws) / name
    recorded = _recorded_weights_hash(ws, name)
    if not recorded or not (folder / "config.json").is_file() or folder.is_symlink():
        return None
    try:
        return folder if weights_hash(folder) == recorded else None
    except (ModelError, OSError):
        return None


def generation_dir(ws: Workspace, name: str, *, depth: int = 0) -> Path:
    """A generation's loadable HF folder (see the module doc); ``MergeError`` when an archived
    generation has neither weights nor an adapter that rebuilds them."""
    from adapters.models.merge import MergeError, materialize, read_record

    archived = ws.archive / name
    if (archived / "weights").is_dir():
        return archived / "weights"
    if not archived.is_dir():
        return ws.home / "work" / name / "weights"
    cached = _cached(ws, name)
    if cached is not None:
        return cached
    record = read_record(archived / "adapter")
    if record is None:
        raise MergeError(f"{name}: its archive holds neither weights/ nor an adapter with a merge record")
    if depth > 10_000 or record["parent"] == name:
        raise MergeError(f"{name}: its merge record's parents form a loop")
    parent = generation_dir(ws, record["parent"], depth=depth + 1)
    out = cache_root(ws) / name
    out.parent.mkdir(parents=True, exist_ok=True)
    return materialize(archived / "adapter", parent, out)


def retire_work(ws: Workspace, name: str) -> None:
    """After ``name`` is frozen: its work folder's merged weights move into the cache when the
    archive rebuilds them from its adapter, and its work GGUF (archived) is deleted."""
    from adapters.models.merge import read_record

    archived = ws.archive / name
    work = ws.home / "work" / name
    if not archived.is_dir() or not work.is_dir():
        return
    if (archived / GGUF_NAME).is_file():
        (work / GGUF_NAME).unlink(missing_ok=True)
    weights = work / "weights"
    if weights.is_dir() and not (archived / "weights").is_dir() and read_record(archived / "adapter") is not None:
        target = cache_root(ws) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        os.rename(weights, target)


def prune_cache(ws: Workspace, keep: set[str]) -> None:
    """Remove every cached generation but ``keep`` (and leftovers of an interrupted rebuild)."""
    root = cache_root(ws)
    if not root.is_dir():
        return
    for entry in root.iterdir():
        if entry.name not in keep:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def retire_frozen(ws: Workspace, state: State) -> None:
    """``retire_work`` for every frozen candidate whose work folder still holds weights or a GGUF
    (a freeze whose clean-up a crash interrupted)."""
    for name, candidate in state.candidates.items():
        if candidate.frozen and (ws.home / "work" / name).is_dir():
            retire_work(ws, name)
