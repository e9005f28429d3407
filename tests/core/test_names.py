"""Names by unique prefix (``evo_core.names``): what `evo explain`, `export`, `ask` and `rollback --to` accept."""

from __future__ import annotations

from evo_core.names import by_prefix


def test_a_name_is_found_by_itself_or_by_a_unique_prefix() -> None:
    names = ["Luna-G001-a-c10", "Luna-G001-b-c10", "Luna-G001-b-c10", "Luna-G002-a-c20", "Luna-G00"]
    assert by_prefix("Luna-G002", names) == ["Luna-G002-a-c20"]
    assert by_prefix("Luna-G001", names) == ["Luna-G001-a-c10", "Luna-G001-b-c10"]  # ambiguous, each once
    assert by_prefix("Luna-G00", names) == ["Luna-G00"]  # the name itself wins over the names it prefixes
    assert by_prefix("Sol", names) == []
