"""Step 6, FREEZE: a candidate's artifacts archived once, whole, read-only, and hashed.

Theory of operation. ``freeze`` fills ``models/archive/.<id>.freezing-<pid>/`` (a folder beside
the archive, on the same file system), fsyncs it, makes every file and sub-folder read-only,
hashes it (``hash_tree``) and renames it to ``models/archive/<id>/``: the rename is the commit,
so a crash leaves either no archive under the final name or a whole one. A temp folder left by a
process that died is removed by the next freeze. An archive is written once: freezing onto an
existing name raises ``ArchiveExists`` and touches nothing; ``reclaim`` deals with an archive
left under its final name by a freeze that died before the ledger recorded it.

The returned ``archive_hash`` goes into the CandidateFrozen event; ``verify_archive`` re-hashes
a folder against it and against the folder's own ``hashes.csv``; ``verify_ledger_archives``
does that for every archive the ledger names (``evo verify --deep``).

Besides the spec's ten artifacts the archive keeps ``adapter/`` (a promoted candidate teaches
the next window), ``training.json``, ``export.json``, ``data_ids.json`` and the charts
``metrics.png`` and ``loss.png`` (when training recorded a curve) that EVAL.md shows. A trained
candidate's merged weights are not archived: its adapter and its parent rebuild them byte for
byte (``adapters.models.merge``: the adapter's ``evo_merge.json`` names the parent and the merged
tensors' hash), so ``model.gguf`` is the one copy of the whole model; its ``model_hash`` is then
the GGUF's blake3 (what serving checks). A folder without a merge record (a genesis, an older
workspace's candidate) keeps ``weights/``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from adapters.freeze.card_lineage import inherited
from adapters.freeze.documents import CardLineage, Facts, eval_md, metrics_json, model_card, pictures
from adapters.freeze.portable import make_portable
from adapters.hashing import hash_file, hash_tree
from adapters.models.merge import read_record
from adapters.runtime.workspace import Workspace, WorkspaceError, write_atomic
from ledger.recovery import fsync_dir
from evo_core.events import CandidateFrozen, Event, GenerationRegistered
from evo_core.state import Candidate, Window
from evo_core.values import GateResult, Metrics
from evo_core.window import verdict

TEN = (
    "model.gguf", "tokenizer.json", "config.json", "train_args.json", "evo_manifest.json",
    "metrics.json", "hashes.csv", "EVAL.md", "MODEL_CARD.md", "STATUS.txt",
)
HASHES = "hashes.csv"
TEMP_MARK = ".freezing-"
# copied from the work folder when present: (archive name, work-folder path)
COPIED = (
    ("model.gguf", "model.gguf"),
    ("tokenizer.json", "weights/tokenizer.json"),
    ("config.json", "weights/config.json"),
    ("train_args.json", "train_args.json"),
    ("evo_manifest.json", "evo_manifest.json"),
    ("training.json", "training.json"),
    ("export.json", "export.json"),
    ("data_ids.json", "data_ids.json"),
    ("probes.json", "probes.json"),  # the probe set the metrics were measured on
)
EXTRAS = ("training.json", "export.json", "data_ids.json", "probes.json")  # not worth a "missing" line
FOLDERS = ("weights", "adapter")


class ArchiveExists(WorkspaceError):
    """An archive is written once."""


class FrozenArchive(msgspec.Struct, frozen=True, kw_only=True):
    path: Path
    archive_hash: str
    model_hash: str
    manifest_hash: str

    @property
    def archive(self) -> str:
        """The archive as the ledger names it: relative to ``models/`` (``archive/<id>``)."""
        return f"archive/{self.path.name}"


def freeze(
    ws: Workspace,
    candidate: Candidate,
    *,
    window: Window | None,
    head_metrics: Metrics | None,
    gates: Sequence[GateResult] | None = None,
    status: str | None = None,
    work_dir: Path,
    history: Sequence[tuple[str, Metrics]] = (),
) -> FrozenArchive:
    """Archive ``candidate`` from its work folder into ``models/archive/<id>/``.

    ``status`` is STATUS.txt (default: the core's ``verdict(candidate)``), ``gates`` the gate
    results EVAL.md details (default: the candidate's), ``head_metrics`` HEAD's on the same
    probes (default: the window's baseline), ``history`` earlier generations' metrics, oldest
    first, for the chart. A candidate without weights (breached, crashed) is archived with
    what exists; EVAL.md and metrics.json name what is missing.
    """
    status = verdict(candidate) if status is None else status
    gates = tuple(candidate.gates if gates is None else gates)
    if head_metrics is None and window is not None:
        head_metrics = window.baseline
    final = ws.archive / candidate.id
    if final.exists() or final.is_symlink():
        raise ArchiveExists(f"{final} already exists: an archive is written once")
    ws.archive.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(ws.archive)
    tmp = ws.archive / f".{candidate.id}{TEMP_MARK}{os.getpid()}"
    _remove(tmp)
    tmp.mkdir()
    try:
        lineage = inherited(ws.archive / candidate.parent)
        facts = _fill(tmp, Path(work_dir), candidate, status, window, head_metrics, gates, home=ws.home, lineage=lineage)
        for name, picture in pictures(facts, history).items():
            _write(tmp, name, picture)
        _write(tmp, "metrics.json", json.dumps(metrics_json(facts), indent=2) + "\n")
        _write(tmp, "EVAL.md", eval_md(facts))
        _write(tmp, "MODEL_CARD.md", model_card(facts))
        _write(tmp, "STATUS.txt", status + "\n")
        _write(tmp, HASHES, hashes_csv(tmp))
        _seal(tmp)
        archive_hash = hash_tree(tmp)
        if final.exists() or final.is_symlink():  # another freeze won the race
            raise ArchiveExists(f"{final} already exists: an archive is written once")
        os.rename(tmp, final)
    except BaseException:
        _remove(tmp)
        raise
    os.chmod(final, _read_only(final.stat().st_mode))
    fsync_dir(ws.archive)
    return FrozenArchive(
        path=final, archive_hash=archive_hash, model_hash=facts.model_hash, manifest_hash=facts.manifest_hash
    )


def reclaim(ws: Workspace, candidate_id: str) -> FrozenArchive | None:
    """An archive under ``candidate_id``'s name that the ledger does not name yet: a freeze
    that died between its rename and the CandidateFrozen append (call it only for a candidate
    the ledger has not frozen). A whole one (every file matches its hashes.csv) is re-used as
    it is; anything else there is removed. None: nothing to re-use, freeze afresh."""
    final = ws.archive / candidate_id
    if not (final.exists() or final.is_symlink()):
        return None
    if final.is_dir() and not final.is_symlink() and (final / HASHES).is_file() and not verify_archive(final, ""):
        os.chmod(final, _read_only(final.stat().st_mode))
        fsync_dir(ws.archive)
        manifest = final / "evo_manifest.json"
        return FrozenArchive(
            path=final,
            archive_hash=hash_tree(final),
            model_hash=_model_hash(final),
            manifest_hash=hash_file(manifest) if manifest.is_file() else "",
        )
    if final.is_dir() and not final.is_symlink():
        _remove(final)
    else:
        final.unlink()
    fsync_dir(ws.archive)
    return None


def _fill(
    tmp: Path,
    work: Path,
    candidate: Candidate,
    status: str,
    window: Window | None,
    head_metrics: Metrics | None,
    gates: tuple[GateResult, ...],
    *,
    home: Path,
    lineage: CardLineage,
) -> Facts:
    missing: list[str] = []
    for name, rel in COPIED:
        src = work / rel
        if src.is_file():
            shutil.copyfile(src, tmp / name)
        elif name not in EXTRAS:
            missing.append(name)
    for folder in FOLDERS:
        src = work / folder
        if folder == "weights" and read_record(work / "adapter") is not None:
            continue  # rebuilt from the adapter and the parent (see the module doc)
        if src.is_dir():
            shutil.copytree(src, tmp / folder, copy_function=shutil.copyfile)
        else:
            missing.append(f"{folder}/")
    make_portable(tmp, home, candidate.parent, lineage.base_model)
    return Facts(
        candidate=candidate,
        status=status,
        window=window,
        head_metrics=head_metrics,
        gates=gates,
        training=_json_or(tmp / "training.json", {}),
        export=_json_or(tmp / "export.json", None),
        missing=missing,
        model_hash=_model_hash(tmp),
        manifest_hash=hash_file(tmp / "evo_manifest.json") if (tmp / "evo_manifest.json").is_file() else "",
        lineage=lineage,
        adapter_only=read_record(tmp / "adapter") is not None,
    )


def _model_hash(folder: Path) -> str:
    """The weights hash as genesis and the teacher cache compute it; else model.gguf's blake3."""
    from adapters.models.hf import ModelError, weights_hash

    if (folder / "weights").is_dir():
        try:
            return weights_hash(folder / "weights")
        except ModelError:
            pass
    gguf = folder / "model.gguf"
    return hash_file(gguf) if gguf.is_file() else ""


def _json_or(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def _write(folder: Path, name: str, data: bytes | str) -> None:
    write_atomic(folder / name, data)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def hashes_csv(root: Path) -> str:
    """``path,blake3,bytes`` of every file under ``root`` but hashes.csv, sorted by path."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["path", "blake3", "bytes"])
    for p in _files(root):
        rel = p.relative_to(root).as_posix()
        if rel != HASHES:
            out.writerow([rel, hash_file(p), p.stat().st_size])
    return buf.getvalue()


def _read_only(mode: int) -> int:
    return mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def _seal(root: Path) -> None:
    """fsync every file and sub-folder, then chmod a-w them (the top folder after the rename)."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            path = Path(dirpath, name)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.chmod(path, _read_only(path.stat().st_mode))
        fsync_dir(Path(dirpath))
        if Path(dirpath) != root:
            os.chmod(dirpath, _read_only(os.stat(dirpath).st_mode))


def seal(folder: Path) -> None:
    """Make a whole archive folder read-only as ``freeze`` makes a candidate's: fsync and
    ``chmod a-w`` every file (0444) and sub-folder (0555), then the folder itself, and fsync its
    parent. For the genesis archive once ``evo init`` has filled it (hash it after: the modes
    are not hashed, but nothing may be written into it after this)."""
    folder = Path(folder)
    _seal(folder)
    os.chmod(folder, _read_only(folder.stat().st_mode))
    fsync_dir(folder)
    fsync_dir(folder.parent)


def _remove(path: Path) -> None:
    """rmtree, read-only folders included."""
    if not path.exists():
        return
    for dirpath, _dirs, _files_ in os.walk(path):
        os.chmod(dirpath, os.stat(dirpath).st_mode | stat.S_IWUSR | stat.S_IXUSR | stat.S_IRUSR)
    shutil.rmtree(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid <= 0x7FFFFFFF
    return True


def sweep_leftovers(archive_root: Path) -> list[Path]:
    """Remove temp folders of freezes whose process is gone; return them."""
    removed = []
    for path in archive_root.glob(f".*{TEMP_MARK}*"):
        pid_text = path.name.rsplit(TEMP_MARK, 1)[1]
        if not pid_text.isdigit() or not _alive(int(pid_text)):
            _remove(path)
            removed.append(path)
    return removed


# ---------------------------------------------------------------- verification


def verify_archive(path: Path, expected_hash: str) -> list[str]:
    """Every way ``path`` differs from the archive that was frozen: its tree hash against
    ``expected_hash`` (skipped when empty), every file against its ``hashes.csv`` (when it
    has one: a genesis archive does not), and anything but plain files and folders in it (a
    symbolic link would let bytes outside the archive stand in for frozen ones)."""
    path = Path(path)
    if path.is_symlink():
        return [f"{path}: the archive folder is a symbolic link (to {os.readlink(path)}), not the frozen folder"]
    if not path.is_dir():
        return [f"{path}: archive folder missing"]
    problems = [f"{path}: {p}" for p in _not_plain(path)]
    if expected_hash:
        got = hash_tree(path)
        if got != expected_hash:
            problems.append(f"{path}: archive hash {got} does not match the recorded {expected_hash}")
    listing = path / HASHES
    if listing.is_file():
        problems += [f"{path}: {p}" for p in _check_listing(path, listing)]
    return problems


def _not_plain(root: Path) -> list[str]:
    """A problem for every entry under ``root`` that is neither a plain file nor a folder
    (symbolic links, whatever they point to; fifos, sockets, devices), never followed."""
    problems = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in sorted(dirs + files):
            entry = Path(folder, name)
            rel = entry.relative_to(root).as_posix()
            mode = entry.lstat().st_mode
            if stat.S_ISLNK(mode):
                problems.append(f"{rel} is a symbolic link (to {os.readlink(entry)}): an archive holds only its own files")
            elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                problems.append(f"{rel} is not a plain file or folder")
    return problems


def _check_listing(root: Path, listing: Path) -> list[str]:
    problems = []
    try:
        rows = list(csv.DictReader(io.StringIO(listing.read_text())))
        listed = {r["path"]: (r["blake3"], int(r["bytes"])) for r in rows}
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        return [f"{HASHES} is unreadable ({exc})"]
    present = {p.relative_to(root).as_posix(): p for p in _files(root)}
    present.pop(HASHES, None)
    for rel, (digest, size) in sorted(listed.items()):
        p = present.get(rel)
        if p is None:
            problems.append(f"{rel} is listed in {HASHES} but missing")
        elif p.stat().st_size != size or hash_file(p) != digest:
            problems.append(f"{rel} does not match {HASHES} (modified)")
    for rel in sorted(set(present) - set(listed)):
        problems.append(f"{rel} is not listed in {HASHES}")
    return problems


def resolve_archive(ws: Workspace, archive: str) -> Path:
    """An event's ``archive``: relative to ``models/`` (``archive/<g>``), or to the home."""
    p = Path(archive)
    if p.is_absolute():
        return p
    for base in (ws.models, ws.home):
        if (base / p).exists():
            return base / p
    return ws.models / p


def verify_ledger_archives(ws: Workspace, records: Iterable[tuple[int, Event]]) -> list[tuple[int, str]]:
    """``(seq, problem)`` for every archive named by a CandidateFrozen or GenerationRegistered
    event that no longer matches its recorded hash or its hashes.csv."""
    out = []
    for seq, event in records:
        if isinstance(event, CandidateFrozen):
            name, archive, digest = event.candidate, event.archive, event.archive_hash
        elif isinstance(event, GenerationRegistered) and event.archive:
            name, archive, digest = event.generation, event.archive, event.archive_hash
        else:
            continue
        for problem in verify_archive(resolve_archive(ws, archive), digest):
            out.append((seq, f"seq {seq}: archive of {name}: {problem}"))
    return out
