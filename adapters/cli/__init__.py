"""``evo``, the command line: the parser and ``main`` (``evo.py``), one module per group of
commands, and what they share (``common.py``)."""

from adapters.cli.evo import build_parser, main

__all__ = ["build_parser", "main"]
