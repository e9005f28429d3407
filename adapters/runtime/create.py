"""``evo init``: create a workspace (config.toml, the folders, the genesis generation as HEAD),
everything validated before anything is written."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from adapters.hashing import hash_tree
from adapters.runtime import activity
from adapters.runtime.app import App
from adapters.runtime.workspace import Workspace, WorkspaceError, write_atomic
from evo_core import commands as cmd


def init_workspace(
    home: Path,
    *,
    period: int | None,
    max_concurrent: int | None,
    demo: bool = False,
    base_model: Path | None = None,
    operator_keys: Sequence[tuple[bytes, str]] = (),
    family: str | None = None,
) -> App:
    """Create a workspace: config.toml, the folders, and the genesis generation as HEAD.

    The genesis model is the embedded demo (``demo``: a tiny Llama pre-trained on the demo
    world's genesis corpus, whose conversations are ingested at cycle 0; ``family``: the same demo
    on another architecture of ``adapters.models.tiny.FAMILIES``), a local Hugging Face
    causal-LM folder (``base_model``: validated, then its top-level files copied), or none.
    Everything is validated before anything is written; an existing workspace is refused.
    A model genesis is also exported to ``model.gguf`` with its parity result (``export.json``),
    so HEAD is servable by llama.cpp from the start. ``operator_keys`` (raw ed25519 public key,
    comment) are pinned in the ledger's first records, before the genesis, so the ledger id
    hashes them; the checkpoint after the genesis goes to the operator's witness.

    Each long step (copy, hash, export and parity, sealing) prints its progress on stderr and
    keeps the workspace's activity file current (``adapters.runtime.activity``).
    """
    from evo_core.config import EvoConfig, render_config, validate_config

    ws = Workspace(home)
    if ws.config_path.exists() or ws.ledger_path.exists():
        raise WorkspaceError(f"{home} is already an evo workspace (config.toml or ledger.jsonl exists)")
    if demo and base_model is not None:
        raise WorkspaceError("--demo and --base-model exclude each other")
    if family is not None:
        from adapters.models.tiny import FAMILIES

        if not demo:
            raise WorkspaceError("--family chooses the demo model's architecture: give it with --demo")
        if family not in FAMILIES:
            raise WorkspaceError(f"unknown --family {family!r}; one of {', '.join(FAMILIES)}")
    base: Path | None = None
    if base_model is not None:
        from adapters.models.hf import validate_model_dir

        base = validate_model_dir(base_model)
        from adapters.serving.gguf_export import check_exportable

        check_exportable(base)  # HEAD must be servable as GGUF: refuse early, nothing written
    overrides: dict[str, object] = {}
    if demo:
        from adapters.data.demo_world import law_configs

        overrides["laws"] = [law.model_dump() for law in law_configs()]  # the demo world's laws, in config.toml
    if period is not None:
        overrides["evo_period_cycles"] = period
    if max_concurrent is not None:
        overrides["max_concurrent_experiments"] = max_concurrent
    config = validate_config({**EvoConfig().model_dump(), **overrides}, source="evo init")

    from evo_core.window import genesis_name

    genesis = genesis_name(config.agent_name)
    for folder in (ws.home, ws.models, ws.archive, ws.data):
        folder.mkdir(parents=True, exist_ok=True)
    folder = ws.archive / genesis
    echo = activity.StderrProgress()
    source, model_hash, trained_on = _build_genesis(folder, genesis, demo=demo, base=base, echo=echo, family=family)
    from adapters.freeze.archive import seal

    with activity.step(ws.home, "seal", f"sealing the archive of {genesis}", subject=genesis, echo=echo):
        seal(folder)  # read-only like a frozen candidate's archive, then hashed
        archive_hash = hash_tree(folder)
    write_atomic(ws.config_path, render_config(config))
    app = App(home, agent=config.agent_name, snapshot_every=config.ledger.snapshot_every)
    app.ws.load_config()  # validated once more, as written
    if trained_on:
        from adapters.data.conversations import add

        add(app.ws, trained_on)
    from adapters.operator import witness
    from adapters.operator.crypto import key_id
    from adapters.runtime.app import operator_name

    for public, comment in dict(operator_keys).items():
        app.execute(cmd.TrustKey(key_id=key_id(public), public=public.hex(), operator=operator_name(), comment=comment))
    outcome = app.execute(
        cmd.RegisterGenesis(
            generation=genesis,
            source=source,
            model_hash=model_hash,
            archive=f"archive/{genesis}",
            archive_hash=archive_hash,
        )
    )
    if operator_keys:
        cp = outcome.checkpoint
        witness.record(home, outcome.state.ledger_id, cp.seq, cp.hash, "init", keys=tuple(sorted(outcome.state.keys)))
    return app


def _build_genesis(
    folder: Path, genesis: str, *, demo: bool, base: Path | None, echo: activity.StderrProgress | None = None,
    family: str | None = None,
) -> tuple[str, str, list[Any]]:
    """Fill the genesis archive folder: ``(source, model_hash, conversations trained on)``.

    The model is built in a temporary folder beside it and renamed into place, so a failed
    build leaves no half-made generation. ``echo``: the steps' progress on stderr.
    """
    import shutil

    if not demo and base is None:
        folder.mkdir(exist_ok=True)
        write_atomic(
            folder / "GENESIS.md",
            f"# {genesis}\n\nThe genesis generation (G000) of this workspace, without model weights\n"
            "(`evo init --demo` or `evo init --base-model DIR` registers a model).\n",
        )
        return "none", "", []
    from adapters.freeze.card_lineage import from_model_folder
    from adapters.freeze.documents import CardLineage, genesis_card
    from adapters.models.hf import weights_hash

    lineage = CardLineage()  # what every candidate's card inherits (adapters.freeze.card_lineage)
    home = folder.parent.parent.parent  # <home>/models/archive/<genesis>
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        trained_on: list[Any] = []
        if demo:
            from adapters.models.demo import build_demo_genesis

            # `evo init --demo` says so on stderr itself: the activity file only
            with activity.step(home, "build", f"building the demo genesis model {genesis}", subject=genesis):
                built = build_demo_genesis(tmp, family=family)
            # "demo" whatever the family: the demo world's probes and laws apply (its config.json names the architecture)
            source, trained_on = "demo", built.conversations
            about = (
                f"The embedded demo model: a {built.parameters:,}-parameter {family or 'Llama'} model pre-trained on the demo\n"
                "world's genesis corpus (`adapters/data/demo_world.py`), ids in `data_ids.json`.\n"
            )
        else:
            assert base is not None
            (tmp / "weights").mkdir()
            # a HF folder is flat: its top-level files
            files = [p for p in sorted(base.iterdir()) if p.is_file() and not p.name.startswith(".")]
            with activity.step(home, "copy", f"copying {base} into {genesis}", subject=genesis, echo=echo) as copied:
                copied("copy", 0, len(files))
                for i, path in enumerate(files, 1):
                    shutil.copy2(path, tmp / "weights" / path.name)
                    copied("copy", i, len(files))
            write_atomic(tmp / "data_ids.json", "[]\n")
            source = str(base)  # the ledger keeps the folder's path; the archive only its name
            lineage = from_model_folder(base, base)
            hub = f" (the Hugging Face Hub's `{lineage.base_model}`)" if lineage.base_model else ""
            about = f"Copied from the local model folder `{base.name}`{hub}.\n"
        with activity.step(home, "hash", f"hashing the weights of {genesis}", subject=genesis, echo=echo):
            model_hash = weights_hash(tmp / "weights")
        what = f"exporting GGUF for {genesis} and checking its parity"
        with activity.step(home, "export", what, subject=genesis, echo=echo) as exporting:
            served = _export_genesis(tmp, genesis, progress=exporting)
        write_atomic(
            tmp / "GENESIS.md",
            f"# {genesis}\n\nThe genesis generation (G000) of this workspace. {about}\n"
            f"weights/ (Hugging Face folder), weights hash (blake3): {model_hash}\n"
            f"{served}",
        )
        write_atomic(tmp / "MODEL_CARD.md", genesis_card(genesis, lineage, about.strip()))
        if folder.exists():  # left by an init that died before writing config.toml
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return source, model_hash, trained_on


def _export_genesis(folder: Path, genesis: str, *, progress: activity.Progress = activity.silent) -> str:
    """``folder/model.gguf`` (config ``[model] gguf_type``) and ``export.json``, so HEAD is servable from the start; a
    genesis whose GGUF fails the parity check refuses the init (one line, nothing written).
    ``progress`` gets the export's and the parity check's reports (``export``, ``parity``)."""
    from adapters.serving.gguf_export import ExportError, export_generation
    from adapters.training.precision import parameter_count, resolve_gguf_type
    from evo_core.config import EvoConfig

    # the config init writes has the default [model] gguf_type: f32 for a small model, else f16
    dtype = resolve_gguf_type(EvoConfig().model.gguf_type, parameter_count(folder / "weights"))
    record = export_generation(folder, dtype=dtype, name=genesis, progress=progress)
    if not record.parity.passed:
        raise ExportError(f"the genesis model's GGUF export fails its parity check: {record.parity.summary()}")
    if record.quantized is not None and not record.quantized.passed:
        raise ExportError(f"the genesis model's quantized GGUF is out of tolerance: {record.quantized.summary()}")
    return (
        f"model.gguf (served by llama.cpp; {record.dtype}), blake3: {record.blake3}\n"
        f"{record.parity.summary()} (export.json)\n"
    )
