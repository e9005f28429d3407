"""Bytes on disk per generation: its merged weights, its LoRA adapter, its served GGUF, the rest.

``generation_usage(folder)`` reads only file sizes (``os.walk``, links not followed); ``evo du``
prints it for every generation folder (archive and work), and ``export.json`` records it at
export time.
"""

from __future__ import annotations

import os
from pathlib import Path

PARTS = ("weights", "adapter", "gguf", "other")


def folder_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes of the regular files under ``path`` (a file: its size; missing: 0)."""
    root = Path(path)
    if root.is_symlink() or not root.exists():
        return 0
    if root.is_file():
        return root.stat().st_size
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def generation_usage(folder: str | os.PathLike[str], *, merged: bool = False) -> dict[str, int]:
    """``{weights, adapter, gguf, other, total}`` bytes of a generation's folder: ``weights/``,
    ``adapter/``, every ``*.gguf`` at its top, and everything else; ``merged``: the folder is a
    Hugging Face folder itself (the cache's rebuilt weights), all of it weights."""
    root = Path(folder)
    weights = folder_bytes(root if merged else root / "weights")
    adapter = folder_bytes(root / "adapter")
    gguf = sum(folder_bytes(p) for p in root.glob("*.gguf"))
    total = folder_bytes(root)
    return {
        "weights": weights, "adapter": adapter, "gguf": gguf,
        "other": max(0, total - weights - adapter - gguf), "total": total,
    }


def human(n: int) -> str:
    """Bytes in the largest unit that keeps the figure >= 1 (1000-based, like ``du --si``)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
