"""What every ``evo`` command module shares: its output, its workspace's ``App`` and its exit codes
(errors are ``evo_core.errors``'s family: each carries its own exit code).

Machine output (``--json``) goes to stdout as one JSON document a line, text to stdout, and
diagnostics to stderr. A reader that stops reading (``evo log --json | head -1``) ends the
command quietly: the write raises ``StdoutClosed`` (no command's ``except OSError`` takes it
for an error of its own), ``main`` catches it and ``stdout_closed`` exits 0 with nothing on
stderr, as ``git log | head`` does. Kept light: a heartbeat imports this (msgspec and the
workspace only).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import msgspec

from adapters.runtime.workspace import resolve_home
from evo_core.errors import EvoError, UsageError

EXIT_ERROR = EvoError.exit_code
EXIT_USAGE = UsageError.exit_code


class StdoutClosed(Exception):
    """Whoever read stdout has gone (a closed pipe): the command stops, quietly."""


def out(text: str) -> None:
    """One line of text on stdout."""
    try:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    except BrokenPipeError:
        raise StdoutClosed from None


def out_json(value: Any) -> None:
    """``value`` as one line of JSON on stdout."""
    try:
        sys.stdout.buffer.write(msgspec.json.encode(value) + b"\n")
    except BrokenPipeError:
        raise StdoutClosed from None


def stdout_closed() -> int:
    """After a closed pipe: stdout pointed at /dev/null, so that Python's final flush of what is
    still buffered fails neither loudly nor with exit status 120; exit status 0."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # not a real file (captured in tests): nothing to flush later
        pass
    return 0


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


OWN_PACKAGES = ("adapters", "evo_core", "ledger", "projections")


def require_packages(*names: str) -> None:
    """``ModuleNotFoundError`` for the first of ``names`` not installed (found, never imported:
    a command checks its extras before it starts work it could not finish)."""
    from importlib.util import find_spec

    for name in names:
        if find_spec(name) is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def missing_package(exc: ModuleNotFoundError) -> str | None:
    """The one line for a command that needs an optional package not installed, naming the extra
    (read from evo's installed metadata) that brings it; None for a module of evo's own (a bug)."""
    import re

    name = (exc.name or "").split(".")[0]
    if not name or name in OWN_PACKAGES:
        return None
    extra = None
    try:
        from importlib.metadata import metadata

        for requirement in metadata("evo").get_all("Requires-Dist") or []:
            found = re.match(r"([A-Za-z0-9_.-]+).*extra == \"([\w-]+)\"", requirement)
            if found and re.sub(r"[-.]", "_", found[1].lower()).startswith(name.lower()):
                extra = found[2]
                break
    except ImportError:  # no metadata (evo not installed): the line names no extra
        pass
    how = (
        f"install evo's {extra} extra (from the source tree: .venv/bin/pip install -c constraints.txt -e '.[{extra}]')"
        if extra else "install it (see README, Install)"
    )
    return f"this command needs the Python package {name!r}, which is not installed: {how}"
