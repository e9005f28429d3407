"""blake3 of files and folders: the one way evo hashes what it stores.

A folder (or a set of files) is hashed as blake3 over ``<name>\\0<file blake3>\\n`` lines in
sorted order, so an auditor can recompute it with any blake3 tool and a sort.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import blake3


def hash_file(path: Path) -> str:
    h = blake3.blake3()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hash_listing(files: Iterable[tuple[str, Path]]) -> str:
    """blake3 over ``<name>\\0<file blake3>\\n`` of each (name, path), in the order given."""
    h = blake3.blake3()
    for name, path in files:
        h.update(f"{name}\0{hash_file(path)}\n".encode())
    return h.hexdigest()


def hash_tree(root: Path) -> str:
    """A folder's hash: every file under it by its relative path, sorted."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return hash_listing((p.relative_to(root).as_posix(), p) for p in files)
