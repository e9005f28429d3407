"""``evo config show|validate|set``: config.toml read, checked and edited.

``set`` edits the file with tomlkit, so its comments, order and layout stay as they are; the
edited text is validated whole by the config's own pydantic model before anything is written,
then written atomically (a temp file, fsync, rename): an invalid value is one line and leaves
the file untouched. A KEY is a top-level setting (``evo_period_cycles``) or ``SECTION.NAME``
(``shadow.cycles``); a VALUE is read as a TOML value (``200``, ``true``, ``[1, 2]``,
``"text"``), and taken as a plain string when it is not one (``agent_name Luna``). The
``[[laws]]`` tables are edited by hand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

from adapters.cli.common import out, out_json
from adapters.runtime.workspace import Workspace, resolve_home, write_atomic
from evo_core.errors import UsageError


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    sp = add(
        "config", cmd_config, "config.toml: show the settings in force, validate it, or set values (comments kept)",
        json=False,
    )
    sub = sp.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, about in (
        ("show", "every setting in force (defaults included) as commented TOML, or --json"),
        ("validate", "check config.toml: one line naming the bad setting (exit 1), else a summary"),
    ):
        sub.add_parser(name, help=about, description=about).add_argument(
            "--json", action="store_true", help="machine-readable output on stdout"
        )
    put = sub.add_parser(
        "set", help="set KEY VALUE [KEY VALUE ...] in config.toml (validated first; comments and layout kept)",
        description="set values in config.toml: KEY is a setting or SECTION.NAME (e.g. shadow.cycles), VALUE a "
        "TOML value (a bare word is a string); all are validated together before the file is written atomically",
    )
    put.add_argument("pairs", nargs="+", metavar="KEY VALUE", help="the settings and their new values, in pairs")


def cmd_config(args: argparse.Namespace) -> int:
    ws = Workspace(resolve_home(args.home))
    ws.require()
    if args.action == "set":
        pairs = args.pairs
        if len(pairs) % 2:
            raise UsageError(f"set takes KEY VALUE pairs; {pairs[-1]!r} has no value")
        changes = dict(zip(pairs[::2], (parse_value(v) for v in pairs[1::2])))
        set_values(ws.config_path, changes)
        for key, value in changes.items():
            out(f"{key} = {_shown(value)}")
        return 0
    config = ws.load_config()
    if args.action == "validate":
        if args.json:
            out_json({"valid": True, "path": str(ws.config_path)})
        else:
            out(f"{ws.config_path}: valid")
        return 0
    if args.json:
        out_json(config.model_dump(mode="json"))
    else:
        from evo_core.config import render_config

        sys.stdout.write(render_config(config))
    return 0


def parse_value(text: str) -> Any:
    """A command line's VALUE: a TOML value, else the text itself as a string."""
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _shown(value: Any) -> str:
    import tomlkit

    return str(tomlkit.item(value).as_string())


def set_values(path: Path, changes: Mapping[str, Any]) -> None:
    """Set each ``KEY: value`` in the TOML file ``path``, keeping its comments and layout;
    ``ConfigError`` (nothing written) when the result does not validate."""
    import tomlkit
    from tomlkit.items import AoT, Table

    from evo_core.config import parse_config

    from evo_core.config_file import ConfigError

    try:
        doc = tomlkit.parse(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, tomlkit.exceptions.ParseError) as exc:
        raise ConfigError(f"{path}: not TOML text ({exc}): fix it by hand, then set again") from None
    for key, value in changes.items():
        parts = key.split(".")
        if len(parts) > 2 or not all(parts):
            raise UsageError(f"no setting {key!r}: a KEY is NAME or SECTION.NAME (e.g. shadow.cycles)")
        if parts[0] == "laws":
            raise UsageError(f"laws are a list of tables: edit the [[laws]] in {path} by hand")
        table: Any = doc
        if len(parts) == 2:
            section = doc.get(parts[0])
            if isinstance(section, (AoT, list)):
                raise UsageError(f"{parts[0]} is a list of tables: edit the [[{parts[0]}]] in {path} by hand")
            if section is None:
                section = tomlkit.table()
                doc[parts[0]] = section
            elif not isinstance(section, Table):
                raise UsageError(f"{parts[0]} is a setting, not a section: set it as {parts[0]} VALUE")
            table = section
        table[parts[-1]] = value
    text = tomlkit.dumps(doc)
    parse_config(text, source=str(path))  # ConfigError names the setting; nothing written
    write_atomic(path, text)
