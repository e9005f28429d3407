"""`evo ask`: HEAD or any generation with a model.gguf, through llama.cpp."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from adapters.cli import main
from adapters.serving.router import generation_params
from tests.fixtures_models import GENESIS

Q = "What does the blurk eat?"


@pytest.fixture
def home(tmp_path: Path, demo_workspace: Path, demo_gguf: Path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(demo_workspace, home, symlinks=True)
    gguf = home / "models" / "archive" / GENESIS / "model.gguf"
    if not gguf.exists():
        shutil.copyfile(demo_gguf, gguf)
    return home


def _run(home: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main(["--home", str(home), "ask", *args])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _expected(gguf: Path, max_tokens: int = 64) -> str:
    from adapters.serving.llama import load_llama

    llm = load_llama(gguf)
    return str(llm(f"<|user|>{Q}<|end|><|assistant|>", **generation_params(max_tokens))["choices"][0]["text"])


def test_ask_head(home: Path, demo_gguf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(home, capsys, Q)
    assert code == 0 and out == _expected(demo_gguf) + "\n"
    code, out, _ = _run(home, capsys, Q, "--json", "--max-tokens", "4")
    data = json.loads(out)
    assert code == 0 and data["generation"] == GENESIS and data["latency_s"] > 0
    assert data["text"] == _expected(demo_gguf, 4) and 0 < data["tokens"] <= 4


def test_ask_answers_only_generations_the_ledger_recorded(home: Path, demo_gguf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A folder with a model.gguf that no frozen record names is not a generation (issue 13:
    serving checks bytes, not folders); the genesis by a unique prefix is."""
    other = home / "models" / "archive" / "Luna-G001-a-c10"
    other.mkdir()
    shutil.copyfile(demo_gguf, other / "model.gguf")
    code, out, err = _run(home, capsys, Q, "--generation", "Luna-G001")
    assert code == 1 and out == "" and "no generation the ledger recorded" in err and len(err.strip().splitlines()) == 1
    code, out, _ = _run(home, capsys, Q, "--generation", "Luna-G000", "--json")
    assert code == 0 and json.loads(out)["generation"] == GENESIS


def test_ask_a_generation_without_gguf_fails_in_one_line(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(home, capsys, Q, "--generation", "nope")
    assert code == 1 and "no generation" in err
    folder = home / "models" / "archive" / GENESIS
    folder.chmod(0o755)  # the genesis archive is read-only: someone removes its model anyway
    (folder / "model.gguf").unlink()
    code, out, err = _run(home, capsys, Q)
    assert code == 1 and out == "" and "model.gguf is missing" in err and len(err.strip().splitlines()) == 1


def test_ask_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["ask", "--help"])
    assert exc.value.code == 0 and "--generation" in capsys.readouterr().out


@pytest.mark.parametrize("words", [300, 20_000])
def test_a_prompt_longer_than_the_context_is_one_line_not_a_traceback(
    home: Path, capsys: pytest.CaptureFixture[str], words: int
) -> None:
    """Issue 13: llama.cpp raised deep inside generation; now one line, exit 1, nothing changed."""
    ledger = (home / "ledger.jsonl").read_bytes()
    prompt = " ".join(["blurk"] * words)
    code, out, err = _run(home, capsys, prompt)
    assert code == 1 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "shorten it" in err and "context is 256" in err, err
    code, _, err = _run(home, capsys, prompt, "--generation", GENESIS)
    assert code == 1 and "shorten it" in err
    assert (home / "ledger.jsonl").read_bytes() == ledger
    code, out, _ = _run(home, capsys, " ".join(["blurk"] * 20))  # a prompt that fits still answers
    assert code == 0


def test_the_agent_refuses_a_prompt_longer_than_the_context(home: Path) -> None:
    from adapters.agent import Agent, PromptTooLong

    ledger = (home / "ledger.jsonl").read_bytes()
    with Agent(home) as agent:
        with pytest.raises(PromptTooLong, match="shorten it"):
            agent.respond("blurk " * 1000)
        assert agent.respond(Q).generation == GENESIS
    assert (home / "ledger.jsonl").read_bytes() == ledger
