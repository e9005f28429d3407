"""The chat formats ``evo ingest`` reads, each turned into the store's native row.

Theory of operation. A JSONL line is decoded to plain JSON values, its kind recognised
(``line_kind``), the file's format chosen from all its lines' kinds (``file_format``: mixed
files are refused, never guessed), and every line ``normalise``d to the native shape
``{id, cycle, karma, messages: [{role, content}]}``, which ``adapters.data.conversations``
then validates with its typed decode (one set of rules for every format). Each field a line
carries that the native row does not keep is named by its path (``tools``,
``messages[].name``) so the caller reports it, or refuses the file when asked to be strict.

The formats:

- ``evo``: the native row itself (``conversation.schema.json``): roles system, user,
  assistant, tool; ``content`` a string.
- ``openai``: OpenAI chat messages, one ``{"messages": [...]}`` a line (the fine-tuning file):
  roles system, developer (stored as system), user, assistant, tool; ``content`` a string, a
  list of parts (text parts joined with a newline; any other part refused), or null in an
  assistant message with ``tool_calls`` (each call stored as one JSON line ``{"name",
  "arguments"}`` after the text).
- ``hf``: a Hugging Face chat dataset's rows (``messages`` of ``{role, content}``, other
  columns beside it), read as ``openai`` is.
- ``sharegpt``: ``{"conversations": [{"from": "human"|"gpt"|"system"|"tool", "value"}]}``
  (an optional top-level ``system`` string becomes the first message).

Any of them may carry ``id``, ``cycle`` and ``karma``; where one is missing: ``id`` is ``c-``
and 32 hex digits of blake3 over the native messages' canonical JSON (the same conversation
ingested twice is one), ``cycle`` the caller's default (``evo ingest``: the next heartbeat's
cycle, so the conversation belongs to the next window, never to one already open), ``karma``
0.0 (neutral).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Literal

import blake3
import msgspec

from evo_core.errors import InvalidInput

FORMATS = ("evo", "openai", "hf", "sharegpt")
NAMES = {"evo": "evo's native rows", "openai": "OpenAI chat messages", "hf": "Hugging Face chat rows",
         "sharegpt": "ShareGPT"}
Role = Literal["system", "user", "assistant", "tool"]
NATIVE_ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
NATIVE_FIELDS = ("id", "cycle", "karma", "messages")
OPENAI_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}
SHAREGPT_ROLES = {"human": "user", "gpt": "assistant", "system": "system", "tool": "tool"}
DEFAULT_KARMA = 0.0
_OPENAI_TOP = ("tools", "parallel_tool_calls", "functions")  # fields only an OpenAI row carries
_encoder = msgspec.json.Encoder()


class LineError(InvalidInput):
    """What is wrong with one line, and how to fix it."""


class MixedFormats(InvalidInput):
    """A file whose lines are of formats that cannot be read as one."""


def line_kind(value: Any) -> str:
    """The format one decoded line is written in (a line of native-shaped messages without
    all of id, cycle and karma is ``hf``; one using anything only OpenAI has, ``openai``)."""
    if not isinstance(value, dict):
        raise LineError("not a JSON object: each line is one conversation, {\"messages\": [...]} or {\"conversations\": [...]}")
    if "messages" in value and "conversations" in value:
        raise LineError("has both messages and conversations: keep one (ShareGPT's conversations or the messages)")
    if "conversations" in value:
        return "sharegpt"
    if "messages" not in value:
        raise LineError("no messages list: give {\"messages\": [{\"role\": ..., \"content\": ...}]} "
                        "or ShareGPT's {\"conversations\": [{\"from\": ..., \"value\": ...}]}")
    messages = value["messages"]
    native = isinstance(messages, list) and not any(k in value for k in _OPENAI_TOP) and all(
        isinstance(m, dict) and m.keys() <= {"role", "content"} and m.get("role") in NATIVE_ROLES
        and isinstance(m.get("content"), str)
        for m in messages
    )
    if not native:
        return "openai"
    return "evo" if all(k in value for k in ("id", "cycle", "karma")) else "hf"


def file_format(kinds: list[tuple[int, str]], complete: list[bool]) -> str:
    """The one format of a file from its lines' ``(line number, kind)`` and whether each line
    carries id, cycle and karma: ``MixedFormats`` for ShareGPT beside messages; ``evo`` when
    only some lines carry all three (a native file with a line missing one, never defaulted);
    else ``openai`` for a mix of the message kinds."""
    found = {kind for _, kind in kinds}
    if len(found) <= 1:
        return found.pop() if found else "evo"
    first = {kind: number for number, kind in reversed(kinds)}
    if "sharegpt" in found:
        other = min((k for k in first if k != "sharegpt"), key=first.__getitem__)
        raise MixedFormats(
            f"mixes ShareGPT (line {first['sharegpt']}) and {NAMES[other]} (line {first[other]}): "
            "split it into one file per format"
        )
    if any(complete) and not all(complete):
        return "evo"  # some lines carry id, cycle and karma: each line that does not is a bad one
    return "openai"  # native-shaped rows are OpenAI messages too


def content_id(messages: list[dict[str, Any]]) -> str:
    """The default id: ``c-`` and 32 hex digits of blake3 over the messages' canonical JSON."""
    canonical = _encoder.encode([{"role": m.get("role"), "content": m.get("content")} for m in messages])
    return "c-" + blake3.blake3(canonical).hexdigest()[:32]


def normalise(value: Any, fmt: str, default_cycle: Callable[[], int] | None) -> tuple[dict[str, Any], list[str]]:
    """The native row of one decoded line read as ``fmt``, and the paths of the fields it
    drops. Types the native row checks itself (a cycle that is not a whole number) are left
    to the caller's typed decode."""
    if not isinstance(value, dict):
        raise LineError("not a JSON object: each line is one conversation")
    dropped = [k for k in value if k not in NATIVE_FIELDS and not (fmt == "sharegpt" and k in ("conversations", "system"))]
    if fmt == "evo":
        missing = [k for k in NATIVE_FIELDS if k not in value]
        if missing:
            raise LineError(f"no {', '.join(missing)}: a native row needs id, cycle, karma and messages "
                            "(rows without id, cycle or karma: give --format openai or hf, which default them)")
        messages = value["messages"]
        if isinstance(messages, list):
            for m in messages:
                if isinstance(m, dict):
                    dropped += [f"messages[].{k}" for k in m if k not in ("role", "content")]
            messages = [{k: m[k] for k in ("role", "content") if k in m} if isinstance(m, dict) else m for m in messages]
    elif fmt == "sharegpt":
        messages = _sharegpt(value, dropped)
    else:
        if "messages" not in value:
            raise LineError(f"no messages list ({NAMES[fmt]} are {{\"messages\": [{{\"role\": ..., \"content\": ...}}]}})")
        messages = _openai(value["messages"], dropped)
    row: dict[str, Any] = {"messages": messages}
    if isinstance(messages, list) and "id" not in value and all(isinstance(m, dict) for m in messages):
        row["id"] = content_id(messages)
    row.update({k: value[k] for k in ("id", "cycle", "karma") if k in value})
    if "cycle" not in row:
        if default_cycle is None:
            raise LineError("no cycle: give each row its heartbeat cycle (`evo ingest` defaults it to the next one)")
        row["cycle"] = default_cycle()
    row.setdefault("karma", DEFAULT_KARMA)
    return {k: row[k] for k in NATIVE_FIELDS}, dropped


def _openai(messages: Any, dropped: list[str]) -> Any:
    if not isinstance(messages, list):
        return messages  # the typed decode says what it should be
    out = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise LineError(f"{where}: not an object {{\"role\": ..., \"content\": ...}}")
        role = m.get("role")
        if role not in OPENAI_ROLES:
            raise LineError(f"{where}.role: {role!r} is not a chat role; one of {', '.join(OPENAI_ROLES)}")
        dropped += [f"messages[].{k}" for k in m if k not in ("role", "content", "tool_calls", "function_call")]
        text = _content(m.get("content"), where)
        calls = [*(m.get("tool_calls") or ()), *([m["function_call"]] if m.get("function_call") else [])]
        if calls and role != "assistant":
            raise LineError(f"{where}: only an assistant message makes tool calls, not {role!r}")
        lines = ([text] if text else []) + [_call(c, f"{where}.tool_calls[{j}]") for j, c in enumerate(calls)]
        if text is None and not calls:
            raise LineError(f"{where}.content: null without tool_calls: give the message's text (or drop the message)")
        out.append({"role": OPENAI_ROLES[role], "content": "\n".join(lines) if calls else text})
    return out


def _content(content: Any, where: str) -> str | None:
    """A message's text: a string, null, or text parts joined with a newline."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise LineError(f"{where}.content: a string, null or a list of parts, not {type(content).__name__}")
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        key = {"text": "text", "refusal": "refusal"}.get(kind) if isinstance(kind, str) else None
        if key is None or not isinstance(part.get(key), str):
            shown = f"a {kind!r} part" if isinstance(kind, str) else "not a {\"type\": \"text\", \"text\": ...} part"
            raise LineError(f"{where}.content[{j}]: {shown}: evo trains on text only; remove the part or the message")
        texts.append(part[key])
    return "\n".join(texts)


def _call(call: Any, where: str) -> str:
    """One tool call as the line the assistant's text stores: ``{"name", "arguments"}``."""
    fn = call.get("function", call) if isinstance(call, dict) else None
    name = fn.get("name") if isinstance(fn, dict) else None
    if not isinstance(name, str) or not name:
        raise LineError(f"{where}: a tool call is {{\"type\": \"function\", \"function\": {{\"name\": ..., \"arguments\": ...}}}}")
    arguments = fn.get("arguments", {}) if isinstance(fn, dict) else {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            pass  # kept as the text it is
    return json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False, separators=(", ", ": "))


def _sharegpt(value: dict[str, Any], dropped: list[str]) -> list[dict[str, Any]]:
    turns = value["conversations"]
    if not isinstance(turns, list):
        raise LineError("conversations: a list of {\"from\": ..., \"value\": ...}")
    out: list[dict[str, Any]] = []
    system = value.get("system")
    if system is not None:
        if not isinstance(system, str):
            raise LineError("system: a string (the system prompt)")
        out.append({"role": "system", "content": system})
    for i, turn in enumerate(turns):
        where = f"conversations[{i}]"
        if not isinstance(turn, dict):
            raise LineError(f"{where}: not an object {{\"from\": ..., \"value\": ...}}")
        who = turn.get("from")
        if who not in SHAREGPT_ROLES:
            raise LineError(f"{where}.from: {who!r} is not a ShareGPT speaker; one of {', '.join(SHAREGPT_ROLES)}")
        if not isinstance(turn.get("value"), str):
            raise LineError(f"{where}.value: the turn's text, a string")
        dropped += [f"conversations[].{k}" for k in turn if k not in ("from", "value")]
        out.append({"role": SHAREGPT_ROLES[who], "content": turn["value"]})
    return out
