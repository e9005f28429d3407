"""The workspace (``--home`` / ``EVO_HOME``): where everything lives, and its config.

Layout (DESIGN.md)::

    <home>/config.toml                 validated by pydantic; errors name the field
    <home>/ledger.jsonl, ledger.head   the only truth
    <home>/models/Luna-GHEAD -> archive/<generation>
    <home>/models/Luna-GHEAD-PARENT -> archive/<generation>
    <home>/models/archive/<generation>/
    <home>/models/lineage.csv, PROMOTION_PROPOSAL.json, evolution_log.jsonl   (projections)
    <home>/data/

The heartbeat must stay cheap, and validating the config costs ~70 ms of pydantic import. So a
heartbeat reads the three values it needs (agent name, period, snapshot interval) from
config.toml's bytes every time with the stdlib's TOML parser and ``evo_core.config_file``' rules,
and runs the full validation (whose error names the field) only when one of them is not valid.
No cache file stands between config.toml and the heartbeat: a file the agent can write (an old
``.evo/settings.json``) never decides the period.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from evo_core.errors import EnvironmentFault

if TYPE_CHECKING:
    from evo_core.config import EvoConfig

DEFAULT_HOME = "evo-home"


class WorkspaceError(EnvironmentFault):
    """The workspace, or a folder or file in it, is missing or unusable (exit 1, one line)."""


class HeartbeatSettings(msgspec.Struct, frozen=True):
    agent_name: str
    evo_period_cycles: int
    snapshot_every: int


def resolve_home(arg: str | None) -> Path:
    return Path(arg or os.environ.get("EVO_HOME") or DEFAULT_HOME)


def write_atomic(path: Path, data: bytes | str, *, mode: int | None = None) -> None:
    """Write a file whole or not at all: a temp file beside it, fsync, rename over it."""
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(raw)
        f.flush()
        os.fsync(f.fileno())
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)


@dataclass
class Workspace:
    home: Path
    _config: tuple[tuple[int, int, int], EvoConfig] | None = None  # config.toml's stat key, validated

    @property
    def config_path(self) -> Path:
        return self.home / "config.toml"

    @property
    def ledger_path(self) -> Path:
        return self.home / "ledger.jsonl"

    @property
    def models(self) -> Path:
        return self.home / "models"

    @property
    def archive(self) -> Path:
        return self.models / "archive"

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def private(self) -> Path:
        return self.home / ".evo"

    def head_link(self, agent: str) -> Path:
        return self.models / f"{agent}-GHEAD"

    def parent_link(self, agent: str) -> Path:
        return self.models / f"{agent}-GHEAD-PARENT"

    def require(self) -> None:
        if not self.config_path.is_file():
            raise WorkspaceError(
                f"no evo workspace at {self.home} (no config.toml): run `evo init --home {self.home}`"
                " or set EVO_HOME"
            )

    # ------------------------------------------------------------- config

    def config(self) -> EvoConfig:
        """config.toml, validated again only when the file changed (inode, size, mtime): what a
        long-lived process (the runner, the router) reads before each step."""
        self.require()
        st = os.stat(self.config_path)
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if self._config is None or self._config[0] != key:
            self._config = (key, self.load_config())
        return self._config[1]

    def load_config(self) -> EvoConfig:
        """Validate config.toml (pydantic) now."""
        from evo_core.config import parse_config

        return parse_config(self._config_text(), source=str(self.config_path))

    def _config_text(self) -> str:
        self.require()
        try:
            return self.config_path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise WorkspaceError(f"{self.config_path}: not UTF-8 text") from None

    def heartbeat_settings(self) -> HeartbeatSettings:
        """The values a heartbeat needs, read from config.toml now (no pydantic unless one of
        them is not valid: then the full validation's error)."""
        from evo_core.config_file import heartbeat_values, parse_toml

        text = self._config_text()
        values = heartbeat_values(parse_toml(text, source=str(self.config_path)))
        if values is None:
            config = self.load_config()  # raises, naming the field
            values = config.agent_name, config.evo_period_cycles, config.ledger.snapshot_every
        name, period, every = values
        return HeartbeatSettings(agent_name=name, evo_period_cycles=period, snapshot_every=every)
