"""MODEL_CARD.md is a Hugging Face model card (read back with ``huggingface_hub.ModelCard``, no
Hub reached), it inherits the Hub model and license of the lineage, and no archived file holds a
machine's path: checked on fake work folders and on a real trained, evaluated and frozen window."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from adapters.cli import main
from adapters.data import demo_world
from adapters.data.conversations import encode
from adapters.freeze import freeze
from adapters.freeze.card_lineage import hub_id
from adapters.freeze.documents import CardLineage, genesis_card
from adapters.runtime.workspace import Workspace
from evo_core.config import EvoConfig, TrainConfig, render_config
from evo_core.state import State
from tests.core.helpers import BASELINE
from tests.freeze.conftest import by_branch, make_work

HUB = "HuggingFaceTB/SmolLM2-135M-Instruct"


def _card(ws: Workspace, state: State, branch: str, work: Path) -> ModelCard:
    c = by_branch(state, branch)
    fa = freeze(ws, c, window=state.window, head_metrics=BASELINE, work_dir=work)
    return ModelCard.load(fa.path / "MODEL_CARD.md")


def test_the_card_parses_as_a_hub_card_with_the_probe_results(ws: Workspace, window_state: State, tmp_path: Path) -> None:
    c = by_branch(window_state, "a")
    card = _card(ws, window_state, "a", make_work(tmp_path / "work"))
    data = card.data
    assert data.model_name == c.id and data.library_name == "peft" and data.pipeline_tag == "text-generation"
    assert {"evo", "lora", "distillation", "gguf"} <= set(data.tags)
    assert data.base_model is None and data.license is None  # a demo lineage: no Hub model, no license
    assert c.metrics is not None and c.score is not None
    results = {r.metric_type: r for r in data.eval_results}
    assert set(results) == {"recall", "generalize", "tone_drift", "law_violations", "score"}
    assert results["recall"].metric_value == c.metrics.recall and results["score"].metric_value == c.score
    assert all(r.task_type == "text-generation" and r.dataset_type == "evo-probes" for r in results.values())
    meta = data.to_dict()
    assert meta["parents"] == [c.parent] + ([c.stabilizer] if c.stabilizer else []) and meta["status"] == "PASS"
    assert f"# {c.id}" in card.text and "- **Status:** `PASS`" in card.text and "- **Gates:**" in card.text


def test_a_failed_candidate_has_no_model_index_and_no_adapter_library(ws: Workspace, window_state: State, tmp_path: Path) -> None:
    card = _card(ws, window_state, "c", make_work(tmp_path / "work", weights=False))  # breached: no weights
    assert card.data.eval_results is None and card.data.library_name == "transformers"
    assert "gguf" not in card.data.tags and "- **Missing:**" in card.text


def test_the_card_inherits_the_hub_model_and_license_of_the_lineage(ws: Workspace, window_state: State, tmp_path: Path) -> None:
    c = by_branch(window_state, "a")
    parent = ws.archive / c.parent
    parent.mkdir()
    lineage = CardLineage(base_model=HUB, license="apache-2.0")
    (parent / "MODEL_CARD.md").write_text(genesis_card(c.parent, lineage, "Copied from the Hub."))
    assert ModelCard.load(parent / "MODEL_CARD.md").data.base_model == HUB
    data = _card(ws, window_state, "a", make_work(tmp_path / "work")).data
    assert data.base_model == HUB and data.license == "apache-2.0"


def test_an_older_genesis_without_a_card_gives_its_readmes_license(ws: Workspace, window_state: State, tmp_path: Path) -> None:
    c = by_branch(window_state, "a")
    weights = ws.archive / c.parent / "weights"
    weights.mkdir(parents=True)
    (weights / "README.md").write_text("---\nlicense: mit\nlanguage: en\n---\n# a model\n")
    data = _card(ws, window_state, "a", make_work(tmp_path / "work")).data
    assert data.license == "mit" and data.base_model is None


def test_a_hub_id_only_from_a_hub_cache_path() -> None:
    assert hub_id(f"/home/me/.cache/huggingface/hub/models--{HUB.replace('/', '--')}/snapshots/abc123") == HUB
    assert hub_id("/home/me/models/SmolLM2-135M-Instruct") is None
    assert hub_id("/x/models--bad..name--m/snapshots/1") is None


def _paths_in(folder: Path, home: Path) -> list[str]:
    """Every archived file that names the workspace's absolute path or /tmp."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for needle in {str(home), str(home.resolve()), "/tmp"}:
            if needle.encode() in data:
                found.append(f"{path.relative_to(folder)}: {needle}")
    return found


def test_paths_in_a_work_folder_are_archived_relative_or_symbolic(ws: Workspace, window_state: State, tmp_path: Path) -> None:
    c = by_branch(window_state, "a")
    work = make_work(tmp_path / "work")
    parent_dir = ws.home / "models" / "archive" / c.parent / "weights"
    (work / "train_args.json").write_text(json.dumps({"teacher_cache": {"path": str(ws.home / "work" / "cache"), "top_k": 8}}))
    (work / "evo_manifest.json").write_text(json.dumps({"parents": {"primary_teacher": {"path": str(parent_dir)}}}))
    (work / "adapter" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(parent_dir), "r": 8}))
    (work / "adapter" / "README.md").write_text(  # as PEFT writes it
        f"---\nbase_model: {parent_dir}\nlibrary_name: peft\ntags:\n- base_model:adapter:{parent_dir}\n- lora\n"
        f"---\n\nsee {tmp_path}/x and https://github.com/huggingface/peft\n"
    )
    fa = freeze(ws, c, window=window_state.window, head_metrics=BASELINE, work_dir=work)
    assert _paths_in(fa.path, ws.home) == []
    assert json.loads((fa.path / "train_args.json").read_text())["teacher_cache"]["path"] == "work/cache"
    manifest = json.loads((fa.path / "evo_manifest.json").read_text())
    assert manifest["parents"]["primary_teacher"]["path"] == f"models/archive/{c.parent}/weights"
    assert json.loads((fa.path / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"] == c.parent
    readme = ModelCard.load(fa.path / "adapter" / "README.md")
    assert readme.data.base_model is None and readme.data.tags == ["lora"] and readme.data.library_name == "peft"
    assert "https://github.com/huggingface/peft" in readme.text and "see x" in readme.text
    assert json.loads((work / "train_args.json").read_text())["teacher_cache"]["path"].startswith("/")  # work kept


# ---------------------------------------------------------------- a real window

PERIOD = 2500
CONFIG = EvoConfig(  # one student, a few steps: the files a real training and freeze write
    evo_period_cycles=PERIOD, max_concurrent_experiments=1, data_strategies=("high_karma_weighted",),
    train=TrainConfig(steps=6, warmup_steps=2, new_per_branch=30, replay_size=10),
)


@pytest.fixture(scope="module")
def frozen_window(demo_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("real-card") / "home"
    shutil.copytree(demo_workspace, home, symlinks=True)
    (home / "config.toml").write_text(render_config(CONFIG))
    feed = home.parent / "feed.jsonl"
    convs = demo_world.conversations(1, PERIOD, seed=0, per_1000_cycles=200)
    feed.write_bytes(b"".join(encode(c) + b"\n" for c in convs))
    for args in (("ingest", str(feed)), ("heartbeat", "--count", str(PERIOD)), ("train",), ("evaluate",)):
        assert main(["--home", str(home), *args]) == 0, args
    return home


def test_a_real_frozen_archive_holds_no_machine_path_and_a_hub_card(frozen_window: Path) -> None:
    archive = frozen_window / "models" / "archive"
    frozen = [p for p in archive.iterdir() if p.is_dir() and not p.name.startswith(".") and "-G001-" in p.name]
    assert frozen, sorted(p.name for p in archive.iterdir())
    for folder in frozen:
        assert _paths_in(folder, frozen_window) == []
        card = ModelCard.load(folder / "MODEL_CARD.md")
        assert card.data.model_name == folder.name and card.data.pipeline_tag == "text-generation"
        if (folder / "adapter").is_dir():
            config = json.loads((folder / "adapter" / "adapter_config.json").read_text())
            assert config["base_model_name_or_path"] == "Luna-G000-genesis"


def test_a_genesis_from_a_hub_snapshot_has_a_card_with_its_hub_id_and_license(
    demo_genesis: Path, tmp_path: Path
) -> None:
    base = tmp_path / "hub" / f"models--{HUB.replace('/', '--')}" / "snapshots" / "0123abc"
    shutil.copytree(demo_genesis / "weights", base)
    (base / "README.md").write_text("---\nlicense: apache-2.0\nlibrary_name: transformers\n---\n# SmolLM2\n")
    home = tmp_path / "home"
    assert main(["--home", str(home), "init", "--base-model", str(base)]) == 0
    genesis = home / "models" / "archive" / "Luna-G000-genesis"
    data = ModelCard.load(genesis / "MODEL_CARD.md").data
    assert data.base_model == HUB and data.license == "apache-2.0" and data.model_name == "Luna-G000-genesis"
    assert _paths_in(genesis, home) == [] and str(tmp_path) not in (genesis / "GENESIS.md").read_text()
    assert f"`{HUB}`" in (genesis / "GENESIS.md").read_text()
