"""`evo init --demo --family F`: the demo world on another architecture; a wrong use is one line
(a usage error) and leaves nothing (the family's own window and promotion: `python -m bench families`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Evo


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--demo", "--family", "falcon"), "unknown --family 'falcon'; one of llama2, llama3, mistral, qwen2"),
        (("--family", "qwen2"), "--family chooses the demo model's architecture: give it with --demo"),
    ],
)
def test_a_wrong_family_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    home = tmp_path / "home"
    r = Evo(home, capsys)("init", *args)
    assert r.code == 2 and f"evo: error: {message}" in r.err and "building" not in r.err
    assert not home.exists() or not any(home.iterdir())
