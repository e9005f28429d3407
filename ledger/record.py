"""One ledger record: its exact bytes, its hash, and how a line is checked.

Theory of operation (the contract of DESIGN.md, "The ledger contract")
----------------------------------------------------------------------
A record body ``B`` is compact JSON built here by byte concatenation, keys in this order::

    {"seq":S,"prev":"<64 hex>","at":"<UTC ms Z>"[,"more":R],"event":{...}}

``H = blake3(B).hexdigest()`` and the line is ``B[:-1] + ',"hash":"' + H + '"}' + "\\n"``.
An auditor recovers ``B`` as ``line[:-75] + "}"`` (after stripping the newline) and needs only
JSON and blake3. The hash covers the bytes, never a re-serialisation, so decoding may evolve
while old ledgers keep verifying.

``"at"`` is the wall time of the append: metadata for auditors, never read by a decision.

Batch atomicity: ``"more":R`` is present on every record of a multi-record batch except the
last and says how many records of the same batch follow it. A batch is written with one
``write`` call, but a crash may still cut it after a newline in its middle; the whole lines
before the cut verify on their own. Readers therefore treat a record whose ``more`` is
non-zero as *uncommitted* until the batch's last record (no ``more`` key) is present, and
recovery moves an incomplete batch aside whole, together with any torn bytes after it. A
single-event append carries no ``more`` key at all, so the hot path pays nothing.

Non-finite floats are refused before anything is written: JSON has no NaN, and msgspec would
silently write ``null``, which would not decode back into the event it came from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import msgspec
from blake3 import blake3

from evo_core.errors import CorruptHistory
from evo_core.events import AnyEvent, Event, encode_event

GENESIS_PREV = "0" * 64
HASH_SUFFIX_LEN = 75  # len(',"hash":"') + 64 + len('"}')

_HASH_OPEN = b',"hash":"'
_HEX = frozenset(b"0123456789abcdef")


class CorruptRecord(CorruptHistory):
    """A line that breaks the chain: bad shape, hash, seq, prev, JSON or event."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(f"seq {seq}: {reason}")
        self.seq = seq
        self.reason = reason


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """A verified record. ``end`` is the byte offset just after its newline."""

    seq: int
    prev: str
    hash: str
    at: str
    event: Event
    end: int
    more: int = 0


class _Body(msgspec.Struct, frozen=True, gc=False):
    """How a line decodes (the trailing ``hash`` key is read from the suffix bytes instead)."""

    seq: int
    prev: str
    event: AnyEvent
    at: str = ""
    more: int = 0


class _Head(msgspec.Struct, frozen=True, gc=False):
    """The fields of a line that locate it in the chain (the event is not decoded)."""

    seq: int
    prev: str
    more: int = 0


_body_decoder = msgspec.json.Decoder(_Body)
_head_decoder = msgspec.json.Decoder(_Head)


# --------------------------------------------------------------------------- encoding


_FLOAT_FIELDS: dict[type, tuple[str, ...]] = {}


@lru_cache(maxsize=None)
def _float_fields(cls: type) -> tuple[str, ...]:
    """Names of the fields of ``cls`` whose values may hold a float (directly or nested)."""
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    return tuple(f.name for f in info.fields if _may_hold_float(f.type))


def _may_hold_float(t: msgspec.inspect.Type) -> bool:
    if isinstance(t, msgspec.inspect.FloatType):
        return True
    if isinstance(t, msgspec.inspect.StructType):
        return bool(_float_fields(t.cls))
    if isinstance(t, msgspec.inspect.UnionType):
        return any(_may_hold_float(u) for u in t.types)
    if isinstance(t, (msgspec.inspect.ListType, msgspec.inspect.VarTupleType,
                      msgspec.inspect.SetType, msgspec.inspect.FrozenSetType)):
        return _may_hold_float(t.item_type)
    if isinstance(t, msgspec.inspect.TupleType):
        return any(_may_hold_float(u) for u in t.item_types)
    if isinstance(t, msgspec.inspect.DictType):
        return _may_hold_float(t.value_type)
    return isinstance(t, msgspec.inspect.AnyType)


def _check_finite(value: Any, where: str) -> None:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value!r}: the ledger accepts only finite numbers")
    elif isinstance(value, msgspec.Struct):
        for name in _float_fields(type(value)):
            _check_finite(getattr(value, name), f"{where}.{name}")
    elif isinstance(value, (tuple, list, set, frozenset)):
        for i, item in enumerate(value):
            _check_finite(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for k, item in value.items():
            _check_finite(item, f"{where}[{k!r}]")


def check_event(event: Event) -> None:
    """Raise ``TypeError``/``ValueError`` if ``event`` cannot be written faithfully."""
    if not isinstance(event, Event):
        raise TypeError(f"not an event: {event!r}")
    cls = type(event)
    names = _FLOAT_FIELDS.get(cls)
    if names is None:
        names = _FLOAT_FIELDS[cls] = _float_fields(cls)
    for name in names:
        _check_finite(getattr(event, name), f"{cls.__name__}.{name}")


def record_hash(body: bytes) -> str:
    """``H`` of the contract: lowercase hex blake3 of the body's exact bytes."""
    return blake3(body).hexdigest()


def encode_batch(
    first_seq: int, prev: str, events: Sequence[Event], at: str
) -> tuple[bytes, str]:
    """The lines of a batch (all ending in ``\\n``) and the hash of its last record.

    Every event is checked before any byte is produced, so a bad event writes nothing.
    """
    if len(events) == 1:  # the hot path: one event per append
        event = events[0]
        check_event(event)
        body = b'{"seq":%d,"prev":"%s","at":"%s","event":%s}' % (
            first_seq, prev.encode("ascii"), at.encode("ascii"), encode_event(event))
        digest = record_hash(body)
        return body[:-1] + b',"hash":"%s"}\n' % digest.encode("ascii"), digest
    if not events:
        raise ValueError("an append needs at least one event")
    for event in events:
        check_event(event)
    at_b = at.encode("ascii")
    last = len(events) - 1
    parts: list[bytes] = []
    append = parts.append
    seq = first_seq
    for i, event in enumerate(events):
        head = b'{"seq":%d,"prev":"%s","at":"%s",' % (seq, prev.encode("ascii"), at_b)
        if i != last:
            head += b'"more":%d,' % (last - i)
        body = head + b'"event":' + encode_event(event) + b"}"
        prev = record_hash(body)
        append(body[:-1])
        append(b',"hash":"%s"}\n' % prev.encode("ascii"))
        seq += 1
    return b"".join(parts), prev


# --------------------------------------------------------------------------- decoding


def split_line(line: bytes, seq: int) -> tuple[bytes, str]:
    """``(B, H)`` of a line without its newline; ``CorruptRecord`` if the suffix is malformed."""
    n = len(line)
    if n < HASH_SUFFIX_LEN + 2 or line[n - HASH_SUFFIX_LEN : n - 66] != _HASH_OPEN or line[-2:] != b'"}':
        raise CorruptRecord(seq, 'line does not end with ,"hash":"<64 hex>"}')
    digest = line[n - 66 : n - 2]
    if not _HEX.issuperset(digest):
        raise CorruptRecord(seq, "hash is not 64 lowercase hex characters")
    return line[: n - HASH_SUFFIX_LEN] + b"}", digest.decode("ascii")


def _decode_error(seq: int, exc: msgspec.DecodeError) -> CorruptRecord:
    msg = str(exc)
    if isinstance(exc, msgspec.ValidationError) and "Invalid value" in msg and "$.event.type" in msg:
        name = msg.split("Invalid value ", 1)[1].split(" - at", 1)[0]
        return CorruptRecord(seq, f"unknown event type {name}")
    if isinstance(exc, msgspec.ValidationError):
        return CorruptRecord(seq, f"invalid record: {msg}")
    return CorruptRecord(seq, f"invalid JSON: {msg}")


def parse_line(line: bytes, expected_seq: int, expected_prev: str, end: int = 0) -> Record:
    """Verify and decode one line (with or without its newline; the caller handles torn lines).

    ``end`` is stored on the record: the byte offset just after this line in its file.
    """
    if line.endswith(b"\n"):
        line = line[:-1]
    body, digest = split_line(line, expected_seq)
    if record_hash(body) != digest:
        raise CorruptRecord(expected_seq, "hash mismatch (the record's bytes were changed)")
    try:
        b = _body_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise _decode_error(expected_seq, exc) from None
    if b.seq != expected_seq:
        raise CorruptRecord(expected_seq, f"seq is {b.seq}, expected {expected_seq}")
    if b.prev != expected_prev:
        raise CorruptRecord(expected_seq, "prev does not match the previous record's hash")
    return Record(seq=b.seq, prev=b.prev, hash=digest, at=b.at, event=b.event, end=end, more=b.more)


def check_line(line: bytes, seq: int, prev: str) -> tuple[_Body, str]:
    """The hot path of replay and verify: ``(decoded body, hash)`` of a whole line (newline
    included) that must be record ``seq`` after ``prev``; no ``Record`` is built. Any failure
    is re-diagnosed by ``parse_line``, which raises the precise ``CorruptRecord``."""
    n = len(line)
    body = line[: n - 76] + b"}"
    digest = line[n - 67 : n - 3].decode("ascii", "replace")
    if line[n - 76 : n - 67] == _HASH_OPEN and line[n - 3 :] == b'"}\n' and record_hash(body) == digest:
        try:
            b = _body_decoder.decode(body)
        except msgspec.DecodeError as exc:
            raise _decode_error(seq, exc) from None
        if b.seq == seq and b.prev == prev:
            return b, digest
    parse_line(line, seq, prev)
    raise CorruptRecord(seq, "malformed record")  # unreachable: parse_line raised


def parse_head(line: bytes, seq_hint: int = -1) -> tuple[int, str, str, int]:
    """``(seq, prev, hash, more)`` of one line, hash checked, event not decoded."""
    if line.endswith(b"\n"):
        line = line[:-1]
    if seq_hint < 0:
        seq_hint = _claimed_seq(line)
    body, digest = split_line(line, seq_hint)
    if record_hash(body) != digest:
        raise CorruptRecord(seq_hint, "hash mismatch (the record's bytes were changed)")
    try:
        h = _head_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise _decode_error(seq_hint, exc) from None
    return h.seq, h.prev, digest, h.more


def _claimed_seq(line: bytes) -> int:
    """The seq a (possibly damaged) line claims, for error messages; -1 if unreadable."""
    if line.startswith(b'{"seq":'):
        digits = line[7:27].split(b",", 1)[0]
        if digits.isdigit():
            return int(digits)
    return -1
