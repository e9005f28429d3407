"""The trivial model of HEAD that both stateful machines check the core against.

It knows only what each rule meant to do: the phase, HEAD, the promoted generations in order,
each one's parent, the proposal in flight, the shadow's samples and the burn-in's answers. It
decides shadow and burn-in verdicts and rollback targets with its own few lines of arithmetic
(never the core's code), so a disagreement with the core shows up as a failing invariant. The
machines drive it: they tell it what the ledger recorded and ask it what should have been."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from evo_core.config import EvoConfig

Answer = tuple[bool, bool, float | None]  # (error, law violation, latency ratio)


def gen_of(name: str) -> int:
    match = re.match(r"^Luna-G(\d{3})-", name)
    assert match, name
    return int(match.group(1))


@dataclass
class HeadModel:
    phase: str = "empty"
    head: str | None = None
    promoted: list[str] = field(default_factory=list)
    parent_of: dict[str, str | None] = field(default_factory=dict)
    window_head: str | None = None  # HEAD when the window opened
    proposed: str | None = None
    burn_prev: str | None = None  # HEAD before the last promotion: where a failed burn-in goes
    samples: list[float] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)  # generations a rollback took off HEAD (issue 13)

    def register(self, genesis: str) -> None:
        assert self.phase == "empty"
        self.head, self.promoted, self.parent_of, self.phase = genesis, [genesis], {genesis: None}, "idle"

    def open_window(self) -> None:
        assert self.phase == "idle"
        self.phase, self.window_head = "window", self.head

    def propose(self, candidate: str) -> None:
        self.phase, self.proposed = "proposed", candidate
        self.parent_of[candidate] = self.window_head

    # ------------------------------------------------------------------ shadow and cutover

    def start_shadow(self) -> None:
        self.phase, self.samples = "shadow", []

    def shadow_verdict(self, cfg: EvoConfig) -> str:
        s, n = cfg.shadow, len(self.samples)
        if n < s.min_samples:
            return "inconclusive"
        return "failed" if sum(self.samples) / n < s.parity_threshold else "passed"

    def complete_shadow(self, verdict: str) -> None:
        if verdict == "failed":
            self.phase = "idle"
        elif verdict == "passed":  # the cutover
            assert self.proposed is not None and self.proposed not in self.promoted
            self.burn_prev, self.head = self.head, self.proposed
            self.promoted.append(self.proposed)
            self.phase, self.answers = "burn_in", []

    # ------------------------------------------------------------------ burn-in

    def burn_in_verdict(self, cfg: EvoConfig) -> str:
        b, n = cfg.burn_in, len(self.answers)
        if n < b.min_answers:
            return "extended"
        ratios = [r for _, _, r in self.answers if r is not None]
        failed = (sum(e for e, _, _ in self.answers) / n > b.max_error_rate
                  or sum(law for _, law, _ in self.answers) > b.max_law_violations
                  or (bool(ratios) and sum(ratios) / len(ratios) > b.max_latency_ratio))
        return "failed" if failed else "passed"

    def complete_burn_in(self, verdict: str) -> None:
        if verdict == "extended":
            return
        if verdict == "failed":  # the automatic rollback
            assert self.burn_prev is not None and self.head is not None
            self.revoked.append(self.head)
            self.head = self.burn_prev
        self.phase = "idle"

    # ------------------------------------------------------------------ the operator's rollback

    def expected_rollback(self, to: str | None) -> str | None:
        """Where ``Rollback(to=to)`` must take HEAD now; None when it must be refused."""
        if self.head is None:
            return None
        aborting = self.phase in ("approved", "shadow")
        want: str | None
        live = [g for g in self.promoted if g not in self.revoked]
        if to is not None:
            if to in self.revoked:
                return None
            matches = [g for g in live if g == to] or [g for g in live if g.startswith(to)]
            if len(matches) != 1:
                return None
            want = matches[0]
        elif aborting:
            want = self.head
        elif self.phase == "burn_in":
            want = self.burn_prev
        else:
            earlier = [g for g in live if gen_of(g) < gen_of(self.head)]
            if not earlier:
                return None
            want = max(earlier, key=lambda g: (gen_of(g), self.promoted.index(g)))
        if want == self.head and not aborting:
            return None
        return want

    def roll_back(self, to_generation: str) -> None:
        if self.head is not None and self.head != to_generation:
            self.revoked.append(self.head)
        self.head = to_generation
        if self.phase != "window":
            self.phase = "idle"
