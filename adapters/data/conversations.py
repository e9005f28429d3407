"""The conversation store: ``<home>/data/conversations.jsonl``, one compact JSON per line.

Theory of operation. ``ingest`` is all or nothing: it reads every line of the input first in
its format (``adapters.data.chat_formats``: evo's native rows, OpenAI messages, Hugging Face
chat rows or ShareGPT, recognised per file or named), turns each into the native row and
validates that (a typed msgspec decode plus the checks msgspec cannot express); any bad line
raises ``IngestError`` naming ``FILE:LINE: reason`` with nothing written, and so does, when
``strict``, a field the native row does not keep (otherwise the report counts such fields).
``conversation.schema.json`` beside this module is the native row's JSON Schema, ``schema_text()``
written out (a test fails when it is stale). Then, under an exclusive
``fcntl`` lock on ``<home>/data/conversations.lock`` (so two ingests cannot interleave or both
add the same id), it reads the ids already stored, drops duplicates (by id; the first occurrence
wins) and appends the new conversations in one ``write`` followed by ``fsync``.

A crash during that write can leave a final line without ``\\n``: ``load`` ignores such a torn
tail, and the next ``ingest`` moves it aside to ``conversations.jsonl.torn-<n>`` (never
silently dropped) before appending.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import msgspec

from adapters.data import chat_formats
from adapters.data.chat_formats import FORMATS, Role
from adapters.runtime.workspace import WorkspaceError
from evo_core.errors import InvalidInput
from ledger.recovery import fsync_dir

MAX_REPORTED = 5
SCHEMA_PATH = Path(__file__).with_name("conversation.schema.json")


class Message(msgspec.Struct, frozen=True):
    """One turn. A tool's output is a ``tool`` message; an assistant's tool call is a JSON line
    ``{"name", "arguments"}`` in its content."""

    role: Role
    content: str


class Conversation(msgspec.Struct, frozen=True, kw_only=True):
    """One conversation of the agent: a line of ``data/conversations.jsonl`` and of a native
    ingest file."""

    id: Annotated[str, msgspec.Meta(min_length=1, description="unique in the store; a duplicate is ignored")]
    cycle: Annotated[int, msgspec.Meta(ge=0, description="the heartbeat cycle it happened at")]
    karma: Annotated[float, msgspec.Meta(description="how good it was (finite; any scale, higher is better)")]
    messages: Annotated[list[Message], msgspec.Meta(min_length=1)]

    def __post_init__(self) -> None:
        if not math.isfinite(self.karma):
            raise ValueError(f"karma must be finite, got {self.karma}")


_decoder = msgspec.json.Decoder(Conversation)
_any_decoder = msgspec.json.Decoder(float_hook=float)  # 1e999 is inf, which the typed check names
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
    format: str = "evo"  # the format the input was read as
    dropped: tuple[tuple[str, int], ...] = ()  # (field path, lines carrying it) the store does not keep


@dataclass(frozen=True)
class Parsed:
    conversations: list[Conversation]
    format: str
    dropped: tuple[tuple[str, int], ...]  # (field path, lines carrying it), by path
    first_dropped: dict[str, int]  # field path -> the first line carrying it


def schema() -> dict[str, Any]:
    """The JSON Schema of a native row (msgspec's, from ``Conversation``; descriptions on one line)."""
    out = msgspec.json.schema(Conversation)
    for definition in out.get("$defs", {}).values():
        if "description" in definition:
            definition["description"] = " ".join(definition["description"].split())
    return out


def schema_text() -> str:
    """``schema()`` as ``conversation.schema.json`` holds it."""
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"


def _home_data(ws: object) -> Path:
    """The data folder of a ``Workspace`` (anything with ``.data``) or of a home path."""
    data = getattr(ws, "data", None)
    return Path(data) if data is not None else Path(str(ws)) / "data"


def store_path(ws: object) -> Path:
    return _home_data(ws) / "conversations.jsonl"


def parse_lines(raw: bytes, source: str) -> list[Conversation]:
    """Every line of a JSONL input decoded (its format recognised), or ``IngestError``."""
    return parse(raw, source).conversations


def parse(
    raw: bytes, source: str, *, fmt: str = "auto", default_cycle: Callable[[], int] | None = None
) -> Parsed:
    """Every line of a JSONL input read as ``fmt`` (``auto``: the file's one format, see
    ``chat_formats``) and validated as a native row, or ``IngestError`` listing the bad lines
    (or saying, in one line, that the file mixes formats). Blank lines are skipped.
    ``default_cycle`` gives the cycle of a row that has none (called once at most)."""
    if fmt != "auto" and fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    values: list[tuple[int, Any]] = []
    bad: list[tuple[int, str]] = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            values.append((number, _any_decoder.decode(line)))
        except msgspec.DecodeError as exc:
            bad.append((number, f"invalid JSON ({exc})"))
        except UnicodeDecodeError:
            bad.append((number, "not UTF-8 text"))
    if fmt == "auto":
        kinds: list[tuple[int, str]] = []
        complete: list[bool] = []
        for number, value in values:
            try:
                kinds.append((number, chat_formats.line_kind(value)))
                complete.append(all(k in value for k in ("id", "cycle", "karma")))
            except chat_formats.LineError as exc:
                bad.append((number, str(exc)))
        try:
            fmt = chat_formats.file_format(kinds, complete)
        except chat_formats.MixedFormats as exc:
            raise IngestError(f"{source}: {exc}; nothing ingested", []) from None
    cycle: list[int] = []

    def once() -> int:
        assert default_cycle is not None
        if not cycle:
            cycle.append(default_cycle())
        return cycle[0]

    known_bad = {number for number, _ in bad}
    good: list[Conversation] = []
    counts: Counter[str] = Counter()
    first: dict[str, int] = {}
    for number, value in values:
        try:
            row, dropped = chat_formats.normalise(value, fmt, once if default_cycle is not None else None)
            good.append(msgspec.convert(row, Conversation))
        except (chat_formats.LineError, msgspec.ValidationError) as exc:
            if number not in known_bad:  # a line whose kind was not recognised is reported once
                bad.append((number, str(exc)))
            continue
        for path in dict.fromkeys(dropped):
            counts[path] += 1
            first.setdefault(path, number)
    if bad:
        lines = [f"{source}:{number}: {why}" for number, why in sorted(bad)]
        shown = lines[:MAX_REPORTED] + ([f"and {len(lines) - MAX_REPORTED} more"] if len(lines) > MAX_REPORTED else [])
        plural = "s" if len(lines) > 1 else ""
        raise IngestError(f"{source}: {len(lines)} bad line{plural}; nothing ingested", shown)
    return Parsed(good, fmt, tuple(sorted(counts.items())), first)


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
                fsync_dir(data)
    return IngestReport(added=len(fresh), duplicates=duplicates, total=stored + len(fresh))


def ingest(
    ws: object,
    path: str | os.PathLike[str],
    *,
    fmt: str = "auto",
    strict: bool = False,
    default_cycle: Callable[[], int] | None = None,
    raw: bytes | None = None,
) -> IngestReport:
    """Ingest a JSONL file of conversations (``raw``: its bytes, read already, e.g. stdin's;
    ``path`` then only names it): all lines valid or nothing written. ``strict``: a field the
    store does not keep is an error too, not a count in the report."""
    source = str(path)
    parsed = parse(Path(path).read_bytes() if raw is None else raw, source, fmt=fmt, default_cycle=default_cycle)
    if strict and parsed.dropped:
        problems = [
            f"{source}:{parsed.first_dropped[name]}: {name} (in {n} line{'s' if n > 1 else ''}): the store does not "
            "keep it; remove it, or ingest without --strict to drop it with a warning"
            for name, n in parsed.dropped
        ]
        raise IngestError(f"{source}: fields the store does not keep (--strict); nothing ingested", problems)
    report = add(ws, parsed.conversations)
    return IngestReport(report.added, report.duplicates, report.total, parsed.format, parsed.dropped)


def _load_stored(ws: object) -> list[Conversation]:
    """Every stored conversation as written, in the order ingested (a torn final line is ignored)."""
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


# ---------------------------------------------------------------- what the agent records
#
# ``Agent.respond`` and ``evo serve`` record each conversation they answer (``record``: the
# messages and the answer, a fresh id, karma 0 until the agent says otherwise) through the same
# lock, torn-tail handling and fsync as ``add``. The store stays append-only: karma set later
# (``set_karma``) is appended to ``<home>/data/karma.jsonl`` (``{"id", "karma"}`` a line) and
# ``load`` applies the last value given for each id, so ``evo ingest``'s readers, the samplers
# and the probe drafter see it. A torn final line of karma.jsonl is ignored and set aside the same
# way. Karma for an id the store does not hold is refused (``UnknownConversation``).


class UnknownConversation(InvalidInput):
    """``set_karma`` for an id the conversation store does not hold."""


class KarmaUpdate(msgspec.Struct, frozen=True):
    id: Annotated[str, msgspec.Meta(min_length=1)]
    karma: float


_karma_decoder = msgspec.json.Decoder(KarmaUpdate)


def karma_path(ws: object) -> Path:
    return _home_data(ws) / "karma.jsonl"


def _append_durably(data: Path, path: Path, line: bytes) -> None:
    """Append ``line`` to ``path`` (under ``_locked(data)``, held by the caller), fsync'd."""
    created = not path.exists()
    if not created:
        _set_torn_tail_aside(path)
    with open(path, "ab") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())
    if created:
        fsync_dir(data)


def record(ws: object, messages: Iterable[Message], *, cycle: int, karma: float = 0.0) -> Conversation:
    """Store one conversation the agent had, under a fresh id (``agent-<32 hex>``); returns it."""
    import uuid

    conversation = Conversation(id=f"agent-{uuid.uuid4().hex}", cycle=cycle, karma=check_karma(karma),
                                messages=list(messages))
    _decoder.decode(encode(conversation))  # the checks a reader applies (cycle >= 0, messages)
    data = _home_data(ws)
    with _locked(data):
        _append_durably(data, data / "conversations.jsonl", encode(conversation) + b"\n")
    return conversation


def set_karma(ws: object, conversation_id: str, karma: float) -> None:
    """Record ``karma`` for the stored conversation ``conversation_id`` (the last value wins)."""
    value = check_karma(karma)
    data = _home_data(ws)
    with _locked(data):
        if conversation_id not in {c.id for c in _load_stored(ws)}:
            raise UnknownConversation(f"no conversation {conversation_id!r} in {store_path(ws)}")
        _append_durably(data, karma_path(ws), _encoder.encode(KarmaUpdate(id=conversation_id, karma=value)) + b"\n")


def check_karma(value: object) -> float:
    """``value`` as a karma (a finite number), else ``InvalidInput``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(f"karma must be a finite number, got {value!r}")
    return float(value)


def karma_updates(ws: object) -> dict[str, float]:
    """The karma set later for each conversation id (the last value given; a torn tail ignored)."""
    try:
        raw = karma_path(ws).read_bytes()
    except FileNotFoundError:
        return {}
    end = raw.rfind(b"\n") + 1
    updates: dict[str, float] = {}
    for line in raw[:end].splitlines():
        if line:
            update = _karma_decoder.decode(line)
            updates[update.id] = update.karma
    return updates


def _with_karma(ws: object, conversations: list[Conversation]) -> list[Conversation]:
    updates = karma_updates(ws)
    if not updates:
        return conversations
    return [msgspec.structs.replace(c, karma=updates[c.id]) if c.id in updates else c for c in conversations]


def load(ws: object) -> list[Conversation]:
    """Every stored conversation, in the order ingested (a torn final line is ignored), with the
    karma set later (``set_karma``) applied."""
    return _with_karma(ws, _load_stored(ws))
