"""Names by unique prefix: how every command finds the generation or candidate a user meant."""

from __future__ import annotations

from collections.abc import Iterable


def by_prefix(wanted: str, names: Iterable[str]) -> list[str]:
    """``[wanted]`` when it is one of ``names``; else every name it is a prefix of, in order,
    each once. One match is the name meant; none or several are the caller's error to word."""
    unique = list(dict.fromkeys(names))
    if wanted in unique:
        return [wanted]
    return [n for n in unique if n.startswith(wanted)]
