"""What a generation's model card inherits: the Hugging Face Hub model the workspace's genesis
came from, and its license.

Every archive holds a MODEL_CARD.md (a genesis made from a model folder too, by ``evo init``), so
a candidate's card says what its parent's says: ``inherited(parent_archive)``. A genesis's card
is made from the folder it was copied from (``from_model_folder``): the license its README.md's
front matter declares, and a Hub id only when the folder's path says it (a Hub cache snapshot,
``.../models--ORG--NAME/snapshots/<revision>``): a local folder's name is no Hub id, and a
card's ``base_model`` must be one. Nothing is fetched; a card that cannot be read adds nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from adapters.freeze.documents import CardLineage

CARD = "MODEL_CARD.md"
_HUB_PART = re.compile(r"[A-Za-z0-9](?:[\w.-]{0,94}[\w])?")  # the Hub's rule for an owner or a name


def hub_id(source: str | Path) -> str | None:
    """``ORG/NAME`` when ``source`` is a Hub cache snapshot's path, else None."""
    for part in reversed(Path(source).parts):
        pieces = part.split("--")
        if len(pieces) == 3 and pieces[0] == "models":
            if all(_HUB_PART.fullmatch(p) and ".." not in p for p in pieces[1:]):
                return f"{pieces[1]}/{pieces[2]}"
            return None
    return None


def _front_matter(path: Path) -> dict[str, Any]:
    """The YAML front matter of a card or README.md ({} when there is none or it is not YAML)."""
    import yaml  # type: ignore[import-untyped]
    from huggingface_hub import ModelCard

    try:
        card = ModelCard.load(path, ignore_metadata_errors=True)
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    data: dict[str, Any] = card.data.to_dict()
    return data


def _lineage(meta: dict[str, Any], base_model: str | None) -> CardLineage:
    def text(key: str) -> str | None:
        value = meta.get(key)
        return value if isinstance(value, str) and value else None

    return CardLineage(
        base_model=base_model, license=text("license"), license_name=text("license_name"),
        license_link=text("license_link"),
    )


def from_model_folder(folder: Path, source: str | Path) -> CardLineage:
    """A genesis copied from ``folder`` (given as ``source``): its README.md's license, and the
    Hub id its path names."""
    readme = Path(folder) / "README.md"
    meta = _front_matter(readme) if readme.is_file() else {}
    return _lineage(meta, hub_id(source))


def inherited(parent_archive: Path) -> CardLineage:
    """What the parent's MODEL_CARD.md says; a genesis without one (made before genesis cards):
    the license its copied README.md declares."""
    card = Path(parent_archive) / CARD
    if not card.is_file():
        readme = Path(parent_archive) / "weights" / "README.md"
        return _lineage(_front_matter(readme), None) if readme.is_file() else CardLineage()
    meta = _front_matter(card)
    base = meta.get("base_model")
    return _lineage(meta, base if isinstance(base, str) and base else None)
