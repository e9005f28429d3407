"""The conversation store: ``<home>/data/conversations.jsonl``, one compact JSON per line.

Theory of operation. ``ingest`` is all or nothing: it validates every line of the input first
(a typed msgspec decode plus the checks msgspec cannot express), and any bad line raises
``IngestError`` naming ``FILE:LINE: reason`` with nothing written. Then, under an exclusive
``fcntl`` lock on ``<home>/data/conversations.lock`` (so two ingests cannot interleave or both
add the same id), it reads the ids already stored, drops duplicates (by id; the first occurrence
wins) and appends the new conversations in one ``write`` followed by ``fsync``.

A crash during that write can leave a final line without ``\\n``: ``load`` ignores such a torn
tail, and the next ``ingest`` moves it aside to ``conversations.jsonl.torn-<n>`` (never
silently dropped) before appending.
"""

from __future__ import annotations

import fcntl
import math
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from adapters.runtime.workspace import WorkspaceError

Role = Literal["system", "user", "assistant"]
MAX_REPORTED = 5


class Message(msgspec.Struct, frozen=True):
    role: Role
    content: str


class Conversation(msgspec.Struct, frozen=True, kw_only=True):
    id: Annotated[str, msgspec.Meta(min_length=1)]
    cycle: Annotated[int, msgspec.Meta(ge=0)]
    karma: float
    messages: Annotated[list[Message], msgspec.Meta(min_length=1)]

    def __post_init__(self) -> None:
        if not math.isfinite(self.karma):
            raise ValueError(f"karma must be finite, got {self.karma}")


_decoder = msgspec.json.Decoder(Conversation)
_encoder = msgspec.json.Encoder()


def encode(conversation: Conversation) -> bytes:
    """The canonical compact encoding (field order fixed by the Struct)."""
    return _encoder.encode(conversation)


class IngestError(WorkspaceError):
    """Bad lines in an ingested file: ``summary`` is one line, ``problems`` the ``FILE:LINE: reason``
    lines (the first ``MAX_REPORTED``, then "and N more")."""

    def __init__(self, summary: str, problems: list[str]):
        self.summary = summary
        self.problems = problems
        super().__init__("\n".join([summary, *problems]))


@dataclass(frozen=True)
class IngestReport:
    added: int
    duplicates: int
    total: int  # conversations in the store afterwards


def _home_data(ws: object) -> Path:
    """The data folder of a ``Workspace`` (anything with ``.data``) or of a home path."""
    data = getattr(ws, "data", None)
    return Path(data) if data is not None else Path(str(ws)) / "data"


def store_path(ws: object) -> Path:
    return _home_data(ws) / "conversations.jsonl"


def parse_lines(raw: bytes, source: str) -> list[Conversation]:
    """Every line decoded, or ``IngestError`` listing the bad ones. Blank lines are skipped."""
    good: list[Conversation] = []
    bad: list[str] = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            good.append(_decoder.decode(line))
        except msgspec.ValidationError as exc:
            bad.append(f"{source}:{number}: {exc}")
        except msgspec.DecodeError as exc:
            bad.append(f"{source}:{number}: invalid JSON ({exc})")
        except UnicodeDecodeError:
            bad.append(f"{source}:{number}: not UTF-8 text")
    if bad:
        shown = bad[:MAX_REPORTED]
        if len(bad) > MAX_REPORTED:
            shown.append(f"and {len(bad) - MAX_REPORTED} more")
        plural = "s" if len(bad) > 1 else ""
        raise IngestError(f"{source}: {len(bad)} bad line{plural}; nothing ingested", shown)
    return good


@contextmanager
def _locked(data: Path) -> Iterator[None]:
    data.mkdir(parents=True, exist_ok=True)
    fd = os.open(data / "conversations.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _set_torn_tail_aside(path: Path) -> None:
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        raw = f.read()
        keep = raw.rfind(b"\n") + 1
        n = 0
        while (aside := path.with_name(f"{path.name}.torn-{n}")).exists():
            n += 1
        aside.write_bytes(raw[keep:])
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())


def add(ws: object, conversations: Iterable[Conversation]) -> IngestReport:
    """Append the conversations whose ids are new (validated values), atomically, under the lock."""
    data = _home_data(ws)
    path = data / "conversations.jsonl"
    with _locked(data):
        created = not path.exists()
        if not created:
            _set_torn_tail_aside(path)
        seen = {c.id for c in load(ws)}
        stored = len(seen)
        fresh: list[bytes] = []
        duplicates = 0
        for conv in conversations:
            if conv.id in seen:
                duplicates += 1
                continue
            seen.add(conv.id)
            fresh.append(encode(conv) + b"\n")
        if fresh or created:
            with open(path, "ab") as f:
                f.write(b"".join(fresh))
                f.flush()
                os.fsync(f.fileno())
            if created:
                dfd = os.open(data, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
    return IngestReport(added=len(fresh), duplicates=duplicates, total=stored + len(fresh))


def ingest(ws: object, path: str | os.PathLike[str]) -> IngestReport:
    """Ingest a JSONL file of conversations: all lines valid or nothing written."""
    raw = Path(path).read_bytes()
    return add(ws, parse_lines(raw, str(path)))


def load(ws: object) -> list[Conversation]:
    """Every stored conversation, in the order ingested (a torn final line is ignored)."""
    path = store_path(ws)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    end = raw.rfind(b"\n") + 1
    return [_decoder.decode(line) for line in raw[:end].splitlines() if line]


def new_since(conversations: Iterable[Conversation], after_cycle: int, upto_cycle: int) -> list[Conversation]:
    """The conversations with ``after_cycle < cycle <= upto_cycle`` (a window's new data)."""
    return [c for c in conversations if after_cycle < c.cycle <= upto_cycle]


def by_id(conversations: Iterable[Conversation]) -> dict[str, Conversation]:
    return {c.id: c for c in conversations}
