"""The operator's witness: the ledger checkpoints the operator signed, kept outside the workspace.

Every signed operator command (approve, reject, rollback, autonomy, trust) signs the checkpoint
``seq:hash`` the operator saw and appends it here, one JSON line per signature, in a file per
workspace: ``<operator home>/witness/<blake3 of the workspace's real path, 16 hex>.jsonl``. The
operator home is ``$EVO_OPERATOR_HOME``, else ``$XDG_CONFIG_HOME/evo``, else ``~/.config/evo``:
the operator's own configuration, where ``evo keygen`` puts the key by default. ``evo verify``
reads it and checks that the ledger still extends every checkpoint (the same ledger id, the
same hash at that seq), so a truncated or consistently rewritten ledger is detected without an
auditor remembering a checkpoint by hand. Prevention needs the operator home out of the agent's
reach (another Unix user): on a shared user the agent can edit this file too (THREAT-MODEL.md).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import blake3
import msgspec


class Witnessed(msgspec.Struct, frozen=True, kw_only=True):
    ledger_id: str
    seq: int
    hash: str
    action: str
    home: str = ""
    at: str = ""
    keys: tuple[str, ...] = ()  # at "init": the key ids pinned in the new ledger


def operator_home() -> Path:
    given = os.environ.get("EVO_OPERATOR_HOME")
    if given:
        return Path(given).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "evo"


def witness_path(home: Path, root: Path | None = None) -> Path:
    real = os.path.realpath(home)
    name = blake3.blake3(real.encode()).hexdigest()[:16]
    return (root or operator_home()) / "witness" / f"{name}.jsonl"


def record(home: Path, ledger_id: str, seq: int, digest: str, action: str, keys: tuple[str, ...] = ()) -> Path | None:
    """Append one signed checkpoint; returns the file, or None when it could not be written
    (the signature itself is in the ledger: only the witness is missing)."""
    path = witness_path(home)
    line = msgspec.json.encode(
        Witnessed(
            ledger_id=ledger_id, seq=seq, hash=digest, action=action, home=os.path.realpath(home),
            at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), keys=keys,
        )
    )
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(path, "ab") as f:
            f.write(line + b"\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        return None
    return path


def checkpoints(home: Path, root: Path | None = None) -> tuple[Path, list[Witnessed]]:
    """The witness file of ``home`` and what it holds ([] when there is none); a line that does
    not decode is skipped (``evo verify`` says how many)."""
    path = witness_path(home, root)
    out: list[Witnessed] = []
    try:
        data = path.read_bytes()
    except OSError:
        return path, out
    for line in data.splitlines():
        try:
            out.append(msgspec.json.decode(line, type=Witnessed))
        except msgspec.DecodeError:
            continue
    return path, out
