"""``evo probes draft`` and ``evo probes validate``: a workspace's ``data/probes.json``. Parse, call,
print: the heuristics are ``adapters.evaluation.probe_draft``'s, the rules
``adapters.evaluation.probe_file``'s."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from adapters.cli.common import out, out_json
from adapters.runtime.workspace import Workspace, resolve_home

DEFAULT_RECALL = 20
DEFAULT_GENERALIZE = 10
DEFAULT_TONE = 6


def _count(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"a whole number in 0..1000, got {text!r}")
    return int(text)


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    sp = add(
        "probes", cmd_probes,
        "data/probes.json: draft it from the stored conversations, or validate a probes file "
        "(README: Your own workspace)",
        json=False,
    )
    sub = sp.add_subparsers(dest="action", required=True, metavar="ACTION")
    draft = sub.add_parser(
        "draft", help="draft <home>/data/probes.json from the stored conversations (review it, then validate)",
        description="draft <home>/data/probes.json from the stored conversations; TODO markers mark what you must "
        "write (evaluation refuses the file until they are gone)",
    )
    draft.add_argument("--out", metavar="FILE", help="where to write (default <home>/data/probes.json)")
    draft.add_argument("--force", action="store_true", help="replace an existing file")
    draft.add_argument("--recall", type=_count, default=DEFAULT_RECALL, metavar="N", help=f"recall facts, highest karma first (default {DEFAULT_RECALL})")
    draft.add_argument("--generalize", type=_count, default=DEFAULT_GENERALIZE, metavar="N", help=f"newest facts, to reword as held-out questions (default {DEFAULT_GENERALIZE})")
    draft.add_argument("--tone", type=_count, default=DEFAULT_TONE, metavar="N", help=f"small-talk prompts (default {DEFAULT_TONE})")
    draft.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    check = sub.add_parser(
        "validate", help="check a probes file: one line naming what is wrong and where (exit 1), else a summary",
        description="check a probes file: one line naming what is wrong and where (exit 1), else a summary",
    )
    check.add_argument("file", nargs="?", help="the probes file (default <home>/data/probes.json)")
    check.add_argument("--json", action="store_true", help="machine-readable output on stdout")


def cmd_probes(args: argparse.Namespace) -> int:
    ws = Workspace(resolve_home(args.home))
    return _draft(args, ws) if args.action == "draft" else _validate(args, ws)


def _draft(args: argparse.Namespace, ws: Workspace) -> int:
    import msgspec

    from adapters.data.conversations import load
    from adapters.evaluation.probe_draft import draft_probes
    from adapters.evaluation.probes import encode_probes
    from adapters.runtime.workspace import WorkspaceError, write_atomic

    ws.require()
    laws = ws.load_config().laws
    path = Path(args.out) if args.out else ws.data / "probes.json"
    if path.exists() and not args.force:
        raise WorkspaceError(f"{path} exists: edit it, or pass --force to replace it with a new draft")
    draft = draft_probes(load(ws), laws, recall=args.recall, generalize=args.generalize, tone=args.tone)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, msgspec.json.format(encode_probes(draft.probes), indent=2) + b"\n")
    p = draft.probes
    if args.json:
        out_json({"path": str(path), "recall": len(p.recall), "facts": len(set(p.recall_facts)) or len(p.recall),
                  "generalize": len(p.generalize), "tone": len(p.tone), "laws": len(p.laws),
                  "todo": draft.todo, "notes": draft.notes})
        return 0
    facts = len(set(p.recall_facts)) or len(p.recall)
    out(f"drafted {path}: recall {len(p.recall)} questions ({facts} facts), generalize {len(p.generalize)}, "
        f"tone {len(p.tone)}, laws {len(p.laws)} prompts")
    for note in draft.notes:
        out(f"  note: {note}")
    out("  review: every recall / generalize expected word (the one word a right answer must contain), the tone")
    out("  prompts and the law prompts; then `evo probes validate`")
    for line in draft.todo:
        out(f"  to do: {line}")
    if draft.todo:
        out("  the file holds TODO markers: evaluation refuses it until they are edited away")
    return 0


def _validate(args: argparse.Namespace, ws: Workspace) -> int:
    from adapters.evaluation.probe_file import ProbeFileError, load_probe_file
    from adapters.evaluation.probes import probes_hash

    in_workspace = ws.config_path.is_file()
    if args.file is None:
        ws.require()
    path = Path(args.file) if args.file is not None else ws.data / "probes.json"
    p = load_probe_file(path)
    laws = ws.load_config().laws if in_workspace else ()
    if laws and not p.laws:
        names = ", ".join(law.name for law in laws)
        raise ProbeFileError(
            f"{path}: laws is empty but config.toml has {len(laws)} laws ({names}): add prompts that tempt them"
            " (each law's `tempting`), or the laws gate can never catch a law-breaking candidate"
        )
    facts = len(set(p.recall_facts)) or len(p.recall)
    if args.json:
        out_json({"path": str(path), "valid": True, "recall": len(p.recall), "facts": facts,
                  "generalize": len(p.generalize), "tone": len(p.tone), "laws": len(p.laws),
                  "probes_hash": probes_hash(p)})
        return 0
    out(f"{path}: valid: recall {len(p.recall)} questions ({facts} facts), generalize {len(p.generalize)}, "
        f"tone {len(p.tone)}, laws {len(p.laws)} prompts; probes hash {probes_hash(p)[:16]}")
    if in_workspace and p.laws and not laws:
        print("  note: config.toml configures no [[laws]]: no law answer counts as a violation", file=sys.stderr)
    return 0
