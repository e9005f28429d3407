"""``evo du``: bytes on disk per generation (archived and in work), by part.

Parts (``adapters.runtime.disk_usage``): ``weights/`` (a merged Hugging Face model: a genesis's
in the archive; a trained generation's only in the cache, ``cache/weights/<name>``, rebuilt from
its adapter when a window needs it), ``adapter/`` (the LoRA alone), the ``*.gguf`` served by
llama.cpp, and the rest (manifests, documents). Reads file sizes only: no ledger replay, no torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from adapters.cli.common import out, out_json
from adapters.runtime.workspace import Workspace, resolve_home
from adapters.training.generation_weights import cache_root


def _folders(ws: Workspace) -> list[tuple[str, str, Path]]:
    """``(where, name, folder)`` of every generation folder: the archive's, work's, the cache's."""
    found = []
    for where, root in (("archive", ws.archive), ("work", ws.home / "work"), ("cache", cache_root(ws))):
        if root.is_dir():
            for folder in sorted(root.iterdir()):
                if folder.is_dir() and not folder.is_symlink() and not folder.name.startswith("."):
                    found.append((where, folder.name, folder))
    return found


def cmd_du(args: argparse.Namespace) -> int:
    from adapters.runtime.disk_usage import PARTS, generation_usage, human

    ws = Workspace(resolve_home(args.home))
    ws.require()
    rows = [(w, name, generation_usage(folder, merged=w == "cache")) for w, name, folder in _folders(ws)]
    totals = {part: sum(u[part] for _, _, u in rows) for part in (*PARTS, "total")}
    if args.json:
        out_json({"generations": [{"where": w, "name": n, **u} for w, n, u in rows], "total": totals})
        return 0
    width = max([len(n) for _, n, _ in rows] + [len("total")])
    out(f"{'generation':<{width}}  where    " + "  ".join(f"{p:>9}" for p in (*PARTS, "total")))
    for where, name, usage in rows:
        out(f"{name:<{width}}  {where:<7}  " + "  ".join(f"{human(usage[p]):>9}" for p in (*PARTS, "total")))
    out(f"{'total':<{width}}  {'':<7}  " + "  ".join(f"{human(totals[p]):>9}" for p in (*PARTS, "total")))
    return 0
