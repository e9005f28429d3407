"""Which generations can be served, the check that their bytes are the recorded ones, and the
recorded queries a shadow phase can replay.

Serving checks bytes, not links
-------------------------------
A generation is served only from ``models/archive/<generation>/model.gguf`` and only when those
bytes are the ones the verified ledger recorded for it (``bytes_problem``, ``verified_gguf``,
``open_verified``): the genesis (``GenerationRegistered``) and every proposed candidate
(``Proposed``, from its ``CandidateFrozen``) are in ``State.generations`` with the archive, its
``archive_hash`` and the ``model_hash`` recorded then; a candidate frozen but never proposed is
checked against its ``CandidateFrozen`` the same way (``evo ask --generation``). The check:

1. the recorded archive is a folder directly under ``models/archive/`` (named relative to
   ``models/`` or to the home, as ``freeze.resolve_archive`` reads it); the folder and its
   ``model.gguf`` are opened without following a symlink (``O_NOFOLLOW``, the file relative to
   the open folder), and the folder must resolve inside ``models/archive/``;
2. the blake3 of ``model.gguf`` equals the recorded ``model_hash``: done; else
3. the archive folder hashes (``hashing.hash_tree``, recomputed from each file's blake3) to the
   recorded ``archive_hash``, which covers ``model.gguf`` (and ``hashes.csv``: rewriting it to
   match a swapped model changes the tree). Any symlink or special file inside the archive is a
   problem on its own. ``model_hash`` is the weights' hash for today's archives (README:
   GenerationRegistered), so step 3 is the one that binds the GGUF; the operator's approval
   signs ``archive_hash``, so these are exactly the approved bytes.

Every file's blake3 is cached in this module (``_DIGESTS``, at most ``CACHE_SIZE`` entries) by
its path, device, inode, size, mtime and ctime: a reload, a second router or the rollout's check
re-hashes nothing that did not change, while a replaced file (a new inode), one rewritten in
place (size, mtime or ctime: ``touch -d`` cannot set a ctime back) or one changed while it was
hashed (the stat before and after differ; not cached) is hashed again. A file changed less than
``RACY_NS`` ago is not cached at all: a write within the same clock tick as the previous change
leaves the timestamps as they were (git's "racily clean" entries). Hashing streams the file
(8 MiB reads, blake3 on every core). The cache lives in the process: the first check of an
archive in a process hashes all of it (step 3: the weights too, about twice the GGUF's bytes);
every later one costs a stat per file.

``open_verified`` keeps the checked ``model.gguf`` open; its ``fd_path``
(``/proc/self/fd/<n>``, where the platform has it) names the very inode that was hashed, so a
loader reading it cannot be handed whatever a rename put at the path since (the router's
default loader does); ``VerifiedGGUF.confirm`` checks after the load that the file's size,
mtime and ctime did not move and that the path still names it.

``gguf_path``, ``servable`` and ``find_generation`` look at folders, not at the ledger: the
pipeline uses them for its own work (a candidate's model before it is frozen). Serving never
does.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import blake3

from adapters.runtime.workspace import Workspace, WorkspaceError
from evo_core.names import by_prefix
from evo_core.state import State

GGUF_NAME = "model.gguf"
CACHE_SIZE = 4096  # file digests kept (an archive holds ~20 files)
RACY_NS = 2_000_000_000  # a file changed this recently is hashed every time (see _digest)
_CHUNK = 8 << 20
_MAX_DEPTH = 32  # folders inside an archive (weights/, adapter/, ...): a deeper tree is refused
_PROC_FD = "/proc/self/fd"


class ServingError(WorkspaceError):
    """Nothing can answer (no HEAD, no model.gguf, bytes that are not the recorded ones): exit 1,
    one line."""


# ---------------------------------------------------------------- the recorded bytes


@dataclass(frozen=True)
class Recorded:
    """What the verified ledger recorded of a generation's bytes."""

    name: str
    archive: str
    archive_hash: str
    model_hash: str


def recorded(state: State, generation: str) -> Recorded | None:
    """``generation``'s recorded archive and hashes: from ``state.generations`` (the genesis and
    every proposed candidate), else from a frozen candidate's ``CandidateFrozen``; None if the
    verified ledger records no such generation."""
    gen = state.generations.get(generation)
    if gen is not None:
        return Recorded(generation, gen.archive, gen.archive_hash, gen.model_hash)
    cand = state.candidates.get(generation)
    if cand is not None and cand.frozen:
        return Recorded(generation, cand.archive, cand.archive_hash, cand.model_hash)
    return None


def recorded_names(state: State) -> list[str]:
    """Every generation whose bytes the ledger recorded: generations, then frozen candidates."""
    names = list(state.generations)
    names += [c for c, cand in state.candidates.items() if cand.frozen and c not in state.generations]
    return names


def find_recorded(state: State, name: str) -> str:
    """A generation whose bytes the ledger recorded, named in full or by a unique prefix (what
    ``evo ask --generation`` serves); else ``ServingError``, one line."""
    names = recorded_names(state)
    matches = by_prefix(name, names)
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (f" and {len(matches) - 5} more" if len(matches) > 5 else "")
        raise ServingError(f"{name!r} is ambiguous: {shown}")
    raise ServingError(f"no generation the ledger recorded (the genesis or a frozen candidate) matches {name!r}")


# ---------------------------------------------------------------- hashing, cached by stat


_DIGESTS: OrderedDict[tuple[Any, ...], str] = OrderedDict()
_LOCK = threading.Lock()


def _key(path: str, st: os.stat_result) -> tuple[Any, ...]:
    return (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _hash_fd(fd: int) -> str:
    """blake3 of an open file, streamed from offset 0 (pread: the fd's offset is left alone)."""
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    offset = 0
    while True:
        chunk = os.pread(fd, _CHUNK, offset)
        if not chunk:
            return h.hexdigest()
        h.update(chunk)
        offset += len(chunk)


def _digest(fd: int, path: str) -> tuple[str, tuple[Any, ...]]:
    """``(blake3, stat key)`` of the open regular file ``fd`` (``path`` names it in the cache)."""
    before = os.fstat(fd)
    key = _key(path, before)
    with _LOCK:
        digest = _DIGESTS.get(key)
        if digest is not None:
            _DIGESTS.move_to_end(key)
            return digest, key
    digest = _hash_fd(fd)
    if _key(path, os.fstat(fd)) != key:
        raise _Problem(f"{path} changed while it was hashed")
    if time.time_ns() - max(before.st_mtime_ns, before.st_ctime_ns) < RACY_NS:
        # "racily clean" (as git says): a write in the same clock tick as the last change would
        # leave mtime and ctime as they are, so a file changed just now is not trusted by its stat
        return digest, key
    with _LOCK:
        _DIGESTS[key] = digest
        while len(_DIGESTS) > CACHE_SIZE:
            _DIGESTS.popitem(last=False)
    return digest, key


def clear_cache() -> None:
    with _LOCK:
        _DIGESTS.clear()


class _Problem(ServingError):
    """One line saying why bytes cannot be served (internal: callers get the line)."""


# ---------------------------------------------------------------- the check


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _open_dir(name: str, dir_fd: int | None, shown: str) -> int:
    try:
        fd = os.open(name, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        raise _Problem(f"{shown} is missing") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            kind = "a symlink" if _is_link(name, dir_fd) else "not a folder"
            raise _Problem(f"{shown} is {kind}") from None
        raise _Problem(f"{shown} cannot be opened ({exc.strerror})") from None
    return fd


def _open_file(name: str, dir_fd: int, shown: str) -> int:
    try:
        fd = os.open(name, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | getattr(os, "O_NONBLOCK", 0), dir_fd=dir_fd)
    except FileNotFoundError:
        raise _Problem(f"{shown} is missing (an archive is frozen: restore it from a copy)") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _Problem(f"{shown} is a symlink") from None
        raise _Problem(f"{shown} cannot be opened ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _Problem(f"{shown} is not a regular file")
    return fd


def _is_link(name: str, dir_fd: int | None) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _fd_path(fd: int) -> str | None:
    """Where the kernel says an open fd is (Linux), else None."""
    try:
        return os.readlink(f"{_PROC_FD}/{fd}")
    except OSError:
        return None


def _archive_folder(ws: Workspace, rec: Recorded) -> Path:
    """The folder directly under ``models/archive/`` that the recorded archive names."""
    root = os.path.normpath(os.path.abspath(ws.archive))
    if not rec.archive:
        return Path(root) / rec.name
    given = PurePosixPath(rec.archive)
    bases = [Path("/")] if given.is_absolute() else [ws.models, ws.home]
    for base in bases:
        candidate = os.path.normpath(os.path.abspath(base / given))
        if os.path.dirname(candidate) == root and os.path.basename(candidate) not in ("", ".", ".."):
            return Path(candidate)
    raise _Problem(f"its recorded archive {rec.archive!r} is not a folder in {ws.archive}")


def _tree_hash(dir_fd: int, gguf: tuple[str, str]) -> str:
    """``hashing.hash_tree`` of the open archive folder, from each file's (cached) blake3;
    ``gguf``: (relative name, digest) already known. A symlink or special file is a problem."""
    digests: dict[PurePosixPath, str] = {PurePosixPath(gguf[0]): gguf[1]}
    _walk(dir_fd, _fd_path(dir_fd) or "", PurePosixPath(), digests, gguf[0], 0)
    h = blake3.blake3()
    for rel in sorted(digests):  # the order of hash_tree's sorted Paths
        try:
            h.update(f"{rel.as_posix()}\0{digests[rel]}\n".encode())
        except UnicodeEncodeError:
            raise _Problem(f"archive file {rel.as_posix()!r} has an undecodable name") from None
    return h.hexdigest()


def _walk(
    dir_fd: int, real: str, rel: PurePosixPath, digests: dict[PurePosixPath, str], skip: str, depth: int
) -> None:
    """Every regular file under the open folder ``dir_fd`` (``real``: where it is, for the cache
    key) into ``digests`` by its path relative to the archive."""
    if depth > _MAX_DEPTH:
        raise _Problem(f"archive folder {rel.as_posix()} is nested too deep")
    with os.scandir(dir_fd) as entries:
        names = sorted(e.name for e in entries)
    for name in names:
        path = rel / name
        shown = f"archive entry {path.as_posix()}"
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            raise _Problem(f"{shown} is a symlink (an archive holds none)")
        if stat.S_ISDIR(st.st_mode):
            sub = _open_dir(name, dir_fd, shown)
            try:
                _walk(sub, _fd_path(sub) or f"{real}/{name}", path, digests, skip, depth + 1)
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode):
            if path.as_posix() == skip:
                continue
            fd = _open_file(name, dir_fd, shown)
            try:
                digests[path], _ = _digest(fd, f"{real}/{name}")
            finally:
                os.close(fd)
        else:
            raise _Problem(f"{shown} is not a regular file or folder")


@dataclass
class VerifiedGGUF:
    """A generation's ``model.gguf``, open, whose bytes are the recorded ones.

    ``fd_path`` (``/proc/self/fd/<n>``, where the platform has it; else ``path``) names the very
    file that was checked: a rename at ``path`` since cannot change what it reads. After loading
    (from either), call ``confirm()``: ``ServingError`` if the file was written to meanwhile or
    ``path`` no longer names it. ``close()`` (or the ``with`` of ``open_verified``) closes it."""

    generation: str
    path: Path
    digest: str
    fd: int
    key: tuple[Any, ...]
    fd_path: str = field(init=False)

    def __post_init__(self) -> None:
        proc = f"{_PROC_FD}/{self.fd}"
        self.fd_path = proc if os.path.exists(proc) else os.fspath(self.path)

    def confirm(self) -> None:
        """Raise ``ServingError`` unless the checked file is unchanged and still at ``path``."""
        try:
            now = os.fstat(self.fd) if self.fd >= 0 else None
            there = os.stat(self.path, follow_symlinks=False)
        except OSError:
            now = there = None
        if (
            now is None
            or there is None
            or _key(self.key[0], now) != self.key
            or (there.st_dev, there.st_ino) != (now.st_dev, now.st_ino)
        ):
            raise ServingError(f"{self.generation}: {self.path} changed while it was loaded: not served")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _check(ws: Workspace, state: State, generation: str) -> VerifiedGGUF:
    """The open, checked model.gguf of ``generation``; ``_Problem`` (without the name) if not."""
    rec = recorded(state, generation)
    if rec is None:
        raise _Problem("unknown generation: the verified ledger records no such generation")
    if not rec.model_hash and not rec.archive_hash:
        raise _Problem("no recorded hash: the ledger records no bytes for it (no model was registered)")
    folder = _archive_folder(ws, rec)
    root_real = os.path.realpath(ws.archive)
    dir_fd = _open_dir(os.fspath(folder), None, f"archive folder {folder}")
    gguf_fd = -1
    try:
        real = _fd_path(dir_fd) or os.path.realpath(folder)
        if os.path.dirname(real) != root_real:
            raise _Problem(f"archive folder {folder} resolves to {real}, outside {ws.archive}")
        path = folder / GGUF_NAME
        if not rec.model_hash and not os.path.lexists(path):
            raise _Problem(
                "has no model: this workspace was initialised without one (`evo init --demo` or "
                "`evo init --base-model DIR` registers a model)"
            )
        gguf_fd = _open_file(GGUF_NAME, dir_fd, f"{path}")
        digest, key = _digest(gguf_fd, os.path.join(real, GGUF_NAME))
        if digest != rec.model_hash:
            if not rec.archive_hash:
                raise _Problem(f"{path} hashes to {digest[:16]}, the ledger recorded {rec.model_hash[:16]}")
            tree = _tree_hash(dir_fd, (GGUF_NAME, digest))
            if tree != rec.archive_hash:
                raise _Problem(
                    f"hash mismatch: archive {folder} hashes to {tree[:16]}, the ledger recorded "
                    f"{rec.archive_hash[:16]} ({GGUF_NAME} or another file in it was replaced, added or removed)"
                )
        verified = VerifiedGGUF(generation=generation, path=path, digest=digest, fd=gguf_fd, key=key)
        gguf_fd = -1
        return verified
    finally:
        if gguf_fd >= 0:
            os.close(gguf_fd)
        os.close(dir_fd)


def bytes_problem(ws: Workspace, state: State, generation: str) -> str | None:
    """None when ``generation``'s model.gguf in its archive is the recorded bytes (see the module
    doc); else one line saying why not (unknown generation, no recorded hash, a missing file, a
    hash mismatch, a symlink, a folder outside the archive), for the caller to prefix with the
    generation's name (``ServingError``s here carry it: ``"<generation>: <why>"``)."""
    try:
        _check(ws, state, generation).close()
    except _Problem as exc:
        return str(exc)
    except OSError as exc:
        return f"its archive cannot be read ({exc})"
    return None


def verified_gguf(ws: Workspace, state: State, generation: str) -> Path:
    """``generation``'s model.gguf, checked against the ledger; else ``ServingError``, one line.
    A path can be swapped after it is returned: load through ``open_verified`` instead."""
    problem = bytes_problem(ws, state, generation)
    if problem is not None:
        raise ServingError(f"{generation}: {problem}")
    rec = recorded(state, generation)
    assert rec is not None
    return _archive_folder(ws, rec) / GGUF_NAME


@contextmanager
def open_verified(ws: Workspace, state: State, generation: str) -> Iterator[VerifiedGGUF]:
    """``generation``'s model.gguf, checked and held open for the loader (``VerifiedGGUF``);
    else ``ServingError``, one line."""
    try:
        verified = _check(ws, state, generation)
    except _Problem as exc:
        raise ServingError(f"{generation}: {exc}") from None
    except OSError as exc:
        raise ServingError(f"{generation}: its archive cannot be read ({exc})") from None
    try:
        yield verified
    finally:
        verified.close()


# ---------------------------------------------------------------- folders (the pipeline's view)


def gguf_path(ws: Workspace, generation: str) -> Path | None:
    """A generation's model.gguf: its archive folder first, then its training folder. Not
    checked against the ledger: for the pipeline's own work, never for serving."""
    for folder in (ws.archive / generation, ws.home / "work" / generation):
        path = folder / GGUF_NAME
        if path.is_file():
            return path
    return None


def servable(ws: Workspace) -> list[str]:
    """Every generation with a model.gguf (archive folders, then training folders), sorted."""
    names: set[str] = set()
    for root in (ws.archive, ws.home / "work"):
        if root.is_dir():
            names.update(p.parent.name for p in root.glob(f"*/{GGUF_NAME}") if p.is_file())
    return sorted(names)


def unservable(ws: Workspace, name: str) -> str:
    """Why a known generation cannot answer, and what to do about it."""
    if any((root / name / "weights" / "config.json").is_file() for root in (ws.archive, ws.home / "work")):
        return f"generation {name} has no {GGUF_NAME} (run `evo export {name}`)"
    return (
        f"generation {name} has no model: this workspace was initialised without one "
        "(`evo init --demo` or `evo init --base-model DIR` registers a model)"
    )


def find_generation(ws: Workspace, name: str) -> str:
    """A generation with a model.gguf named ``name`` or by a unique prefix; else ``ServingError``."""
    names = servable(ws)
    if name in names:
        return name
    known = {p.name for root in (ws.archive, ws.home / "work") if root.is_dir() for p in root.iterdir() if p.is_dir()}
    if name in known:
        raise ServingError(unservable(ws, name))
    matches = by_prefix(name, names)
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (f" and {len(matches) - 5} more" if len(matches) > 5 else "")
        raise ServingError(f"{name!r} is ambiguous: {shown}")
    without = by_prefix(name, sorted(known))
    if len(without) == 1:
        raise ServingError(unservable(ws, without[0]))
    raise ServingError(f"no generation with a {GGUF_NAME} matches {name!r}")


def trivial_queries(ws: Workspace | str | os.PathLike[str], limit: int | None = None) -> list[str]:
    """User turns of the TRIVIAL-looking stored conversations, newest first, each text once.

    TRIVIAL-looking: one user turn (no system message), karma >= 0, at most 200 characters, not
    a prompt that tempts one of the operator's laws, and no assistant message that breaks one:
    the laws config.toml configures, else (none configured) the demo world's.
    """
    from adapters.data.conversations import load
    from adapters.data.demo_world import LAWS
    from adapters.data.demo_world import violations as demo_violations
    from evo_core.config import broken_laws

    workspace = ws if isinstance(ws, Workspace) else Workspace(Path(ws))
    laws = workspace.config().laws
    tempting = {prompt for law in (laws or LAWS) for prompt in law.tempting}

    def violations(text: str) -> list[str]:
        return broken_laws(laws, text) if laws else demo_violations(text)

    seen: set[str] = set()
    out: list[str] = []
    conversations = load(workspace)
    for conv in sorted(conversations, key=lambda c: c.cycle, reverse=True):  # stable: ties keep store order
        users = [m.content for m in conv.messages if m.role == "user"]
        if conv.karma < 0 or len(users) != 1 or any(m.role == "system" for m in conv.messages):
            continue
        query = users[0]
        if len(query) > 200 or not query.strip() or query in tempting or query in seen:
            continue
        if any(violations(m.content) for m in conv.messages if m.role == "assistant"):
            continue
        seen.add(query)
        out.append(query)
        if limit is not None and len(out) >= limit:
            break
    return out
