"""An agent's heartbeat loop with evo, as the spec's ``luna_cycle_agent.py`` integrates it.

    python examples/agent_loop.py --home demo-home --cycles 50 --ask-every 10

The agent owns two calls and nothing else:

- ``agent.heartbeat()`` once per cycle: evo's only clock. It is cheap (no pydantic, no torch,
  one locked append) and never waits for the scheduler: when a heartbeat reaches a multiple of
  ``evo_period_cycles`` the window is *recorded*; the runner (``evo run``, another process)
  trains, evaluates and proposes in the background, and the operator approves.
- ``agent.respond(query, kind)`` for every user query: GEN_HEAD answers. The agent does not
  care which generation that is or what phase evo is in: during the shadow phase some TRIVIAL
  queries are also answered by the candidate (compared, never returned), after a cutover the
  new HEAD answers and the burn-in watches its answers, after a rollback the old one is back;
  all of it through the same call.

The agent's conversations are what the next generation learns from: a real agent lets
``agent.respond(messages)`` record each one and sets its karma later (``agent.set_karma``), or
stores them itself (``evo ingest conversations.jsonl``). This example asks questions about the
demo world (an ``evo init --demo`` workspace) and prints each answer with the phase; it records
nothing (``record=False``): the demo world's conversations, with their karma, are ingested by
``scripts/demo.sh``, and the demo's learning is measured on them alone.
"""

from __future__ import annotations

import argparse
import sys
import time

from adapters.agent import Agent
from adapters.data.demo_world import LAWS, SMALL_TALK, facts_until


def question(cycle: int, n: int) -> tuple[str, str]:
    """The n-th user query, at ``cycle`` (deterministic), and its kind."""
    facts = facts_until(cycle)
    pick = 7 * n + n // 5
    if pick % 5 == 4:  # now and then a user tries to make the agent break a law: CRITICAL
        law = LAWS[pick % len(LAWS)]
        return law.tempting[pick % len(law.tempting)], "CRITICAL"
    if pick % 3 == 2:
        return SMALL_TALK[pick % len(SMALL_TALK)][0], "TRIVIAL"
    return facts[pick % len(facts)].question(pick % 2), "TRIVIAL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--home", required=True, help="an evo workspace (`evo init --demo`)")
    parser.add_argument("--cycles", type=int, default=20, help="heartbeats to live (default 20)")
    parser.add_argument("--ask-every", type=int, default=5, help="a user query every K cycles (default 5)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--cycle-seconds", type=float, default=0.0, help="sleep per cycle (default 0)")
    args = parser.parse_args(argv)
    if args.cycles < 0 or args.ask_every < 1:
        parser.error("--cycles must be >= 0 and --ask-every >= 1")

    with Agent(args.home, max_tokens=args.max_tokens, n_threads=1) as agent:
        phase = agent.state().phase.value
        print(f"phase {phase}")
        asked = 0
        for _ in range(args.cycles):
            # ... the agent's own cycle logic goes here ...
            cycle = agent.heartbeat()
            now = agent.state().phase.value
            if now != phase:
                print(f"cycle {cycle}: phase {phase} -> {now}")
                phase = now
            if cycle % args.ask_every == 0:
                query, kind = question(cycle, asked)
                asked += 1
                answer = agent.respond(query, kind=kind, record=False)
                print(f"cycle {cycle} [{phase}] {answer.generation} ({kind}) {query!r} -> {answer.text.strip()!r}")
            if args.cycle_seconds:
                time.sleep(args.cycle_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
