"""A hostile agent against the verified fold (issue 13, THREAT-MODEL.md): a stateful test on a
real workspace (the ledger file, real frozen archives, the router's byte check with a fake llama).

Legitimate processes:
- the agent heartbeats (a fresh ``App`` each time, as `evo heartbeat` does);
- the runner: a window's steps (``rollout.runner_command``, every candidate frozen by the real
  ``freeze`` from a work folder holding a small fake ``model.gguf`` tagged with its id), the
  autonomous approval under a grant, the shadow (its samples, its completion), the burn-in (live
  answers, its completion), through ``adapters.rollout``'s handlers where there is one;
- the operator: approve, reject, roll back and autonomy on/off, signed with the test key through
  ``adapters.operator.approvals.execute_signed``.

The agent, which can write every file of the workspace: raw chain-valid records
(``Ledger(home).append``) of every kind that carries authority or a verdict (Approved: unsigned,
garbage, replayed, another message's signature, its own key, autonomous; ApprovalRefused;
Promoted; RolledBack: to a never-promoted or revoked generation, unsigned, automatic, replayed,
re-targeted, its own key; Proposed: a failed candidate, another hash, replayed; BurnInPassed;
AutonomyChanged: replayed, unsigned, its own key; KeyTrusted of its own key and KeyRevoked of the
operator's, unsigned or self-signed; ShadowStarted; ShadowCompleted; CandidateFrozen with a wrong
verdict; GateEvaluated whose gates do not follow from its metrics; Heartbeat), a config edit that "trusts" its own key, forged snapshot files and
heartbeat settings cache, GEN_HEAD swapped to a failed candidate, outside the archive or nowhere,
an archived ``model.gguf`` replaced (with ``hashes.csv`` rewritten to match, or not) and put back.

After every step:
- HEAD (a fresh ``App(home).state()``, and a fresh ``Router``'s own ``head()``) is the model's
  HEAD: the genesis or a generation whose promotion followed an approval this test signed (or an
  autonomous one under a grant it signed), never one a rollback revoked;
- what a router serves (a fresh one and the long-lived one) is the recorded bytes: a swapped
  HEAD is refused, or the last verified generation in memory answers;
- every forged record the fold did not apply is in ``State.flagged`` and named by seq in
  ``evo verify``'s problems (and nothing else is); records the agent may legitimately write (a
  later heartbeat, the scheduler's approval under a grant, the approved candidate's ShadowStarted)
  may apply; the agent's key is never trusted; heartbeats never fail.

Nine gaps this machine found (a raw record applied although the threat model says it must fail:
forged shadow and burn-in verdicts, gates before the baseline or of an untrained candidate, a
second freeze, a refusal withdrawing a verified approval, a replayed signed abort) are closed;
each is pinned by its own test at the end of this file, and the machine does not generate them
(``event("not generated here ...")``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, event, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from msgspec.structs import replace

from adapters import rollout
from adapters.audit.verify import audit
from adapters.freeze.archive import freeze, hashes_csv, seal
from adapters.hashing import hash_tree
from adapters.models.hf import weights_hash
from adapters.operator import approvals, signing
from adapters.operator.approvals import Credentials, ProposalDecision
from adapters.runtime import links
from adapters.runtime.app import App
from adapters.runtime.history import verified_fold
from adapters.serving.generations import ServingError
from adapters.serving.router import Router
from evo_core import authority
from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.config import render_config
from evo_core.errors import DomainError
from evo_core.reactions import CompleteBurnIn, CompleteShadow, SelfApprove, StartShadow, reactions
from evo_core.state import CandidateStatus, Phase, State
from evo_core.values import BudgetUsed, Metrics, TrainingStats
from evo_core.window import draft_proposal
from ledger.snapshot import Snapshot, write_snapshot
from ledger.store import Ledger
from tests import operator_key
from tests.core.helpers import BAD_RECALL_LAWS, BETTER, GOOD, fake_hash, proposal_hash
from tests.serving.test_served_bytes import FakeLoader, gguf_bytes, weights
from tests.stateful.rollout import CFG, GENESIS, OUTCOMES, P, SCRATCH, runner_command

AGENT = CFG.agent_name
CREDS = Credentials(key_id=operator_key.KID, private=operator_key.PRIVATE)
# the agent's own key: it can make one, it cannot make the ledger trust it
AGENT_PRIVATE = Ed25519PrivateKey.from_private_bytes(bytes(range(100, 132)))
AGENT_PUBLIC = signing.public_raw(AGENT_PRIVATE)
AGENT_KID = signing.key_id(AGENT_PUBLIC)
# the runner's config for an autonomous approval (config.toml's approval.autonomous on)
AUTONOMOUS = CFG.model_copy(update={"approval": CFG.approval.model_copy(update={"autonomous": True})})
EVIL = gguf_bytes("evil")
GARBAGE_SIG = "ab" * 64
F = TypeVar("F", bound=Callable[..., None])


# ---------------------------------------------------------------- the workspace


def make_workspace(home: Path) -> None:
    """config.toml (the rollout tests' config), the test key pinned, and a genesis archived like
    ``evo init --base-model`` makes it (weights, model.gguf; weights hash and tree hash)."""
    for sub in ("models/archive", "data"):
        (home / sub).mkdir(parents=True)
    (home / "config.toml").write_text(render_config(CFG))
    folder = home / "models" / "archive" / GENESIS
    weights(folder, GENESIS)
    (folder / "model.gguf").write_bytes(gguf_bytes(GENESIS))
    seal(folder)
    with App(home) as app:
        app.execute(operator_key.pin())
        app.execute(
            cmd.RegisterGenesis(
                generation=GENESIS, source="test", model_hash=weights_hash(folder / "weights"),
                archive=f"archive/{GENESIS}", archive_hash=hash_tree(folder),
            )
        )


def real_freeze(app: App, cid: str) -> cmd.Freeze:
    """The runner's Freeze of ``cid``: its work folder (weights, a model.gguf tagged with its
    id) archived by the real ``freeze``."""
    state = app.state()
    work = app.ws.home / "work" / cid
    if not work.exists():
        weights(work, cid)
        (work / "model.gguf").write_bytes(gguf_bytes(cid))
    frozen = freeze(app.ws, state.candidates[cid], window=state.window, head_metrics=None, work_dir=work)
    return cmd.Freeze(
        candidate=cid, archive=frozen.archive, archive_hash=frozen.archive_hash,
        model_hash=frozen.model_hash, manifest_hash=frozen.manifest_hash,
    )


def fresh_state(home: Path) -> State:
    """What any process starting now acts on: a new App's verified fold."""
    with App(home) as app:
        return app.state()


def tail(home: Path) -> tuple[int, str]:
    with Ledger(home, fsync=False) as led:
        cp = led.tail()
    return cp.seq, cp.hash


def append_raw(home: Path, events: list[ev.Event]) -> int:
    """The agent's raw, chain-valid append with the project's own code; the first seq."""
    with Ledger(home) as led:
        cp = led.append(events)
    return cp.seq - len(events) + 1


def ledger_events(home: Path) -> list[ev.Event]:
    with Ledger(home, fsync=False) as led:
        return [r.event for r in led.records()]


def agent_sign(message: bytes) -> str:
    return signing.sign(AGENT_PRIVATE, message)


def problem_seqs(problems: list[str]) -> set[int]:
    out = set()
    for p in problems:
        m = re.match(r"seq (\d+): ", p)
        assert m, f"an audit problem that names no seq: {p}"
        out.add(int(m.group(1)))
    return out


# ---------------------------------------------------------------- the machine

RECORDS: list[str] = []  # the agent's raw records, one method each
FILES: list[str] = []  # the agent's file edits


def forgery(group: list[str], **strategies: st.SearchStrategy[Any]) -> Callable[[F], F]:
    """Register a method of the agent's: the dispatching rule draws it and its arguments (one
    rule for each group keeps the legitimate rules drawn often enough for rollouts to finish);
    a method registered without strategies gets the rule's ``data``."""

    def register(fn: F) -> F:
        fn.strategies = strategies  # type: ignore[attr-defined]
        group.append(fn.__name__)
        return fn

    return register


class HostileAgent(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.home = Path(tempfile.mkdtemp(prefix="evo-hostile-", dir=SCRATCH))
        self.outside = Path(tempfile.mkdtemp(prefix="evo-hostile-outside-", dir=SCRATCH))
        self.app: App | None = None  # the runner's and the operator's
        self.router: Router | None = None  # the agent's long-lived router
        # the model: what the legitimate processes did
        self.head = GENESIS
        self.authorized: set[str] = {GENESIS}  # the genesis and every candidate whose approval we signed
        self.revoked: set[str] = set()  # left by a rollback (signed, or automatic after a failed burn-in)
        self.autonomy = False
        self.signed: list[ev.Event] = []  # every signed record the operator appended (to replay)
        self.forged: set[int] = set()  # seqs of forged records the fold must flag (and did)
        self.swapped: set[str] = set()  # generations whose archived model.gguf is not the frozen bytes
        self.outcomes: dict[int, list[Any]] = {}  # window -> the candidates' outcomes

    def teardown(self) -> None:
        for closing in (self.router, self.app):
            if closing is not None:
                closing.close()
        for folder in (self.home, self.outside):
            for dirpath, _dirs, _files in os.walk(folder):  # sealed archives: folders a-w
                os.chmod(dirpath, 0o755)
            shutil.rmtree(folder, ignore_errors=True)

    # ------------------------------------------------------------------ plumbing

    @property
    def runner(self) -> App:
        assert self.app is not None
        return self.app

    def state(self) -> State:
        return self.runner.state()

    def phase(self) -> Phase:
        return self.state().phase

    def observe(self, events: list[ev.Event]) -> None:
        """What the legitimate processes appended: the model follows HEAD and the revocations."""
        pending = self.state().proposal  # after the events
        for e in events:
            note(f"  {type(e).__name__}")
            match e:
                case ev.Approved(autonomous=True):
                    assert self.autonomy, "an autonomous approval without a grant we signed"
                    assert pending is not None
                    self.authorized.add(pending.proposal.candidate)
                case ev.Promoted(generation=name):
                    assert name in self.authorized, f"{name} promoted without an approval we signed"
                    self.head = name
                    event("promoted")
                case ev.RolledBack(from_generation=source, to_generation=target):
                    assert target not in self.revoked, f"rolled back to revoked {target}"
                    if source != target:
                        self.revoked.add(source)
                    self.head = target
                    event("rolled back (automatic)" if e.automatic else "rolled back (signed)")
            if isinstance(e, (ev.Approved, ev.Rejected, ev.RolledBack, ev.AutonomyChanged)) and e.signature:
                self.signed.append(e)

    def legit(self, command: cmd.Command) -> list[ev.Event]:
        out = self.runner.execute(command).events
        self.observe(out)
        return out

    def beat_to(self, cycle: int) -> None:
        while self.state().cycle < cycle:
            self.agent_beats(1)

    def forge(self, events: list[ev.Event], label: str, may_apply: bool = False) -> None:
        """Append ``events`` raw; each must be flagged unless ``may_apply`` (something the agent
        may legitimately write). A forgery applied is the bug this test looks for."""
        first = append_raw(self.home, events)
        flagged = {f.seq: f.reason for f in fresh_state(self.home).flagged}
        for seq in range(first, first + len(events)):
            if seq in flagged:
                self.forged.add(seq)
                note(f"forged {label} at seq {seq}: flagged ({flagged[seq]})")
                event(f"flagged: {label}")
            else:
                assert may_apply, f"a forged {label} at seq {seq} was APPLIED by the verified fold"
                note(f"raw {label} at seq {seq}: applied (allowed)")
                event(f"applied (allowed): {label}")

    def checkpoint_fields(self) -> dict[str, Any]:
        seq, digest = tail(self.home)
        return dict(checkpoint_seq=seq, checkpoint_hash=digest)

    def failed_candidates(self, state: State) -> list[str]:
        return [c.id for c in state.candidates.values() if c.frozen and not c.passed]

    # ------------------------------------------------------------------ set-up

    @initialize()
    def init(self) -> None:
        make_workspace(self.home)
        self.app = App(self.home)
        self.router = Router(self.home, loader=FakeLoader())
        (self.outside / "model.gguf").write_bytes(EVIL)

    # ------------------------------------------------------------------ the agent (legitimate)

    @rule(n=st.integers(1, 4))
    def agent_beats(self, n: int) -> None:
        """`evo heartbeat`: a process of its own; never fails because of a forgery."""
        with App(self.home) as agent:
            out = agent.heartbeat(count=n).events
        for e in out:
            if isinstance(e, ev.WindowOpened):  # the period is config.toml's, not a cache's
                assert e.period == P and e.cycle % P == 0, e
        assert not any(isinstance(e, (ev.Promoted, ev.RolledBack)) for e in out)

    @rule()
    def agent_restarts_its_router(self) -> None:
        """The agent's serving process restarts: nothing verified is left in memory but what the
        new router loads (during burn-in, the hot standby)."""
        assert self.router is not None
        self.router.close()
        self.router = Router(self.home, loader=FakeLoader())

    # ------------------------------------------------------------------ the runner

    @rule(
        steps=st.integers(1, 20),
        outcomes=st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=2),
        similarities=st.lists(st.sampled_from([1.0, 0.9, 0.3]), max_size=3),
        answers=st.lists(st.sampled_from([(False, False, 1.0), (False, False, None), (True, False, None),
                                          (False, True, None)]), max_size=3),
        complete=st.booleans(),
    )
    def runner_acts(self, steps: int, outcomes: list[Any], similarities: list[float],
                    answers: list[tuple[bool, bool, float | None]], complete: bool) -> None:
        state = self.state()
        due = reactions(state)
        if state.phase is Phase.WINDOW:
            assert state.window is not None
            mine = self.outcomes.setdefault(state.window.number, outcomes)
            with self.runner.deferred():
                for _ in range(steps):
                    state = self.state()
                    if state.phase is not Phase.WINDOW:
                        break
                    command = runner_command(state, mine)
                    if isinstance(command, cmd.Freeze):
                        command = real_freeze(self.runner, command.candidate)
                    self.legit(command)
        elif state.phase is Phase.PROPOSED:
            for action in due:
                if isinstance(action, SelfApprove):
                    self.observe(rollout.self_approve(self.runner, AUTONOMOUS, action))
        elif state.phase is Phase.APPROVED:
            for action in due:
                if isinstance(action, StartShadow):
                    out = rollout.start_shadow(self.runner, CFG, action)
                    if action.generation in self.swapped:  # the runner checks bytes before a shadow
                        assert out == [], out
                        event("runner: no shadow of swapped bytes")
                    self.observe(out)
        elif state.phase is Phase.SHADOW:
            for i, similarity in enumerate(similarities):
                self.legit(cmd.RecordShadow(exact=similarity == 1.0, similarity=similarity, query_id=f"q{i}"))
            shadow = self.state().shadow
            if complete and shadow is not None:
                self.beat_to(shadow.until_cycle)
                for action in reactions(self.state()):
                    if isinstance(action, CompleteShadow):
                        self.observe(rollout.complete_shadow(self.runner, CFG, action))
        elif state.phase is Phase.BURN_IN:
            for i, (error, law, latency) in enumerate(answers):
                self.legit(cmd.RecordAnswer(error=error, law_violation=law, latency_ratio=latency, query_id=f"a{i}"))
            burn = self.state().burn_in
            if complete and burn is not None:
                self.beat_to(burn.until_cycle)
                for action in reactions(self.state()):
                    if isinstance(action, CompleteBurnIn):
                        self.observe(rollout.complete_burn_in(self.runner, CFG, action))

    @rule(data=st.data())
    def advance(self, data: st.DataObject) -> None:
        """The natural next step of whatever is in progress: the agent beats to the next window,
        the runner runs it, a willing operator approves, the shadow and burn-in go well."""
        phase = self.phase()
        if phase is Phase.IDLE:
            self.beat_to((self.state().cycle // P + 1) * P)
            phase = self.phase()
        if phase is Phase.WINDOW:
            outcomes = data.draw(st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=2), label="outcomes")
            self.runner_acts(50, outcomes, [], [], False)
        elif phase is Phase.PROPOSED:
            if self.autonomy:
                self.runner_acts(1, [], [], [], False)
            else:
                self.operator_decides(True)
        elif phase is Phase.APPROVED:
            self.runner_acts(1, [], [], [], False)
        elif phase is Phase.SHADOW:
            self.runner_acts(1, [], [1.0, 0.9], [], True)
        elif phase is Phase.BURN_IN:
            self.runner_acts(1, [], [], [(False, False, 1.0), (False, False, None)], True)

    # ------------------------------------------------------------------ the operator (signed)

    @precondition(lambda self: self.phase() is Phase.PROPOSED)
    @rule(approve=st.sampled_from([True, True, True, False]))
    def operator_decides(self, approve: bool) -> None:
        state = self.state()
        assert state.proposal is not None
        candidate = state.proposal.proposal.candidate
        decision = ProposalDecision("approve" if approve else "reject", "op", None,
                                    reason="" if approve else "tone drifts")
        signed = approvals.proposal_decision(self.runner, decision, CREDS)
        out = approvals.execute_signed(self.runner, signed, CREDS).events
        assert [type(e) for e in out] == [ev.Approved if approve else ev.Rejected]
        if approve:
            self.authorized.add(candidate)
        self.observe(out)

    @rule(to=st.sampled_from([None, GENESIS, "promoted", "revoked", "failed"]), now=st.integers(0, 2))
    def operator_rolls_back(self, to: str | None, now: int) -> None:
        if now:  # rarely: let most rollouts run their course
            return
        state = self.state()
        target: str | None = to
        if to == "promoted":
            target = state.promoted[-1]
        elif to == "revoked":
            target = sorted(self.revoked)[0] if self.revoked else None
        elif to == "failed":
            failed = self.failed_candidates(state)
            target = failed[0] if failed else None
        try:
            signed = approvals.rollback(self.runner, target, "operator says so", "op")
            out = approvals.execute_signed(self.runner, signed, CREDS).events
        except DomainError as exc:
            note(f"rollback to {target} refused: {exc}")
            assert target is None or target in self.revoked or target not in state.promoted or target == state.head
            return
        assert [type(e) for e in out] == [ev.RolledBack]
        assert target is None or out[0].to_generation == target  # type: ignore[attr-defined]
        self.observe(out)

    @rule(enabled=st.booleans(), now=st.integers(0, 2))
    def operator_autonomy(self, enabled: bool, now: int) -> None:
        if now:
            return
        try:
            signed = approvals.autonomy(self.runner, enabled, "op")
        except DomainError:
            assert enabled == self.autonomy
            return
        out = approvals.execute_signed(self.runner, signed, CREDS).events
        assert [type(e) for e in out] == [ev.AutonomyChanged]
        self.autonomy = enabled
        self.observe(out)

    # ------------------------------------------------------------------ the agent (hostile)

    def dispatch(self, group: list[str], data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(group), label="forgery")
        method = getattr(self, name)
        strategies = method.strategies
        kwargs = {k: data.draw(v, label=k) for k, v in strategies.items()} if strategies else {"data": data}
        note(f"agent: {name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items() if k != 'data')})")
        method(**kwargs)

    @rule(data=st.data(), n=st.integers(1, 3))
    def agent_appends_raw_records(self, data: st.DataObject, n: int) -> None:
        for _ in range(n):
            self.dispatch(RECORDS, data)

    @rule(data=st.data())
    def agent_edits_files(self, data: st.DataObject) -> None:
        self.dispatch(FILES, data)

    # ------------------------------------------------------------------ the agent (raw records)

    @forgery(RECORDS, how=st.sampled_from(["unsigned", "garbage", "replayed", "copied", "agent key", "autonomous"]))
    def forge_approval(self, how: str) -> None:
        state = fresh_state(self.home)
        pending = state.proposal
        digest = pending.hash if pending else fake_hash("no proposal")
        cp = self.checkpoint_fields()
        old = [e for e in self.signed if isinstance(e, ev.Approved)]
        may_apply = False
        if how == "replayed":
            if not old:
                return
            forged = old[-1]  # byte for byte
            # the same approval of the same proposal (an agent-withdrawn approval restored): harmless
            may_apply = pending is not None and forged.proposal_hash == pending.hash
        elif how == "copied":
            if not old:
                return
            forged = replace(old[0], proposal_hash=digest)  # another message's signature
        elif how == "agent key":
            message = (authority.proposal_message(state, "approve", cp["checkpoint_seq"], cp["checkpoint_hash"])
                       if pending else b"x")
            forged = ev.Approved(proposal_hash=digest, operator="agent", signature=agent_sign(message),
                                 key_id=AGENT_KID, **cp)
        elif how == "autonomous":
            forged = ev.Approved(proposal_hash=digest, operator=rollout.SCHEDULER, autonomous=True)
            # under a grant we signed the scheduler's approval is the agent's to write too
            may_apply = self.autonomy and state.phase is Phase.PROPOSED and pending is not None
        else:
            signature = "" if how == "unsigned" else GARBAGE_SIG
            forged = ev.Approved(proposal_hash=digest, operator="op", signature=signature,
                                 key_id=operator_key.KID, **cp)
        self.forge([forged], f"Approved ({how})", may_apply)
        if may_apply and pending is not None and fresh_state(self.home).proposal == replace(
            pending, approved_by=forged.operator, approval_signature=forged.signature,
            approval_key_id=forged.key_id, approval_autonomous=forged.autonomous,
        ):
            self.authorized.add(pending.proposal.candidate)

    @forgery(RECORDS, how=st.sampled_from(["withdraw", "other"]))
    def forge_refusal(self, how: str) -> None:
        """ApprovalRefused is the shell's record of a refused signature; the agent writing one
        can withdraw a pending approval (a denial of service: nothing is promoted by it)."""
        state = fresh_state(self.home)
        digest = state.proposal.hash if state.proposal and how == "withdraw" else fake_hash("other")
        forged = ev.ApprovalRefused(action="approve", proposal_hash=digest, operator="agent", key_id=AGENT_KID,
                                    reason="forged")
        self.forge([forged], "ApprovalRefused", may_apply=state.phase is not Phase.EMPTY)

    @forgery(RECORDS, which=st.sampled_from(["pending", "failed", "genesis", "revoked"]))
    def forge_promoted(self, which: str) -> None:
        state = fresh_state(self.home)
        pending = state.proposal
        name = {
            "pending": pending.proposal.candidate if pending else None,
            "failed": next(iter(self.failed_candidates(state)), None),
            "genesis": GENESIS,
            "revoked": next(iter(sorted(self.revoked)), None),
        }[which] or GENESIS
        forged = ev.Promoted(generation=name, previous_head=state.head or GENESIS,
                             proposal_hash=pending.hash if pending else fake_hash("p"),
                             cycle=state.cycle, burn_in_until=state.cycle + 1)
        self.forge([forged], f"Promoted ({which})")

    @forgery(RECORDS, how=st.sampled_from(["never promoted", "revoked", "unsigned earlier", "automatic", "replayed",
                                "re-targeted", "agent key"]))
    def forge_rollback(self, how: str) -> None:
        state = fresh_state(self.home)
        head = state.head or GENESIS
        cp = self.checkpoint_fields()
        earlier = [g for g in state.promoted if g != head and g not in state.revoked]
        old = [e for e in self.signed if isinstance(e, ev.RolledBack)]
        never = self.failed_candidates(state) + ([state.proposal.proposal.candidate] if state.proposal else [])
        never = [g for g in never if g not in state.promoted]
        if how == "never promoted":
            target = never[0] if never else "Luna-G099-nothing-c1"
            forged = ev.RolledBack(from_generation=head, to_generation=target, reason="agent", operator="agent")
        elif how == "revoked":  # the roll-forward
            if not self.revoked:
                return
            forged = ev.RolledBack(from_generation=head, to_generation=sorted(self.revoked)[0], reason="agent")
        elif how == "unsigned earlier":
            target = earlier[-1] if earlier else GENESIS
            forged = ev.RolledBack(from_generation=head, to_generation=target, reason="agent", operator="op",
                                   key_id=operator_key.KID, **cp)
        elif how == "automatic":
            target = earlier[-1] if earlier else GENESIS
            forged = ev.RolledBack(from_generation=head, to_generation=target, reason="burn-in failed",
                                   automatic=True)
        elif how == "replayed":
            if not old:
                return
            forged = old[-1]
        elif how == "re-targeted":  # an operator signature moved onto another rollback
            if not old:
                return
            target = sorted(self.revoked)[0] if self.revoked else (never[0] if never else GENESIS)
            forged = replace(old[-1], from_generation=head, to_generation=target)
        else:
            target = earlier[-1] if earlier else GENESIS
            message = authority.rollback_message(state.ledger_id, head, target, cp["checkpoint_seq"],
                                                 cp["checkpoint_hash"])
            forged = ev.RolledBack(from_generation=head, to_generation=target, reason="agent", operator="agent",
                                   signature=agent_sign(message), key_id=AGENT_KID, **cp)
        if forged.from_generation == forged.to_generation and any(
            o.signature == forged.signature and (o.from_generation, o.to_generation) == (head, head) for o in old
        ):
            event("not generated here (pinned by its own test below): a signed abort replayed")
            return
        self.forge([forged], f"RolledBack ({how})")

    @forgery(RECORDS, how=st.sampled_from(["failed candidate", "other hash", "replayed"]))
    def forge_proposed(self, how: str) -> None:
        state = fresh_state(self.home)
        old = [e for e in ledger_events(self.home) if isinstance(e, ev.Proposed)]
        try:
            draft, _ = draft_proposal(state) if state.phase is Phase.WINDOW else (None, "")
        except Exception:
            draft = None
        base = draft or (old[-1].proposal if old else None)
        if base is None:
            return
        if how == "failed candidate":
            failed = self.failed_candidates(state)
            if not failed:
                return
            proposal = replace(base, candidate=failed[-1])
            forged = ev.Proposed(proposal=proposal, proposal_hash=proposal_hash(proposal))
        elif how == "other hash":
            other = old[0].proposal_hash if old else fake_hash("another proposal")
            if draft is not None and other == proposal_hash(draft):
                other = fake_hash("another proposal")
            forged = ev.Proposed(proposal=base, proposal_hash=other)
        else:
            if not old:
                return
            forged = old[-1]
            if draft is not None and forged.proposal == draft:
                return  # the runner's own record: nothing forged about it
        self.forge([forged], f"Proposed ({how})")

    @forgery(RECORDS, which=st.sampled_from(["head", "failed", "pending"]))
    def forge_burn_in_passed(self, which: str) -> None:
        state = fresh_state(self.home)
        name = {
            "head": state.head,
            "failed": next(iter(self.failed_candidates(state)), None),
            "pending": state.proposal.proposal.candidate if state.proposal else None,
        }[which] or GENESIS
        if state.phase is Phase.BURN_IN and state.burn_in is not None and state.burn_in.generation == name:
            event("not generated here (pinned by its own test below): BurnInPassed of the generation under burn-in")
            return
        self.forge([ev.BurnInPassed(generation=name, answers=99)], f"BurnInPassed ({which})")

    @forgery(RECORDS, how=st.sampled_from(["replayed", "unsigned", "agent key"]))
    def forge_autonomy(self, how: str) -> None:
        state = fresh_state(self.home)
        cp = self.checkpoint_fields()
        old = [e for e in self.signed if isinstance(e, ev.AutonomyChanged)]
        if how == "replayed":
            if not old:
                return
            forged = next((e for e in old if e.enabled), old[0])  # a grant, revoked or not
        else:
            enabled, nonce = not state.autonomy, state.autonomy_changes
            message = authority.autonomy_message(state.ledger_id, enabled, nonce, cp["checkpoint_seq"],
                                                 cp["checkpoint_hash"])
            signature, kid = ("", "") if how == "unsigned" else (agent_sign(message), AGENT_KID)
            forged = ev.AutonomyChanged(enabled=enabled, operator="agent", key_id=kid, signature=signature,
                                        nonce=nonce, **cp)
        self.forge([forged], f"AutonomyChanged ({how})")

    @forgery(RECORDS, how=st.sampled_from(["unsigned", "self-signed", "operator's id, garbage", "revoke operator",
                                "revoke operator, self-signed"]))
    def forge_trust(self, how: str) -> None:
        state = fresh_state(self.home)
        cp = self.checkpoint_fields()
        public = AGENT_PUBLIC.hex()
        if how.startswith("revoke"):
            message = authority.trust_message(state.ledger_id, "revoke", operator_key.KID, "",
                                              cp["checkpoint_seq"], cp["checkpoint_hash"])
            signer, signature = ("", "") if how == "revoke operator" else (AGENT_KID, agent_sign(message))
            forged: ev.Event = ev.KeyRevoked(key_id=operator_key.KID, operator="agent", reason="agent",
                                             signer=signer, signature=signature, **cp)
        else:
            message = authority.trust_message(state.ledger_id, "add", AGENT_KID, public,
                                              cp["checkpoint_seq"], cp["checkpoint_hash"])
            signer, signature = {
                "unsigned": ("", ""),
                "self-signed": (AGENT_KID, agent_sign(message)),
                "operator's id, garbage": (operator_key.KID, GARBAGE_SIG),
            }[how]
            forged = ev.KeyTrusted(key_id=AGENT_KID, public=public, operator="agent", signer=signer,
                                   signature=signature, **cp)
        self.forge([forged], f"trust ({how})")

    @forgery(RECORDS, which=st.sampled_from(["pending", "failed", "genesis"]))
    def forge_shadow_started(self, which: str) -> None:
        state = fresh_state(self.home)
        pending = state.proposal
        name = {
            "pending": pending.proposal.candidate if pending else None,
            "failed": next(iter(self.failed_candidates(state)), None),
            "genesis": GENESIS,
        }[which] or GENESIS
        # the runner's record: the agent may start the shadow of the approved candidate (the
        # bytes are checked again when the router loads it, and at every load after a cutover)
        approved = state.phase is Phase.APPROVED and pending is not None and pending.approved_by is not None
        may_apply = approved and pending is not None and name == pending.proposal.candidate
        forged = ev.ShadowStarted(generation=name, start_cycle=state.cycle, until_cycle=state.cycle + 1,
                                  traffic_percent=100.0)
        self.forge([forged], f"ShadowStarted ({which})", may_apply)

    @forgery(RECORDS, outcome=st.sampled_from(["passed", "failed"]))
    def forge_shadow_completed(self, outcome: str) -> None:
        state = fresh_state(self.home)
        if state.phase is Phase.SHADOW:
            event("not generated here (pinned by its own test below): ShadowCompleted during a shadow")
            return
        name = state.proposal.proposal.candidate if state.proposal else GENESIS
        forged = ev.ShadowCompleted(generation=name, outcome=outcome, samples=99, parity=1.0,  # type: ignore[arg-type]
                                    threshold=0.5)
        self.forge([forged], f"ShadowCompleted ({outcome})")

    @forgery(RECORDS)
    def forge_candidate_frozen(self, data: st.DataObject) -> None:
        """A verdict that is not the candidate's (a failed one frozen as PASS, a passing one as
        FAIL), with the agent's own archive."""
        state = fresh_state(self.home)
        cands = sorted(state.candidates)
        if not cands:
            return
        cid = data.draw(st.sampled_from(cands), label="candidate")
        cand = state.candidates[cid]
        status = "FAIL - forged" if cand.passed else "PASS"
        forged = ev.CandidateFrozen(candidate=cid, status=status, archive=os.fspath(self.outside),
                                    archive_hash=fake_hash("evil archive"), model_hash=fake_hash("evil"))
        self.forge([forged], "CandidateFrozen (wrong verdict)")

    @forgery(RECORDS)
    def forge_gate_evaluated(self, data: st.DataObject) -> None:
        """Gates that do not follow from the metrics: every gate passed over law-breaking,
        recall-losing metrics (or a failing verdict over better ones)."""
        state = fresh_state(self.home)
        old = [e for e in ledger_events(self.home) if isinstance(e, ev.GateEvaluated)]
        if not old:
            return
        base = data.draw(st.sampled_from(old), label="evaluation")
        cands = [c.id for c in state.window_candidates()] if state.window else []
        cid = data.draw(st.sampled_from(cands), label="candidate") if cands else base.candidate
        window = state.window
        if state.phase is Phase.WINDOW and window is not None and window.baseline is None:
            event("not generated here (pinned by its own test below): GateEvaluated before the window's baseline")
            return
        metrics: Metrics
        if base.passed:
            metrics, gates, passed = BAD_RECALL_LAWS, base.gates, True
        else:
            metrics, passed = BETTER, False
            gates = tuple(replace(g, passed=False) for g in base.gates)
        forged = ev.GateEvaluated(candidate=cid, metrics=metrics, gates=gates, passed=passed, score=9.0)
        self.forge([forged], "GateEvaluated (gates not from metrics)")

    @forgery(RECORDS, ahead=st.integers(-2, 3))
    def raw_heartbeat(self, ahead: int) -> None:
        """The agent's own record: a later cycle applies (the agent owns the clock), an earlier
        or equal one is flagged."""
        state = fresh_state(self.home)
        self.forge([ev.Heartbeat(cycle=max(0, state.cycle + ahead))], "Heartbeat", may_apply=ahead > 0)

    # ------------------------------------------------------------------ the agent (files)

    @forgery(FILES, autonomous=st.booleans())
    def edit_config_trust(self, autonomous: bool) -> None:
        """config.toml "trusts" the agent's key (and turns approval.autonomous on): it grants nothing."""
        approval = CFG.approval.model_copy(update={
            "trusted_keys": (f"ed25519:{AGENT_PUBLIC.hex()} agent",), "autonomous": autonomous,
        })
        (self.home / "config.toml").write_text(render_config(CFG.model_copy(update={"approval": approval})))
        event("config.toml trusts the agent's key")

    @forgery(FILES, how=st.sampled_from(["garbage", "forged state"]))
    def forge_snapshot(self, how: str) -> None:
        seq, digest = tail(self.home)
        path = self.home / "snapshots"
        if how == "garbage":
            path.mkdir(exist_ok=True)
            (path / f"{seq:012d}.snap").write_bytes(b"\x00garbage{")
            return
        state = fresh_state(self.home)
        failed = self.failed_candidates(state)
        evil = replace(
            state,
            head=failed[0] if failed else "Luna-G099-evil-c1",
            keys={**state.keys, AGENT_KID: replace(next(iter(state.keys.values())), key_id=AGENT_KID,
                                                   public=AGENT_PUBLIC.hex())},
            flagged=(),
            revoked=(),
        )
        offset = os.path.getsize(self.home / "ledger.jsonl")
        version = verified_fold(Ledger(self.home, fsync=False)).version
        write_snapshot(self.home, Snapshot(version=version, seq=seq, hash=digest, offset=offset,
                                           state=msgspec.Raw(msgspec.json.encode(evil))))
        event("forged snapshot")

    @forgery(FILES, how=st.sampled_from(["garbage", "period 1"]))
    def forge_settings_cache(self, how: str) -> None:
        folder = self.home / ".evo"
        folder.mkdir(exist_ok=True)
        data = b"{not json" if how == "garbage" else json.dumps(
            {"agent_name": AGENT, "evo_period_cycles": 1, "snapshot_every": 1}).encode()
        (folder / "settings.json").write_bytes(data)

    @forgery(FILES, to=st.sampled_from(["failed", "pending", "outside", "nothing"]))
    def swap_head_link(self, to: str) -> None:
        state = fresh_state(self.home)
        failed = self.failed_candidates(state)
        target = {
            "failed": links.link_target(failed[0]) if failed else None,
            "pending": links.link_target(state.proposal.proposal.candidate) if state.proposal else None,
            "outside": os.fspath(self.outside),
            "nothing": "archive/nothing",
        }[to]
        if target is not None:
            links.point(self.home / "models" / f"{AGENT}-GHEAD", target)

    @forgery(FILES, which=st.sampled_from(["head", "pending", "pending", "genesis", "failed", "standby"]),
             listing=st.booleans())
    def swap_model(self, which: str, listing: bool) -> None:
        """Replace an archived model.gguf (the agent owns the files: a seal does not stop it),
        with hashes.csv rewritten to match or not."""
        state = fresh_state(self.home)
        failed = self.failed_candidates(state)
        name = {
            "head": state.head,
            "pending": state.proposal.proposal.candidate if state.proposal else None,
            "genesis": GENESIS,
            "failed": failed[0] if failed else None,
            "standby": state.burn_in.previous_head if state.burn_in else state.parent,
        }[which]
        if name is None:
            return
        self.write_model(name, EVIL, listing)
        self.swapped.add(name)
        event(f"swapped model.gguf ({which})")

    @forgery(FILES)
    def restore_model(self, data: st.DataObject) -> None:
        """The agent puts the frozen bytes back (hashes.csv too): served again."""
        if not self.swapped:
            return
        name = data.draw(st.sampled_from(sorted(self.swapped)), label="restore")
        self.write_model(name, gguf_bytes(name), listing=True)
        self.swapped.discard(name)

    def write_model(self, name: str, data: bytes, listing: bool) -> None:
        folder = self.home / "models" / "archive" / name
        os.chmod(folder, 0o755)
        tmp = folder / ".new"
        tmp.write_bytes(data)
        os.chmod(tmp, 0o444)
        os.replace(tmp, folder / "model.gguf")
        if listing and (folder / "hashes.csv").exists():  # the genesis has none
            (folder / "hashes.csv").unlink()
            (folder / "hashes.csv").write_text(hashes_csv(folder))
            os.chmod(folder / "hashes.csv", 0o444)
        os.chmod(folder, 0o555)

    # ------------------------------------------------------------------ invariants

    @invariant()
    def head_is_an_authorized_unrevoked_generation(self) -> None:
        if self.app is None:
            return
        state = fresh_state(self.home)
        assert state.head == self.head, (state.head, self.head)
        assert state.head in self.authorized, f"HEAD {state.head} was never approved by the operator"
        assert state.head not in self.revoked and state.head not in state.revoked
        assert set(self.revoked) == set(state.revoked), (self.revoked, state.revoked)
        assert AGENT_KID not in state.keys and operator_key.KID in state.keys
        assert state.autonomy == self.autonomy
        for name in state.promoted:
            assert name in self.authorized, name

    @invariant()
    def every_forgery_is_flagged_and_named_by_evo_verify(self) -> None:
        if self.app is None:
            return
        state = fresh_state(self.home)
        flagged = {f.seq for f in state.flagged}
        assert flagged == self.forged, (sorted(flagged ^ self.forged), state.flagged)
        report = audit(self.home)
        assert problem_seqs(report.problems) == self.forged, report.problems
        assert report.ok == (not self.forged)

    @invariant()
    def routers_serve_only_the_recorded_bytes_of_head(self) -> None:
        if self.router is None:
            return
        head = self.head
        with Router(self.home, loader=FakeLoader()) as fresh:
            assert fresh.head() == head
            self.check_served(fresh, head, "a fresh router")
        # the agent's long-lived router: HEAD, or the last verified generation it holds
        assert self.router.head() == head
        self.check_served(self.router, head, "the long-lived router")

    def check_served(self, router: Router, head: str, who: str) -> None:
        """``router`` answers with HEAD's recorded bytes; HEAD swapped: it refuses, or the last
        verified generation it holds (the hot standby during burn-in) answers."""
        try:
            answer = router.answer("hi")
        except ServingError as exc:
            assert head in self.swapped, exc
            assert "hash mismatch" in str(exc), exc
            event(f"{who} refuses HEAD's swapped bytes")
            return
        assert answer.text == answer.generation, f"{who} served bytes other than {answer.generation}'s"
        if answer.generation != head:
            assert head in self.swapped, (answer.generation, head)
            assert answer.generation in self.authorized and answer.generation not in self.revoked
            assert router.refused > 0 and "hash mismatch" in router.last_refusal
            event(f"{who}: the last verified generation answers")
        else:
            event(f"{who} serves HEAD")


HostileAgent.TestCase.settings = settings(
    max_examples=20,  # about 8 s here
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestHostileAgent = HostileAgent.TestCase


# ---------------------------------------------------------------- known gaps (strict xfails)


def run_window(app: App) -> None:
    """The agent beats to the next window; the runner runs it (a passing and a failing candidate)."""
    app.heartbeat(count=P - app.state().cycle % P)
    while app.state().phase is Phase.WINDOW:
        command = runner_command(app.state(), [GOOD, BAD_RECALL_LAWS])
        if isinstance(command, cmd.Freeze):
            command = real_freeze(app, command.candidate)
        app.execute(command)


def rollout_to(home: Path, phase: Phase) -> App:
    """A workspace whose first rollout is at ``phase`` (``proposed``, ``shadow`` or ``burn_in``),
    driven by the legitimate processes only."""
    make_workspace(home)
    app = App(home)
    run_window(app)
    if phase is Phase.WINDOW or app.state().phase is phase:
        return app
    approvals.execute_signed(app, approvals.proposal_decision(app, ProposalDecision("approve", "op", None), CREDS), CREDS)
    app.execute(cmd.StartShadow(config=CFG))
    if phase is Phase.SHADOW:
        return app
    for i in range(2):
        app.execute(cmd.RecordShadow(exact=True, similarity=1.0, query_id=f"q{i}"))
    while app.state().cycle < (app.state().shadow.until_cycle):  # type: ignore[union-attr]
        app.heartbeat()
    app.execute(cmd.CompleteShadow(config=CFG))
    assert app.state().phase is phase
    return app


def flagged_seqs(home: Path) -> set[int]:
    return {f.seq for f in fresh_state(home).flagged}


def gap(reason: str) -> Any:
    """A gap the machine found, closed since: the test pins it (the reason says what it was)."""
    return lambda test: test


@gap("ShadowCompleted is admitted on its phase alone: a raw 'passed' with no samples, then a raw "
     "Promoted, cut the approved candidate over without its shadow")
def test_a_forged_shadow_pass_and_its_promotion_are_flagged(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with rollout_to(home, Phase.SHADOW) as app:
        state = app.state()
    assert state.shadow is not None and state.proposal is not None and state.shadow.samples == 0
    cand = state.shadow.generation
    first = append_raw(home, [ev.ShadowCompleted(generation=cand, outcome="passed", samples=0, parity=1.0,
                                                 threshold=0.5)])
    second = append_raw(home, [ev.Promoted(generation=cand, previous_head=GENESIS, proposal_hash=state.proposal.hash,
                                           cycle=state.cycle, burn_in_until=state.cycle + 1)])
    after = fresh_state(home)
    assert after.head == GENESIS and after.phase is Phase.SHADOW
    assert {first, second} <= flagged_seqs(home)


@gap("ShadowCompleted is admitted on its phase alone: a raw 'failed' ends the approved rollout "
     "(a denial of service, nothing served changes)")
def test_a_forged_shadow_failure_is_flagged(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with rollout_to(home, Phase.SHADOW) as app:
        cand = app.state().shadow.generation  # type: ignore[union-attr]
    seq = append_raw(home, [ev.ShadowCompleted(generation=cand, outcome="failed", samples=0, parity=0.0,
                                               threshold=0.5)])
    assert seq in flagged_seqs(home) and fresh_state(home).phase is Phase.SHADOW


@gap("BurnInPassed is admitted when it names the generation under burn-in: the agent ends the "
     "burn-in at once, so a failing new HEAD is never rolled back automatically")
def test_a_forged_burn_in_pass_is_flagged(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with rollout_to(home, Phase.BURN_IN) as app:
        generation = app.state().head
    assert generation is not None
    seq = append_raw(home, [ev.BurnInPassed(generation=generation, answers=99)])
    assert seq in flagged_seqs(home) and fresh_state(home).phase is Phase.BURN_IN


@gap("BurnInFailed is admitted when it names the generation under burn-in, and then an unsigned "
     "automatic RolledBack: the agent rolls back and revokes a generation the operator approved")
def test_a_forged_burn_in_failure_and_its_automatic_rollback_are_flagged(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with rollout_to(home, Phase.BURN_IN) as app:
        generation = app.state().head
    assert generation is not None
    first = append_raw(home, [
        ev.BurnInFailed(generation=generation, reason="agent"),
        ev.RolledBack(from_generation=generation, to_generation=GENESIS, reason="agent", automatic=True),
    ])
    after = fresh_state(home)
    assert after.head == generation and after.revoked == ()
    assert {first, first + 1} <= flagged_seqs(home)


@gap("_gates_problem returns None while the window has no baseline: gates that do not follow from "
     "their metrics are applied, and make an untrained candidate EVALUATED and passed")
def test_gates_forged_before_the_baseline_are_flagged(tmp_path: Path) -> None:
    home = tmp_path / "home"
    make_workspace(home)
    with App(home) as app:
        app.heartbeat(count=P)
        app.execute(cmd.SpawnCandidates(config=CFG))
        state = app.state()
    assert state.window is not None and state.window.baseline is None
    cid = state.window.candidates[0]
    from evo_core.values import GateResult

    everything = tuple(GateResult(name=n, passed=True, threshold=0.0, value=1.0, margin=1.0)
                       for n in ("recall", "generalize", "tone", "laws", "budget"))
    seq = append_raw(home, [ev.GateEvaluated(candidate=cid, metrics=BAD_RECALL_LAWS, gates=everything, passed=True,
                                             score=9.0)])
    assert seq in flagged_seqs(home)
    assert fresh_state(home).candidates[cid].status is CandidateStatus.SPAWNED


@gap("GateEvaluated is not checked against the candidate's status: another candidate's evaluation, "
     "copied onto a candidate never trained, is applied (it can then be ranked, frozen as PASS, proposed)")
def test_an_evaluation_of_an_untrained_candidate_is_flagged(tmp_path: Path) -> None:
    home = tmp_path / "home"
    make_workspace(home)
    with App(home) as app:
        app.heartbeat(count=P)
        app.execute(cmd.SpawnCandidates(config=CFG))
        app.execute(runner_command(app.state(), [GOOD]))  # the baseline
        trained, untrained = app.state().window.candidates  # type: ignore[union-attr]
        app.execute(cmd.StartTraining(candidate=trained))
        used = BudgetUsed(steps=10, walltime_minutes=1.0, tokens_processed=100)
        app.execute(cmd.FinishTraining(candidate=trained, stats=TrainingStats(), budget_used=used))
        out = app.execute(cmd.RecordEvaluation(candidate=trained, metrics=BETTER, config=CFG)).events
    (evaluation,) = [e for e in out if isinstance(e, ev.GateEvaluated)]
    seq = append_raw(home, [replace(evaluation, candidate=untrained)])
    assert seq in flagged_seqs(home)
    assert fresh_state(home).candidates[untrained].status is CandidateStatus.SPAWNED


@gap("CandidateFrozen is admitted when its verdict is right, even for a candidate already frozen: the "
     "agent re-records the archive hashes before the proposal (the operator then signs the agent's hashes)")
def test_a_second_freeze_of_a_candidate_is_flagged(tmp_path: Path) -> None:
    home = tmp_path / "home"
    make_workspace(home)
    with App(home) as app:
        app.heartbeat(count=P)
        while not isinstance(command := runner_command(app.state(), [GOOD, BETTER]), cmd.Propose):
            if isinstance(command, cmd.Freeze):
                command = real_freeze(app, command.candidate)
            app.execute(command)
        state = app.state()
    assert state.window is not None and state.window.ranking is not None
    cand = state.candidates[state.window.ranking[0]]
    seq = append_raw(home, [ev.CandidateFrozen(candidate=cand.id, status=cand.verdict, archive=cand.archive,
                                               archive_hash=fake_hash("agent's archive"),
                                               model_hash=fake_hash("agent's model"))])
    assert seq in flagged_seqs(home)
    assert fresh_state(home).candidates[cand.id].archive_hash == cand.archive_hash


@gap("ApprovalRefused is admitted on its phase alone: a raw one naming the pending proposal withdraws "
     "the operator's verified approval (a denial of service; the shell never writes one since refuse() "
     "guards against it)")
def test_a_forged_refusal_does_not_withdraw_a_verified_approval(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with rollout_to(home, Phase.PROPOSED) as app:
        decision = approvals.proposal_decision(app, ProposalDecision("approve", "op", None), CREDS)
        approvals.execute_signed(app, decision, CREDS)
        state = app.state()
    assert state.phase is Phase.APPROVED and state.proposal is not None
    seq = append_raw(home, [ev.ApprovalRefused(action="approve", proposal_hash=state.proposal.hash,
                                               operator="agent", key_id=AGENT_KID, reason="forged")])
    assert seq in flagged_seqs(home) and fresh_state(home).phase is Phase.APPROVED


@gap("a signed rollback is not single-use: the operator's abort (HEAD to HEAD) replayed byte for byte "
     "during a later rollout is admitted and ends it (a denial of service; _rollback_problem accepts a "
     "target equal to HEAD, and the rollback message has no nonce)")
def test_a_replayed_abort_is_flagged(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with rollout_to(home, Phase.SHADOW) as app:
        out = approvals.execute_signed(app, approvals.rollback(app, None, "abort", "op"), CREDS).events
        (abort,) = out
        assert isinstance(abort, ev.RolledBack) and abort.from_generation == abort.to_generation == GENESIS
        run_window(app)
        assert app.state().phase is Phase.PROPOSED
    seq = append_raw(home, [abort])
    assert seq in flagged_seqs(home) and fresh_state(home).phase is Phase.PROPOSED
