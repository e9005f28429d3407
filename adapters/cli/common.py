"""What every ``evo`` command module shares: its output, its workspace's ``App`` and its exit codes
(errors are ``evo_core.errors``'s family: each carries its own exit code).

Machine output (``--json``) goes to stdout as one JSON document a line, text to stdout, and
diagnostics to stderr. Kept light: a heartbeat imports this (msgspec and the workspace only).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgspec

from adapters.runtime.workspace import resolve_home
from evo_core.errors import EvoError, UsageError

EXIT_ERROR = EvoError.exit_code
EXIT_USAGE = UsageError.exit_code


def out(text: str) -> None:
    """One line of text on stdout."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def out_json(value: Any) -> None:
    """``value`` as one line of JSON on stdout."""
    sys.stdout.buffer.write(msgspec.json.encode(value) + b"\n")


def open_app(args: argparse.Namespace) -> Any:
    """The ``App`` of the workspace ``--home`` names (use it as a context manager)."""
    from adapters.runtime.app import App

    return App(resolve_home(args.home))


def print_events(outcome: Any, json_out: bool) -> int:
    """The events a command appended: one line each, or a JSON list; exit status 0."""
    from projections.summary import describe

    if json_out:
        out_json([{"event": e} for e in outcome.events])
    else:
        for event in outcome.events:
            out(describe(event))
    return 0
