"""Serving checks bytes, not links (issue 13): the router serves HEAD from the verified fold and
loads a generation only when its archived ``model.gguf`` is the bytes the ledger recorded.

Real files and a real ledger, a fake llama: each model.gguf here is a few bytes that name what
they are (``GGUF|<tag>|``), and the fake Llama answers with that tag, so an answer says which
bytes were loaded. Archives are made as the product makes them: candidates by the real
``freeze`` (read-only, hashes.csv, the weights hash as model_hash), the genesis like ``evo
init`` (weights, model.gguf, sealed)."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
from msgspec.structs import replace

from adapters.freeze.archive import freeze, hashes_csv, seal, verify_archive
from adapters.hashing import hash_file, hash_tree
from adapters.models.hf import weights_hash
from adapters import rollout
from adapters.runtime import links
from adapters.runtime.app import App
from adapters.runtime.workspace import Workspace
from adapters.serving import generations
from adapters.serving.generations import (
    ServingError,
    bytes_problem,
    find_recorded,
    open_verified,
    verified_gguf,
)
from adapters.serving.router import Router
from evo_core import commands as cmd
from evo_core.config import render_config
from evo_core.reactions import StartShadow, reactions
from evo_core.state import Phase, Shadow, State
from tests import operator_key
from tests.cli.conftest import LedgerDriver
from tests.core.helpers import BETTER, CFG, GENESIS, GOOD

AGENT = CFG.agent_name


def gguf_bytes(tag: str) -> bytes:
    return b"GGUF|" + tag.encode() + b"|" + bytes(range(256)) * 8


class FakeLlama:
    def __init__(self, path: str | os.PathLike[str]):
        data = Path(path).read_bytes()
        assert data.startswith(b"GGUF|")
        self.tag = data.split(b"|")[1].decode()
        self.metadata: dict[str, str] = {}

    def n_ctx(self) -> int:
        return 256

    def __call__(self, prompt: str, **kw: Any) -> dict[str, Any]:
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": 1}  # llama-cpp-python's shape
        return {"choices": [{"text": self.tag, "finish_reason": "stop"}], "usage": {**usage, "total_tokens": usage["prompt_tokens"] + 1}}


class FakeLoader:
    def __init__(self) -> None:
        self.paths: list[str] = []
        self.before: Any = None  # called with the path just before it is read (a racing agent)

    def __call__(self, path: str | os.PathLike[str], **kw: Any) -> FakeLlama:
        self.paths.append(os.fspath(path))
        if self.before is not None:
            self.before(path)
        return FakeLlama(path)

    @property
    def tags(self) -> list[str]:
        return [Path(p).parent.name for p in self.paths]


def writable(folder: Path) -> None:
    """Undo a seal (the agent can: it owns the files)."""
    for dirpath, _dirs, files in os.walk(folder):
        os.chmod(dirpath, 0o755)
        for name in files:
            os.chmod(Path(dirpath, name), 0o644)


def weights(folder: Path, tag: str) -> None:
    (folder / "weights").mkdir(parents=True)
    (folder / "weights" / "model.safetensors").write_bytes(b"weights of " + tag.encode())
    (folder / "weights" / "config.json").write_text('{"model_type": "llama"}\n')


class Driver(LedgerDriver):
    """The core's driver on the real ledger, freezing each candidate with the real ``freeze``
    from a work folder holding its model.gguf (tagged with its id) and weights."""

    home: Path = Path()

    def freeze_all(self) -> None:
        ws = self.app.ws
        for cid in self.candidates():
            work = self.home / "work" / cid
            weights(work, cid)
            (work / "model.gguf").write_bytes(gguf_bytes(cid))
            state = self.app.state()
            frozen = freeze(ws, state.candidates[cid], window=state.window, head_metrics=None, work_dir=work)
            self.do(
                cmd.Freeze(
                    candidate=cid,
                    archive=frozen.archive,
                    archive_hash=frozen.archive_hash,
                    model_hash=frozen.model_hash,
                    manifest_hash=frozen.manifest_hash,
                )
            )


@dataclass
class Env:
    home: Path
    app: App
    driver: Driver

    @property
    def ws(self) -> Workspace:
        return self.app.ws

    def state(self) -> State:
        return self.app.state()

    def archive(self, name: str) -> Path:
        return self.ws.archive / name

    def propose(self) -> tuple[str, str]:
        """A window: the proposed candidate and a failed one (both frozen, with a model.gguf)."""
        self.driver.window([GOOD, BETTER, "fail"])
        state = self.driver.state
        assert state.proposal is not None
        proposed = state.proposal.proposal.candidate
        failed = next(c for c in state.window_candidates() if not c.passed and c.frozen)
        return proposed, failed.id

    def swap(self, name: str, data: bytes, *, listing: bool = False) -> None:
        """Replace ``name``'s archived model.gguf (a new file renamed over it), optionally with
        hashes.csv rewritten to match, and seal the archive again."""
        folder = self.archive(name)
        os.chmod(folder, 0o755)  # the agent owns the files: a seal does not stop it
        tmp = folder / ".new"
        tmp.write_bytes(data)
        os.chmod(tmp, 0o444)
        os.replace(tmp, folder / "model.gguf")
        if listing:
            (folder / "hashes.csv").unlink()
            (folder / "hashes.csv").write_text(hashes_csv(folder))
            os.chmod(folder / "hashes.csv", 0o444)
        os.chmod(folder, 0o555)

    def router(self, loader: FakeLoader | None = None, **kw: Any) -> Router:
        return Router(self.home, loader=loader or FakeLoader(), app=self.app, **kw)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    """A workspace whose genesis is archived like ``evo init --base-model`` makes it (weights,
    model.gguf, GENESIS.md; the weights hash as model_hash, the tree hash as archive_hash) and
    sealed as a frozen candidate is."""
    home = tmp_path / "home"
    for sub in ("models/archive", "data"):
        (home / sub).mkdir(parents=True)
    (home / "config.toml").write_text(render_config(CFG))
    folder = home / "models" / "archive" / GENESIS
    weights(folder, GENESIS)
    (folder / "model.gguf").write_bytes(gguf_bytes(GENESIS))
    (folder / "GENESIS.md").write_text(f"# {GENESIS}\n")
    seal(folder)
    app = App(home)
    app.execute(operator_key.pin())  # the test operator's key, pinned with the workspace
    app.execute(
        cmd.RegisterGenesis(
            generation=GENESIS, source="test", model_hash=weights_hash(folder / "weights"),
            archive=f"archive/{GENESIS}", archive_hash=hash_tree(folder),
        )
    )
    driver = Driver(config=CFG)
    driver.app, driver.home, driver.state = app, home, app.state()
    yield Env(home, app, driver)
    app.close()


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test hashes from scratch; files written a moment ago may be cached (see RACY_NS)."""
    generations.clear_cache()
    monkeypatch.setattr(generations, "RACY_NS", 0)


def count_hashing(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The file descriptors hashed from now on (every hash goes through ``_hash_fd``)."""
    calls: list[int] = []
    real = generations._hash_fd

    def counting(fd: int) -> str:
        calls.append(fd)
        return real(fd)

    monkeypatch.setattr(generations, "_hash_fd", counting)
    return calls


def as_of(env: Env, router: Router, monkeypatch: pytest.MonkeyPatch, **changes: Any) -> State:
    """Make the router's verified fold say ``changes`` (what a legitimate rollout would have
    recorded), on top of the ledger's state."""
    state = replace(env.state(), **changes)
    monkeypatch.setattr(router.app, "state", lambda: state)
    router._ledger_key = None  # refold at the next look
    return state


# ---------------------------------------------------------------- the check


def test_recorded_bytes_pass_and_the_genesis_archive_binds_its_gguf(env: Env) -> None:
    proposed, failed = env.propose()
    state = env.state()
    genesis = state.generations[GENESIS]
    folder = env.archive(GENESIS)
    # model_hash is the weights' hash (README), the tree hash covers model.gguf
    assert genesis.model_hash == weights_hash(folder / "weights") != hash_file(folder / "model.gguf")
    assert genesis.archive_hash == hash_tree(folder) and genesis.archive == f"archive/{GENESIS}"
    for name in (GENESIS, proposed, failed):  # a frozen candidate too (``evo ask --generation``)
        assert bytes_problem(env.ws, state, name) is None, name
        assert verified_gguf(env.ws, state, name) == env.archive(name) / "model.gguf"
    with open_verified(env.ws, state, proposed) as checked:
        assert checked.digest == hash_file(env.archive(proposed) / "model.gguf")
        assert Path(checked.fd_path).read_bytes() == gguf_bytes(proposed)
        checked.confirm()
    assert find_recorded(state, proposed[:-1]) == proposed
    with pytest.raises(ServingError, match="no generation the ledger recorded"):
        find_recorded(state, "Luna-G404")


def test_a_replaced_gguf_is_refused_even_with_hashes_csv_rewritten(env: Env) -> None:
    proposed, _ = env.propose()
    env.swap(proposed, gguf_bytes("evil"), listing=True)
    assert verify_archive(env.archive(proposed), "") == []  # hashes.csv alone is fooled
    problem = bytes_problem(env.ws, env.state(), proposed)
    assert problem is not None and problem.startswith("hash mismatch") and "\n" not in problem
    with pytest.raises(ServingError, match="hash mismatch"):
        verified_gguf(env.ws, env.state(), proposed)


@pytest.mark.parametrize("how", ["symlinked gguf", "symlinked folder", "symlink inside", "extra file", "missing"])
def test_what_the_check_refuses(env: Env, tmp_path: Path, how: str) -> None:
    proposed, _ = env.propose()
    folder = env.archive(proposed)
    outside = tmp_path / "outside"
    shutil.copytree(folder, outside)  # the right bytes, elsewhere
    writable(folder)
    if how == "symlinked gguf":
        (folder / "model.gguf").unlink()
        os.symlink(outside / "model.gguf", folder / "model.gguf")
        want = "model.gguf is a symlink"
    elif how == "symlinked folder":
        shutil.rmtree(folder)
        os.symlink(outside, folder)
        want = "is a symlink"
    elif how == "symlink inside":
        os.symlink(outside / "EVAL.md", folder / "weights" / "x")
        want = "archive entry weights/x is a symlink"
    elif how == "extra file":
        (folder / "weights" / "extra.bin").write_bytes(b"x")
        want = "hash mismatch"
    else:
        (folder / "model.gguf").unlink()
        want = "model.gguf is missing"
    problem = bytes_problem(env.ws, env.state(), proposed)
    assert problem is not None and want in problem and "\n" not in problem, problem


def test_unknown_unrecorded_and_outside_archives(env: Env) -> None:
    state = env.state()
    assert "unknown generation" in str(bytes_problem(env.ws, state, "Luna-G009-x"))
    gen = state.generations[GENESIS]
    bare = replace(state, generations={GENESIS: replace(gen, model_hash="", archive_hash="")})
    assert "no recorded hash" in str(bytes_problem(env.ws, bare, GENESIS))
    for archive in ("../../elsewhere", "/tmp/x/Luna-G000-genesis", "archive/a/b"):
        moved = replace(state, generations={GENESIS: replace(gen, archive=archive)})
        assert f"is not a folder in {env.ws.archive}" in str(bytes_problem(env.ws, moved, GENESIS))
    # named relative to the home, as the test drivers record it, is the same folder
    home_relative = replace(state, generations={GENESIS: replace(gen, archive=f"models/archive/{GENESIS}")})
    assert bytes_problem(env.ws, home_relative, GENESIS) is None
    # a genesis registered without a model (`evo init` alone): one line that says so
    folder = env.archive(GENESIS)
    folder.chmod(0o755)
    (folder / "model.gguf").unlink()
    modelless = replace(state, generations={GENESIS: replace(gen, model_hash="")})
    assert "has no model: this workspace was initialised without one" in str(bytes_problem(env.ws, modelless, GENESIS))
    assert "model.gguf is missing" in str(bytes_problem(env.ws, state, GENESIS))


def test_models_archive_elsewhere_is_followed_but_an_archive_leaving_it_is_not(env: Env, tmp_path: Path) -> None:
    """``models/archive`` may itself live on another disk (a symlink); an archive folder inside
    it that resolves out of it is refused."""
    state = env.state()
    real = tmp_path / "disk" / "archive"
    real.parent.mkdir()
    shutil.move(os.fspath(env.ws.archive), real)
    os.symlink(real, env.ws.archive)
    assert bytes_problem(env.ws, state, GENESIS) is None


# ---------------------------------------------------------------- the cache


def test_the_cache_avoids_rehashing_yet_notices_a_replaced_file(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    proposed, _ = env.propose()
    calls = count_hashing(monkeypatch)
    state = env.state()
    files = len([p for p in env.archive(proposed).rglob("*") if p.is_file()])
    assert bytes_problem(env.ws, state, proposed) is None
    assert len(calls) == files  # model_hash is the weights hash: the whole tree, once
    assert bytes_problem(env.ws, state, proposed) is None
    with env.router() as router:  # a load checks again: nothing re-hashed
        router.model(proposed)
    with env.router() as router:
        router.model(proposed)
    assert len(calls) == files
    # rewritten in place, same size, mtime put back: the ctime moved
    gguf = env.archive(proposed) / "model.gguf"
    st = gguf.stat()
    time.sleep(0.05)  # past the file system's clock tick
    os.chmod(gguf, 0o644)
    data = bytearray(gguf.read_bytes())
    data[-1] ^= 1
    with open(gguf, "r+b") as f:  # the same inode
        f.write(data)
    os.utime(gguf, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = gguf.stat()
    assert (now.st_ino, now.st_size, now.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)
    assert "hash mismatch" in str(bytes_problem(env.ws, state, proposed))
    assert len(calls) == files + 1  # only the changed file
    # put back (a new inode): hashed once more, then served
    env.swap(proposed, gguf_bytes(proposed))
    assert bytes_problem(env.ws, state, proposed) is None and len(calls) == files + 2


def test_a_file_changed_just_now_is_not_trusted_by_its_stat(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generations, "RACY_NS", 10**15)
    calls = count_hashing(monkeypatch)
    state = env.state()
    bytes_problem(env.ws, state, GENESIS)
    first = len(calls)
    bytes_problem(env.ws, state, GENESIS)
    assert len(calls) == 2 * first


# ---------------------------------------------------------------- the router


def test_head_comes_from_the_verified_fold_and_a_link_swap_changes_nothing(env: Env, tmp_path: Path) -> None:
    proposed, failed = env.propose()
    head_link = env.ws.head_link(AGENT)
    assert os.readlink(head_link) == f"archive/{GENESIS}"
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "model.gguf").write_bytes(gguf_bytes("evil"))
    loader = FakeLoader()
    with env.router(loader) as router:
        assert router.respond("hi").text == GENESIS
        for target in (f"archive/{failed}", f"archive/{proposed}", os.fspath(evil), "archive/nothing"):
            links.point(head_link, target)
            assert router.respond("hi").text == GENESIS
            with env.router() as fresh:  # a process started with the link wrong
                assert fresh.respond("hi").text == GENESIS and fresh.head() == GENESIS
            assert links.reconcile(env.ws, env.state(), AGENT) == [f"{AGENT}-GHEAD -> archive/{GENESIS}"]
            assert os.readlink(head_link) == f"archive/{GENESIS}"
    assert loader.tags == [GENESIS]
    # the next command that reconciles (a heartbeat is enough) repairs the link
    links.point(head_link, f"archive/{failed}")
    env.app.heartbeat()
    assert os.readlink(head_link) == f"archive/{GENESIS}"


@pytest.mark.parametrize("what", ["file", "folder"])
def test_reconcile_moves_a_file_or_folder_out_of_a_links_place(env: Env, what: str) -> None:
    head_link = env.ws.head_link(AGENT)
    head_link.unlink()
    if what == "file":
        head_link.write_bytes(gguf_bytes("evil"))
    else:
        head_link.mkdir()
        (head_link / "model.gguf").write_bytes(gguf_bytes("evil"))
    with env.router() as router:
        assert router.respond("hi").text == GENESIS
    changed = links.reconcile(env.ws, env.state(), AGENT)
    assert changed == [f"{AGENT}-GHEAD -> archive/{GENESIS} (a file or folder stood in its place: moved aside)"]
    assert os.readlink(head_link) == f"archive/{GENESIS}"
    aside = [p for p in env.ws.models.iterdir() if links.DISPLACED in p.name]
    assert len(aside) == 1 and (aside[0].is_file() if what == "file" else (aside[0] / "model.gguf").is_file())
    assert links.reconcile(env.ws, env.state(), AGENT) == []
    # the parent link: none while HEAD is the genesis; something put there is moved aside
    parent = env.ws.parent_link(AGENT)
    parent.write_text("x")
    assert links.reconcile(env.ws, env.state(), AGENT) == [
        f"{AGENT}-GHEAD-PARENT -> (none) (a file or folder stood in its place: moved aside)"
    ]
    assert not os.path.lexists(parent)


def test_head_with_replaced_bytes_is_refused_in_one_line(env: Env) -> None:
    env.swap(GENESIS, gguf_bytes("evil"))
    loader = FakeLoader()
    with env.router(loader) as router, pytest.raises(ServingError) as exc:
        router.respond("hi")
    assert str(exc.value).startswith(f"{GENESIS}: hash mismatch") and "\n" not in str(exc.value)
    assert loader.paths == []  # never loaded


def test_a_new_head_whose_bytes_do_not_match_leaves_the_last_verified_one_answering(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    proposed, _ = env.propose()
    loader = FakeLoader()
    with env.router(loader) as router:
        assert router.respond("hi").text == GENESIS
        env.swap(proposed, gguf_bytes("evil"))
        # the rollout's cutover as the verified fold would record it: HEAD is the candidate
        as_of(env, router, monkeypatch, head=proposed, promoted=(proposed,))
        for _ in range(3):
            answer = router.respond("hi")
            assert answer.text == GENESIS and answer.generation == GENESIS
        assert router.refused == 3 and "hash mismatch" in router.last_refusal
        assert loader.tags == [GENESIS]
        # restored: the next query serves it
        env.swap(proposed, gguf_bytes(proposed))
        assert router.respond("hi").text == proposed and router.standby == GENESIS
        # a revoked generation is no fallback: rolled back from the candidate to a swapped genesis
        env.swap(GENESIS, gguf_bytes("evil"))
        router.close()
        assert router.loaded == ()
    with env.router(loader) as router:
        as_of(env, router, monkeypatch, head=proposed, promoted=(proposed,))
        assert router.respond("hi").text == proposed
        as_of(env, router, monkeypatch, head=GENESIS, revoked=(proposed,))
        with pytest.raises(ServingError, match="hash mismatch"):
            router.respond("hi")


def test_a_candidate_swapped_after_approval_is_not_shadowed(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    proposed, _ = env.propose()
    env.swap(proposed, gguf_bytes("evil"), listing=True)
    assert "hash mismatch" in str(bytes_problem(env.ws, env.state(), proposed))  # the rollout's check
    loader = FakeLoader()
    with env.router(loader, max_tokens=4) as router:
        shadow = Shadow(generation=proposed, start_cycle=0, until_cycle=99, traffic_percent=100.0)
        as_of(env, router, monkeypatch, phase=Phase.SHADOW, shadow=shadow)
        answer = router.respond("hi")
        assert answer.text == GENESIS and answer.generation == GENESIS
        assert loader.tags == [GENESIS] and router.stats.shadow_failures >= 1
        assert "hash mismatch" in router.stats.last_failure and router.stats.recorded == 0


def test_the_rollout_shadows_and_cuts_over_to_exactly_the_approved_bytes(env: Env) -> None:
    """The real flow: approved, then the candidate's model swapped: no shadow starts; restored:
    the shadow mirrors to its bytes, the cutover serves them (already in memory), and a router
    started after a swap does not load the new HEAD: the verified standby answers."""
    proposed, _ = env.propose()
    env.driver.approve()
    env.swap(proposed, gguf_bytes("evil"), listing=True)
    (action,) = [a for a in reactions(env.state()) if isinstance(a, StartShadow)]
    every_query = CFG.model_copy(update={"shadow": CFG.shadow.model_copy(update={"traffic_percent": 100.0})})
    assert rollout.start_shadow(env.app, every_query, action) == []
    assert env.state().phase is Phase.APPROVED
    env.swap(proposed, gguf_bytes(proposed), listing=True)
    assert rollout.start_shadow(env.app, every_query, action) and env.state().phase is Phase.SHADOW
    loader = FakeLoader()
    with env.router(loader, max_tokens=4) as router:
        router.respond("hi")  # HEAD and the shadow loaded: its bytes are checked once, here
        assert sorted(loader.tags) == sorted([GENESIS, proposed]) and router.stats.mirrored == 1
        env.swap(proposed, gguf_bytes("evil"))  # too late: the checked bytes are in memory
        d = env.driver
        d.state = env.state()
        assert d.state.shadow is not None
        for i in range(3):
            d.do(cmd.RecordShadow(exact=True, similarity=1.0, query_id=f"q{i}"))
        d.beat_to(d.state.shadow.until_cycle)
        d.do(cmd.CompleteShadow(config=CFG))
        assert d.state.phase is Phase.BURN_IN and d.state.head == proposed
        assert router.respond("hi").text == proposed and len(loader.tags) == 2
    # a router started now: the standby (the HEAD it replaced, kept hot during burn-in) answers
    with env.router() as fresh:
        assert fresh.respond("hi").text == GENESIS and fresh.refused == 1
        assert "hash mismatch" in fresh.last_refusal
    # the operator's signed rollback: the genesis is served again, the candidate revoked
    env.driver.rollback()
    with env.router() as fresh:
        assert fresh.respond("hi").text == GENESIS


def test_a_swap_while_loading_is_refused(env: Env) -> None:
    """The file renamed over between the check and the load: the default loader would read the
    checked inode (/proc/self/fd); a given loader reads the path, and ``confirm`` refuses it."""
    proposed, _ = env.propose()
    loader = FakeLoader()

    def race(path: Any) -> None:
        loader.before = None
        env.swap(proposed, gguf_bytes("evil"))

    with env.router(loader) as router:
        loader.before = race
        with pytest.raises(ServingError, match="changed while it was loaded"):
            router.answer("hi", generation=proposed)
        assert proposed not in router.loaded
    env.swap(proposed, gguf_bytes(proposed))
    by_fd = FakeLoader()
    with env.router(by_fd) as router:
        router._by_fd = True  # as with the default loader
        def race_by_fd(path: Any) -> None:
            by_fd.before = None
            env.swap(proposed, gguf_bytes("evil"))

        by_fd.before = race_by_fd
        with pytest.raises(ServingError, match="changed while it was loaded"):
            router.answer("hi", generation=proposed)
        assert by_fd.paths[-1].startswith("/proc/self/fd/")


def test_answer_for_a_named_generation_checks_its_bytes(env: Env) -> None:
    proposed, failed = env.propose()
    with env.router() as router:
        assert router.answer("hi", generation=failed).text == failed
        with pytest.raises(ServingError, match="unknown generation"):
            router.answer("hi", generation="Luna-G009-x")
        env.swap(proposed, gguf_bytes("evil"))
        with pytest.raises(ServingError, match="hash mismatch"):
            router.answer("hi", generation=proposed)


# ---------------------------------------------------------------- the genesis archive


def test_seal_makes_an_archive_read_only(tmp_path: Path) -> None:
    folder = tmp_path / "G"
    weights(folder, "G")
    (folder / "model.gguf").write_bytes(gguf_bytes("G"))
    seal(folder)
    for p in [folder, *folder.rglob("*")]:
        mode = p.stat().st_mode & 0o777
        assert mode == (0o555 if p.is_dir() else 0o444), (p, oct(mode))


def test_the_genesis_evo_init_registers_is_served_by_its_recorded_bytes(demo_workspace: Path) -> None:
    """``evo init --demo``'s genesis: the recorded archive hash binds its model.gguf."""
    with App(demo_workspace) as app:
        state = app.state()
        folder = app.ws.archive / GENESIS
        genesis = state.generations[GENESIS]
        assert genesis.archive_hash == hash_tree(folder)
        assert genesis.model_hash == weights_hash(folder / "weights")  # README: over the weight files
        assert bytes_problem(app.ws, state, GENESIS) is None


def test_the_genesis_archive_is_read_only_after_evo_init(demo_workspace: Path) -> None:
    folder = demo_workspace / "models" / "archive" / GENESIS
    for p in [folder, *folder.rglob("*")]:
        assert p.stat().st_mode & 0o222 == 0, p
