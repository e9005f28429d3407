"""Regenerate the generated parts of README.md from the code (the phase table, the diagram,
the event list and the CLI reference). `python scripts/gen_docs.py --check` fails if stale."""

from __future__ import annotations

import io
import re
import sys
from contextlib import redirect_stdout
from pathlib import Path

from adapters.cli import build_parser
from evo_core.events import EVENT_TYPES
from evo_core.transitions import render_mermaid, render_table

README = Path(__file__).resolve().parent.parent / "README.md"


def events_doc() -> str:
    rows = ["| event | fields | meaning |", "| --- | --- | --- |"]
    for name, cls in EVENT_TYPES.items():
        fields = ", ".join(cls.__struct_fields__)
        doc = " ".join((cls.__doc__ or "").split())
        rows.append(f"| `{name}` | {fields} | {doc} |")
    return "\n".join(rows)


def cli_doc() -> str:
    parser = build_parser()
    out = []
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, sp in sub.choices.items():  # type: ignore[attr-defined]
        buf = io.StringIO()
        with redirect_stdout(buf):
            sp.print_help()
        text = buf.getvalue().replace("usage: evo", "evo", 1)
        out.append(f"#### `evo {name}`\n\n```\n{text.rstrip()}\n```")
    return "\n\n".join(out)


SECTIONS = {
    "phases": lambda: render_table(),
    "diagram": lambda: "```mermaid\n" + render_mermaid() + "\n```",
    "events": events_doc,
    "cli": cli_doc,
}


def render(text: str) -> str:
    for key, make in SECTIONS.items():
        pattern = re.compile(
            rf"(<!-- generated:{key} -->\n)(?:.*?\n)?(<!-- /generated:{key} -->)", re.S
        )
        if not pattern.search(text):
            raise SystemExit(f"README.md lacks the markers for {key}")
        text = pattern.sub(lambda m: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def main() -> int:
    old = README.read_text()
    new = render(old)
    if "--check" in sys.argv:
        if new != old:
            print("README.md is stale: run `python scripts/gen_docs.py`", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
