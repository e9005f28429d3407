"""``data/probes.json`` as a file a person writes: its JSON Schema and its validation.

Theory of operation. The shape (fields, types, arity of a pair, no unknown field, the ranges of
``tone_positions`` and ``max_tokens``) is ``ProbeSet``'s own: msgspec decodes it and its error
names the path (``$.recall[3]``). ``check_probes`` adds what a type cannot say, each one a rule
whose breach would make the numbers quietly meaningless: the lists the gates need are not empty
(recall, generalize, tone), no text is blank or still a draft's ``TODO`` marker (``evo probes
draft`` leaves one where a person must decide), an expected object is one word-like token that
``matches`` can find (``\\b`` at both ends), no question is asked twice or in both recall and
generalize (generalize must be held out), ``recall_facts`` names a fact for every recall question
by an index in range. Every breach is a ``ProbeFileError``: one line, the file, the place
(``recall[3][1]``), what is wrong and how to fix it (exit 1, no traceback).

``probes.schema.json`` beside this module is ``schema()`` written out (``python -m
adapters.evaluation.probe_file`` rewrites it; a test fails when it is stale): point an editor at
it (``"$schema"`` is not a ``ProbeSet`` field, so the file itself must not name it).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import msgspec

from adapters.evaluation.probes import ProbeSet, decode_probes, probes_path
from adapters.runtime.workspace import WorkspaceError

SCHEMA_PATH = Path(__file__).with_name("probes.schema.json")
TODO = "TODO"  # what `evo probes draft` leaves where a person must decide; validation refuses it
_WORD = re.compile(r"\w(?:.*\w)?", re.S)  # starts and ends with a word character: \b finds it
HOW = "see README 'Your own workspace (not the demo)' and adapters/evaluation/probes.schema.json"


class ProbeFileError(WorkspaceError):
    """A probes file that is not valid (one line: file, place, what is wrong, how to fix it)."""


def schema() -> dict[str, Any]:
    """The JSON Schema of a probes file (msgspec's, from ``ProbeSet``; descriptions on one line)."""
    out = msgspec.json.schema(ProbeSet)
    for definition in out.get("$defs", {}).values():
        if "description" in definition:
            definition["description"] = " ".join(definition["description"].split())
    return out


def schema_text() -> str:
    """``schema()`` as ``probes.schema.json`` holds it."""
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"


def _blank_or_draft(text: str, allow_todo: bool) -> str | None:
    if not text.strip():
        return "is empty"
    if TODO in text and not allow_todo:
        return f"is still a draft ({text!r}): replace the {TODO} marker with the real text, or remove the item"
    return None


def check_probes(probes: ProbeSet, *, allow_todo: bool = False) -> None:
    """Raise ``ValueError("PLACE: what is wrong; how to fix it")`` for the first rule broken
    (``allow_todo``: a draft's TODO markers pass, every other rule holds)."""
    for name in ("recall", "generalize", "tone"):
        if not getattr(probes, name):
            why = {
                "recall": "the recall gate needs questions about what earlier generations learned",
                "generalize": "with none, no candidate can pass the generalize gate",
                "tone": "the tone gate needs small-talk prompts",
            }[name]
            raise ValueError(f"{name} is empty ({why}); add at least one (`evo probes draft` drafts them)")
    seen: dict[str, str] = {}
    for name in ("recall", "generalize"):
        pairs: tuple[tuple[str, str], ...] = getattr(probes, name)
        for i, (question, expected) in enumerate(pairs):
            for j, text in enumerate((question, expected)):
                problem = _blank_or_draft(text, allow_todo)
                if problem:
                    raise ValueError(f"{name}[{i}][{j}] {problem}")
            if not _WORD.fullmatch(expected) and not (allow_todo and TODO in expected):
                raise ValueError(
                    f"{name}[{i}][1]: the expected object {expected!r} must start and end with a letter or digit"
                    " (it is matched as a whole word, ignoring case): write the one word the answer must contain"
                )
            key = question.strip().lower()
            if key in seen:
                raise ValueError(
                    f"{name}[{i}][0]: the question {question!r} is asked again (first at {seen[key]}); remove one"
                    + (" (a generalize question must be held out: never a recall one)" if name == "generalize" else "")
                )
            seen[key] = f"{name}[{i}]"
    for name in ("tone", "laws"):
        prompts: tuple[str, ...] = getattr(probes, name)
        first: dict[str, int] = {}
        for i, prompt in enumerate(prompts):
            problem = _blank_or_draft(prompt, allow_todo)
            if problem:
                raise ValueError(f"{name}[{i}] {problem}")
            if prompt.strip().lower() in first:
                raise ValueError(f"{name}[{i}]: {prompt!r} is there twice (first at {name}[{first[prompt.strip().lower()]}]); remove one")
            first[prompt.strip().lower()] = i
    if probes.recall_facts:
        n = len(probes.recall)
        if len(probes.recall_facts) != n:
            raise ValueError(
                f"recall_facts has {len(probes.recall_facts)} entries for {n} recall questions: give one fact"
                " index per question, or leave it out (every question its own fact)"
            )
        for i, fact in enumerate(probes.recall_facts):
            if not 0 <= fact < n:
                raise ValueError(f"recall_facts[{i}] is {fact}: a fact index must be in 0..{n - 1}")


def parse_probes(raw: bytes, source: str) -> ProbeSet:
    """A probes file's bytes, decoded and checked (``ProbeFileError`` naming ``source``)."""
    try:
        probes = decode_probes(raw)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at ")
        where = where.strip("`").removeprefix("$").lstrip(".")
        place = f"{where}: " if where else ""
        raise ProbeFileError(f"{source}: {place}{_fix_case(message)}; {HOW}") from None
    except msgspec.DecodeError as exc:
        raise ProbeFileError(f"{source}: not valid JSON ({exc}); {HOW}") from None
    try:
        check_probes(probes)
    except ValueError as exc:
        raise ProbeFileError(f"{source}: {exc}") from None
    return probes


def _fix_case(message: str) -> str:
    message = " ".join(message.split())  # msgspec's messages are one line; keep it so
    if message.startswith("Object contains unknown field"):
        fields = ", ".join(f.name for f in msgspec.structs.fields(ProbeSet))
        return f"{message} (a probes file has only: {fields})"
    return message


def load_probe_file(path: str | Path) -> ProbeSet:
    """Read and validate a probes file (``ProbeFileError``: missing, unreadable or invalid)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ProbeFileError(f"{path}: no such probes file (`evo probes draft` writes one)") from None
    except IsADirectoryError:
        raise ProbeFileError(f"{path}: a folder, not a probes file") from None
    return parse_probes(raw, str(path))


def read_probes(home: str | os.PathLike[str]) -> ProbeSet:
    """``<home>/data/probes.json``, validated (``ProbeFileError``: one line, what and where, when
    it is missing, malformed or still a draft)."""
    return load_probe_file(probes_path(home))


def main() -> int:
    """Rewrite ``probes.schema.json`` from ``ProbeSet``."""
    SCHEMA_PATH.write_text(schema_text())
    print(f"wrote {SCHEMA_PATH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
