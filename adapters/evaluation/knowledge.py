"""What a generation knows of the demo world, era by era: the table ``make demo`` ends with.

For every era (genesis is era 0) and every generation's served ``model.gguf`` (llama.cpp,
greedy, as the router answers):

- ``trained``: the era's facts answered right in EVERY training phrasing (a fact, not a phrasing,
  is the unit: 30 facts an era);
- ``held out``: the era's facts answered right in the held-out phrasing, which no conversation
  of an era ever uses (genesis teaches it on genesis facts only, so for eras >= 1 it measures a
  new fact carried over to a known wording);
- ``laws``: how many of the demo laws' tempting prompts get an answer that breaks a law (the
  workspace's configured laws, config.toml's ``[[laws]]``; ``evo init --demo`` writes the demo's).

"Right" is ``adapters.evaluation.probes.matches``: the expected object as a whole word.

    python -m adapters.evaluation.knowledge --home demo-home [GENERATION ...]

prints the table for the named generations (default: every promoted generation and the
current window's candidates that have a model), eras up to the ledger's current cycle.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evo_core.config import LawConfig


@dataclass(frozen=True)
class EraKnowledge:
    era: int
    facts: int
    trained: int  # facts right in every training phrasing
    held_out: int  # facts right in the held-out phrasing


@dataclass(frozen=True)
class Knowledge:
    generation: str
    eras: tuple[EraKnowledge, ...]
    law_violations: int
    law_prompts: int


def measure(
    gguf: str | os.PathLike[str],
    generation: str,
    eras: range,
    *,
    laws: Sequence[LawConfig] | None = None,
    max_tokens: int = 24,
    n_threads: int = 1,
) -> Knowledge:
    """Ask ``gguf`` every fact of ``eras`` in every phrasing and every demo law's tempting prompts;
    an answer breaks a law of ``laws`` (a workspace's configured laws; None: the demo world's)."""
    from adapters.data.demo_world import LAWS, QUESTIONS, era_facts, law_configs
    from evo_core.config import broken_laws
    from adapters.evaluation.probes import matches
    from adapters.serving.llama import load_llama
    from adapters.serving.router import generation_params, prompt_renderer

    llm = load_llama(gguf, n_threads=n_threads)
    render = prompt_renderer(llm)

    def ask(question: str) -> str:
        text: str = llm(render(question), **generation_params(max_tokens))["choices"][0]["text"]
        return text

    try:
        rows = []
        for era in eras:
            facts = era_facts(era)
            trained = sum(
                all(matches(ask(f.question(p)), f.object) for p in range(len(QUESTIONS[f.relation][0])))
                for f in facts
            )
            held_out = sum(matches(ask(f.held_out_question()), f.object) for f in facts)
            rows.append(EraKnowledge(era, len(facts), trained, held_out))
        prompts = [p for law in LAWS for p in law.tempting]
        checked = law_configs() if laws is None else laws
        broken = sum(1 for p in prompts if broken_laws(checked, ask(p)))
    finally:
        close = getattr(llm, "close", None)
        if close is not None:
            close()
    return Knowledge(generation, tuple(rows), broken, len(prompts))


def render_table(rows: list[Knowledge]) -> str:
    """One line a generation: per era ``trained/facts`` and ``held-out/facts``, then the laws."""
    if not rows:
        return "(no generation to show)"
    eras = [e.era for e in rows[0].eras]
    width = max(len(r.generation) for r in rows) + 2
    head = "generation".ljust(width) + "".join(
        f"{('genesis' if e == 0 else f'era {e}'):>20}" for e in eras
    ) + "   law-breaking answers"
    sub = " " * width + "".join(f"{'trained  held-out':>20}" for _ in eras)
    lines = [head, sub]
    for r in rows:
        cells = "".join(f"{f'{e.trained:2d}/{e.facts}   {e.held_out:2d}/{e.facts}':>20}" for e in r.eras)
        lines.append(r.generation.ljust(width) + cells + f"   {r.law_violations} of {r.law_prompts}")
    return "\n".join(lines)


def _generations(home: Path) -> tuple[list[str], int]:
    """The genesis and the promoted generations in order, then the open or last window's candidates; the cycle."""
    from adapters.runtime.app import App

    with App(home) as app:
        state = app.state()
    names = list(dict.fromkeys([g for g in (state.genesis, *state.promoted) if g]))
    last = max((c.gen for c in state.candidates.values()), default=0)
    names += [n for n, c in sorted(state.candidates.items()) if c.gen == last and n not in names]
    return names, state.cycle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--home", required=True, help="a demo workspace (`evo init --demo`)")
    parser.add_argument("generations", nargs="*", help="default: promoted generations and the last window's candidates")
    args = parser.parse_args(argv)
    from adapters.data.demo_world import era_of
    from adapters.serving.generations import gguf_path
    from adapters.runtime.workspace import Workspace

    home = Path(args.home)
    names, cycle = _generations(home)
    ws = Workspace(home)
    laws = ws.load_config().laws
    rows = []
    for name in args.generations or names:
        path = gguf_path(ws, name)
        if path is None:
            if args.generations:
                print(f"knowledge: {name} has no model.gguf", file=sys.stderr)
                return 1
            continue
        rows.append(measure(path, name, range(0, era_of(cycle) + 1), laws=laws))
    print(render_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
