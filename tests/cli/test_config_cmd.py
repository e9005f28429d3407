"""`evo config show|validate|set`: set keeps config.toml's comments and layout, validates the
whole file before writing, and an invalid value is one line with nothing written."""

from __future__ import annotations

import json
import tomllib

from evo_core.config import parse_config
from tests.cli.conftest import Evo


def test_set_changes_only_the_values_and_keeps_every_comment(evo: Evo) -> None:
    path = evo.home / "config.toml"
    path.write_text(path.read_text().replace("[shadow]", "# my own note, kept\n[shadow]"))
    before = path.read_text().splitlines()
    r = evo("config", "set", "shadow.cycles", "200", "agent_name", "Nova", "approval.autonomous", "true")
    assert r.code == 0, r.err
    assert r.out == 'shadow.cycles = 200\nagent_name = "Nova"\napproval.autonomous = true\n'
    after = path.read_text().splitlines()
    changed = [(x, y) for x, y in zip(before, after) if x != y]
    assert len(before) == len(after) and len(changed) == 3, changed
    assert {y for _, y in changed} == {"cycles = 200", 'agent_name = "Nova"', "autonomous = true"}
    assert "# my own note, kept" in after
    config = parse_config(path.read_text())
    assert (config.shadow.cycles, config.agent_name, config.approval.autonomous) == (200, "Nova", True)


def test_an_invalid_value_is_one_line_and_nothing_is_written(evo: Evo) -> None:
    path = evo.home / "config.toml"
    before = path.read_bytes()
    for args, says in (
        (("shadow.cycles", "-3"), "shadow.cycles: Input should be greater than 0"),
        (("shadow.cycles", "many"), "shadow.cycles: Input should be a valid integer"),
        (("shadow.cycels", "3"), "shadow.cycels: unknown setting"),
        (("evo_period_cycles", "20", "shadow.cycles", "0"), "shadow.cycles"),  # all or nothing
    ):
        r = evo("config", "set", *args)
        assert r.code == 1 and r.out == "" and r.err.count("\n") == 1 and says in r.err, (args, r.err)
        assert path.read_bytes() == before
    for args in (("shadow.cycles",), ("laws.name", "x"), ("a.b.c", "1")):
        r = evo("config", "set", *args)
        assert r.code == 2 and path.read_bytes() == before, (args, r.err)
    assert [p.name for p in evo.home.iterdir() if p.name.startswith(".config.toml")] == []  # no temp file left


def test_a_missing_section_is_added_and_validate_and_show_read_the_result(evo: Evo) -> None:
    path = evo.home / "config.toml"
    text = path.read_text()
    start = text.index("[burn_in]")
    end = text.index("\n[", start + 1)
    path.write_text(text[:start] + text[end + 1:])  # no [burn_in] at all: its defaults apply
    assert evo("config", "set", "burn_in.cycles", "77").code == 0
    assert tomllib.loads(path.read_text())["burn_in"] == {"cycles": 77}
    assert evo("config", "validate").out == f"{path}: valid\n"
    shown = json.loads(evo("config", "show", "--json").out)
    assert shown["burn_in"]["cycles"] == 77 and shown["evo_period_cycles"] > 0
    assert parse_config(evo("config", "show").out).burn_in.cycles == 77  # show prints valid TOML


def test_validate_names_the_bad_setting(evo: Evo) -> None:
    path = evo.home / "config.toml"
    path.write_text("bogus = 1\n" + path.read_text())
    r = evo("config", "validate")
    assert r.code == 1 and r.err.count("\n") == 1 and "bogus: unknown setting" in r.err
