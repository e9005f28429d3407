"""``evo run [--until-idle] [--json]``: the runner (``adapters/runtime/runner.py``). Parse, call, print.

Lines (one per phase change and per ledger record, heartbeats aside) go to stdout, the training
bars to stderr; with ``--json`` the lines go to stderr and the run's report to stdout. Exit 0
when idle or done, 1 on a domain error (one line), 130/143 when SIGINT/SIGTERM stopped it.
"""

from __future__ import annotations

import argparse
import sys

import msgspec


def cmd_run(args: argparse.Namespace) -> int:
    from adapters.runtime.runner import Runner
    from adapters.runtime.workspace import resolve_home

    def say(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    with Runner(resolve_home(args.home), say=say, progress=True) as runner:
        report = runner.run(until_idle=args.until_idle)
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(report) + b"\n")
        sys.stdout.flush()
    elif not report.interrupted:
        say(f"idle: phase {report.phase}, HEAD {report.head}, seq {report.seq}")
    return report.exit_code
