"""Generations as Hugging Face folders, loaded offline.

A generation's model lives in ``<home>/models/archive/<generation>/weights/``: ``config.json``,
``model.safetensors`` (or shards), ``tokenizer.json`` and the tokenizer's config, as
``save_pretrained`` writes them. Everything loads with ``local_files_only=True`` and
``HF_HUB_OFFLINE=1``: evo never downloads anything.

``validate_model_dir`` reads only JSON and file names (no torch), so ``evo init --base-model``
can refuse a bad folder in one line before anything is written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapters.hashing import hash_listing

from adapters.runtime.workspace import WorkspaceError

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

if TYPE_CHECKING:
    import torch

WEIGHT_SUFFIXES = (".safetensors", ".bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
# Causal-LM model types accepted when config.json names no architecture.
_CAUSAL_HEADS = ("ForCausalLM", "LMHeadModel")


class ModelError(WorkspaceError):
    """A model folder is unusable (exit 1, one line)."""


def _weight_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES) and not p.name.startswith("training_args")
    )


def validate_model_dir(path: str | os.PathLike[str]) -> Path:
    """The folder, resolved, if it holds a loadable causal LM; else ``ModelError`` (one line)."""
    folder = Path(path)
    if not folder.is_dir():
        raise ModelError(f"{folder}: not a folder")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelError(f"{folder}: no config.json (not a Hugging Face model folder)")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{config_path}: unreadable ({exc})") from None
    if not isinstance(config, dict):
        raise ModelError(f"{config_path}: not a JSON object")
    archs = config.get("architectures") or []
    model_type = config.get("model_type", "")
    if archs:
        if not any(isinstance(a, str) and a.endswith(_CAUSAL_HEADS) for a in archs):
            raise ModelError(f"{folder}: not a causal language model (architectures: {', '.join(map(str, archs))})")
    elif not _is_causal_type(model_type):
        raise ModelError(f"{folder}: not a causal language model (model_type {model_type!r}, no architectures)")
    if not _weight_files(folder):
        raise ModelError(f"{folder}: no weights (no *.safetensors or *.bin file)")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelError(f"{folder}: no tokenizer (none of {', '.join(TOKENIZER_FILES)})")
    return folder.resolve()


def _is_causal_type(model_type: object) -> bool:
    if not isinstance(model_type, str) or not model_type:
        return False
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES


def weights_hash(folder: str | os.PathLike[str]) -> str:
    """blake3 over ``<name>\\0<file blake3>\\n`` of every weight file, sorted by name."""
    files = _weight_files(Path(folder))
    if not files:
        raise ModelError(f"{folder}: no weights (no *.safetensors or *.bin file)")
    return hash_listing((path.name, path) for path in files)


def _quiet() -> None:
    """No progress bars from transformers (they would clutter the CLI's stderr)."""
    from transformers.utils import logging

    logging.disable_progress_bar()


def save_generation(model: Any, tokenizer: Any, folder: str | os.PathLike[str]) -> Path:
    """Write a HF folder (safetensors weights, config, tokenizer) and return it."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    _quiet()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def model_dir(folder: str | os.PathLike[str]) -> Path:
    """The HF folder of a generation: ``folder/weights`` when there is one, else ``folder``."""
    path = Path(folder)
    return path / "weights" if (path / "weights" / "config.json").is_file() else path


def load_tokenizer(folder: str | os.PathLike[str]) -> Any:
    """The tokenizer of a HF folder (or a generation's folder holding ``weights/``), offline."""
    return _tokenizer(validate_model_dir(model_dir(folder)))


def _tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    _quiet()
    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def load_generation(
    folder: str | os.PathLike[str], *, device: str = "cpu", dtype: torch.dtype | None = None
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a HF folder (or a generation's folder holding ``weights/``),
    offline, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    path = validate_model_dir(model_dir(folder))
    tokenizer = _tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(
        path, local_files_only=True, dtype=dtype if dtype is not None else torch.float32
    )
    model.to(device)  # type: ignore[arg-type]  # transformers types .to as a wrapped decorator
    model.eval()
    return model, tokenizer
