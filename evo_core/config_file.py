"""config.toml as TOML, and the settings a heartbeat reads from it (defaults, rules), free of pydantic.

``parse_toml`` refuses a file that is not TOML or holds no setting at all. ``evo_core.config``
(pydantic, ~70 ms to import) validates what it returns and builds its fields from the defaults
here; the heartbeat (``adapters.runtime.workspace.Workspace.heartbeat_settings``) reads them straight from
config.toml's parsed TOML with ``heartbeat_values``: no cache file in between, so nothing but
config.toml itself decides them. When a value is there but not valid (or config.toml names a
setting the config does not know), ``heartbeat_values`` returns None and the caller runs the
full validation, whose error names the field.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from evo_core.errors import EnvironmentFault


class ConfigError(EnvironmentFault):
    """The config file is malformed or a value is out of range."""


AGENT_NAME = "Luna"
AGENT_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,31}$"
EVO_PERIOD_CYCLES = 10_000
SNAPSHOT_EVERY = 1000

# config.toml's top-level names and the [ledger] section's (``EvoConfig``'s and ``LedgerConfig``'s
# fields; a test keeps them equal): a misspelt one goes to the full validation, never ignored.
TOP_LEVEL = frozenset(
    {
        "agent_name", "evo_period_cycles", "max_concurrent_experiments", "seed_base", "data_strategies",
        "budget", "gates", "score", "distill", "train", "shadow", "burn_in", "approval", "ledger",
        "laws", "model",
    }
)
LEDGER_SECTION = frozenset({"snapshot_every"})

_AGENT_NAME = re.compile(AGENT_NAME_PATTERN)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def heartbeat_values(data: dict[str, Any]) -> tuple[str, int, int] | None:
    """``(agent_name, evo_period_cycles, snapshot_every)`` from a parsed config.toml, defaults
    for what it leaves out; None when one of them (or a name beside them) is not valid."""
    if not data.keys() <= TOP_LEVEL:
        return None
    ledger = data.get("ledger", {})
    if not isinstance(ledger, dict) or not ledger.keys() <= LEDGER_SECTION:
        return None
    name = data.get("agent_name", AGENT_NAME)
    period = data.get("evo_period_cycles", EVO_PERIOD_CYCLES)
    every = ledger.get("snapshot_every", SNAPSHOT_EVERY)
    if not (isinstance(name, str) and _AGENT_NAME.fullmatch(name) and _whole(period) and _whole(every)):
        return None
    return name, period, every


def parse_toml(text: str, source: str = "config.toml") -> dict[str, Any]:
    """config.toml's text as TOML; ``ConfigError`` if it is not TOML or holds no setting at all
    (a wiped or truncated file would otherwise mean every default, and no trusted key)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    if not data:
        raise ConfigError(
            f"{source} is empty: it holds no setting (wiped or truncated?); restore it from your copy"
            " (`evo init --home NEW` writes a complete one to start from)"
        )
    return data
