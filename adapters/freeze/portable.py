"""No machine's paths in an archive: the files a freeze copies from a work folder are rewritten
so that every path in them is relative to the workspace, or symbolic.

Training writes absolute paths into its records (the teachers' folders in ``evo_manifest.json``,
the teacher cache in ``train_args.json``, PEFT's ``base_model_name_or_path`` in the adapter's
``adapter_config.json`` and README.md): true on the machine that trained, meaningless (and
telling: user names, temp folders) anywhere else. An archive is meant to be moved, published and
compared, so ``make_portable`` rewrites them in the copy: a path inside the workspace becomes
relative to its home (``models/archive/Luna-G000-genesis/weights``), any other absolute path
keeps only its last part; the adapter's config names its base model by the parent generation's
name, and its README (a Hub card) by the Hub id the lineage descends from, or not at all (a
generation's name is no Hub id). The work folder keeps its own files as they were.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

# the copied records that may hold paths (an adapter folder's JSON files are scanned too)
RECORDS = ("train_args.json", "evo_manifest.json", "training.json", "export.json")
ADAPTER_CONFIG = "adapter/adapter_config.json"
ADAPTER_README = "adapter/README.md"
# an absolute POSIX path in free text: not the tail of a URL ("https://...": a slash follows a
# slash) or of a relative path
_ABSOLUTE = re.compile(r"(?<![\w./~-])/(?:[\w.@+~-]+/)*[\w.@+~-]+/?")


def _homes(home: Path) -> list[str]:
    spelled = {os.path.abspath(home), os.path.realpath(home)}
    return sorted((h.rstrip("/") for h in spelled), key=len, reverse=True)


def portable_path(text: str, homes: list[str]) -> str:
    """``text`` relative to the workspace home when inside it; else its last part."""
    for h in homes:
        if text == h:
            return "."
        if text.startswith(h + "/"):
            return text[len(h) + 1:]
    return PurePosixPath(text).name or "."


def _is_path(text: str) -> bool:
    return text.startswith("/") and "\n" not in text and " " not in text


def portable(value: Any, homes: list[str]) -> Any:
    """``value`` (decoded JSON) with every absolute path string made portable."""
    if isinstance(value, str):
        return portable_path(value, homes) if _is_path(value) else value
    if isinstance(value, list):
        return [portable(v, homes) for v in value]
    if isinstance(value, dict):
        return {k: portable(v, homes) for k, v in value.items()}
    return value


def portable_text(text: str, homes: list[str]) -> str:
    return _ABSOLUTE.sub(lambda m: portable_path(m.group(0).rstrip("/"), homes), text)


def _rewrite_json(path: Path, homes: list[str], parent: str | None = None) -> None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    new = portable(value, homes)
    if parent is not None and isinstance(new, dict) and "base_model_name_or_path" in new:
        new["base_model_name_or_path"] = parent
    if new != value:
        path.write_text(json.dumps(new, indent=2) + "\n", encoding="utf-8")


def make_portable(folder: Path, home: Path, parent: str, hub_model: str | None = None) -> None:
    """Rewrite the copied records under ``folder`` (an archive being filled) as the module says."""
    homes = _homes(home)
    for name in RECORDS:
        if (folder / name).is_file():
            _rewrite_json(folder / name, homes)
    adapter = folder / "adapter"
    if adapter.is_dir():
        for path in sorted(adapter.glob("*.json")):
            _rewrite_json(path, homes, parent if path.name == Path(ADAPTER_CONFIG).name else None)
    readme = folder / ADAPTER_README
    if readme.is_file():
        text = readme.read_text(encoding="utf-8")
        new = _adapter_card(text, homes, hub_model)
        if new != text:
            readme.write_text(new, encoding="utf-8")


def _adapter_card(text: str, homes: list[str], hub_model: str | None) -> str:
    """PEFT's README.md (a Hub card): its ``base_model`` and ``base_model:adapter:<path>`` tag
    name the Hub model the lineage descends from, or go; its text's paths made portable."""
    from huggingface_hub import ModelCard

    card = ModelCard(text, ignore_metadata_errors=True)
    data: Any = card.data  # ModelCardData
    data.base_model = hub_model
    tags = [t for t in (data.tags or []) if not str(t).startswith("base_model:")]
    data.tags = tags + ([f"base_model:adapter:{hub_model}"] if hub_model else []) or None
    front = data.to_yaml()
    body = portable_text(card.text, homes)
    return f"---\n{front}\n---\n{body}" if front else body
