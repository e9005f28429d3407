"""Checks shared by the command handlers."""

from __future__ import annotations

import math

from evo_core import events as ev
from evo_core.errors import InvalidInput

Events = list[ev.Event]


def is_hex64(text: str) -> bool:
    return len(text) == 64 and all(ch in "0123456789abcdef" for ch in text)


def finite(**values: float) -> None:
    for name, value in values.items():
        if not math.isfinite(value):
            raise InvalidInput(f"{name} is not a finite number: {value!r}")
