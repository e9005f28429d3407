"""The configuration (``<home>/config.toml``) as pydantic models with the spec's defaults.

``parse_config(text)`` validates TOML text and raises ``ConfigError`` whose message is one
line naming the field, what is wrong and the value given. ``render_config`` writes the
commented default file that ``evo init`` puts in a workspace. Importing this module costs
~70 ms (pydantic); the heartbeat path never does (see ``adapters.runtime.workspace``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from evo_core import config_file
from evo_core.config_file import ConfigError as ConfigError  # re-exported: its home is pydantic-free
from evo_core.config_file import parse_toml
from evo_core.values import BudgetLimits

HARD_CAP = 8  # the most students one window may ever train at once, whatever the config says
Strategy = Literal["recent_weighted", "uniform_sample", "high_karma_weighted"]
STRATEGIES: tuple[Strategy, ...] = ("recent_weighted", "uniform_sample", "high_karma_weighted")


class _Section(BaseModel):
    """Strict: a value must have its field's type in TOML itself (``autonomous = "yes"``,
    ``steps = "600"``, ``max_steps = 2000.0`` or ``cycles = true`` is an error, never coerced);
    an integer is still a valid float. Lists of names (TOML arrays) become tuples."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


class BudgetConfig(_Section):
    """Hard limits per candidate; the first breach hard-fails it (spec: Budget)."""

    max_steps: int = Field(2000, gt=0, description="optimizer steps")
    max_walltime_minutes: float = Field(60.0, gt=0, description="wall time of the training run")
    max_gpu_memory_gb: float = Field(
        12.0, gt=0, description="peak allocated CUDA memory (CPU: peak resident memory)"
    )
    max_tokens_processed: int = Field(10_000_000, gt=0, description="tokens through the student")
    max_disk_gb: float = Field(5.0, gt=0, description="size of the candidate's output folder")

    def limits(self) -> BudgetLimits:
        return BudgetLimits(**self.model_dump())


class GateConfig(_Section):
    """Gate tolerances (spec: epsilon, delta, theta), held to a one-sided confidence bound.

    A gate passes only when the evidence supports it at ``confidence``: recall when the upper
    bound of HEAD's recall minus the candidate's, paired over the same facts, is <= epsilon;
    generalize when the lower bound of the candidate's minus HEAD's is >= delta (Tango's score
    bound, see ``evo_core.gates``). epsilon is 0.15, not the spec's 0.05: with the demo's 30
    recall facts no sound bound can show a drop <= 0.05 even for a candidate equal to HEAD
    (30 of 30 each: upper bound 0.083), and losing 1 fact of 30 has an upper bound of 0.136,
    so 0.15 is the smallest round tolerance under which one unlucky answer does not fail the
    gate (losing 2 of 30, 0.183, still does; with 60 facts losing 4, 0.140, passes). delta and
    theta keep the spec's values: 1 more item right of 30 has a lower bound of -0.052 < 0.02.
    """

    epsilon: float = Field(
        0.15, ge=0, description="recall: the upper bound of HEAD's minus the candidate's must be <= this"
    )
    delta: float = Field(
        0.02, ge=0, description="generalize: the lower bound of the candidate's minus HEAD's must be >= this"
    )
    theta: float = Field(0.05, ge=0, le=1, description="tone drift (mean over the tone prompts) must stay at or under this")
    confidence: float = Field(
        0.95, ge=0.5, lt=1, description="one-sided confidence of the recall / generalize bounds (0.5: the raw difference)"
    )


class ScoreConfig(_Section):
    """Composite score = recall*recall + generalize*generalize + tone*(1 - tone_drift)."""

    recall: float = Field(0.4, ge=0)
    generalize: float = Field(0.4, ge=0)
    tone: float = Field(0.2, ge=0)

    def weights(self) -> tuple[float, float, float]:
        return (self.recall, self.generalize, self.tone)


class DistillConfig(_Section):
    """Two-teacher distillation (spec: alpha, beta, temperature), each teacher only where it knows
    the material: new conversations train on hard labels alone (weight alpha + beta), replay of
    what G(N) learned is distilled from G(N), older replay from the blend of G(N) and G(N-1)."""

    alpha: float = Field(0.5, ge=0, description="weight of the hard-label loss on replay (spec: 0.1; README: why 0.5)")
    beta: float = Field(0.5, ge=0, description="weight of the distillation loss on replay (spec: 0.9; README: why 0.5)")
    temperature: float = Field(2.0, gt=0, description="softmax temperature of the KD targets")
    stabilizer_weight: float = Field(
        0.3, ge=0, le=1, description="share of G(N-1) in the blended teacher targets"
    )
    scope: Literal["known", "all"] = Field(
        "known",
        description='"known": each teacher only on material it knows (new conversations: hard labels); '
        '"all": the spec\'s literal formula, both teachers on every example (new facts are not learned)',
    )


class TrainConfig(_Section):
    """How each student is trained (the budget above is the hard ceiling, this is the plan)."""

    steps: int = Field(600, gt=0, description="planned optimizer steps per candidate")
    batch_size: int = Field(8, gt=0)
    max_seq_len: int = Field(128, ge=8, description="tokens per example (longer ones are cut)")
    learning_rate: float = Field(3e-3, gt=0, description="peak learning rate (after the warm-up)")
    warmup_steps: int = Field(30, ge=0, description="linear warm-up from 0 to the peak learning rate")
    schedule: Literal["cosine", "linear", "constant"] = Field(
        "cosine", description="decay after the warm-up, down to min_lr_ratio x the peak at the last step"
    )
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="the learning rate at the last step, over the peak")
    max_grad_norm: float = Field(1.0, ge=0, description="clip the gradient's global L2 norm to this (0: off)")
    divergence_factor: float = Field(
        3.0, gt=1, description="fail the candidate when its smoothed loss climbs above this x its best"
    )
    lora_r: int = Field(16, gt=0)
    lora_alpha: int = Field(32, gt=0)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: tuple[str, ...] = Field(
        ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        strict=False,  # a TOML array; its items stay strings (pydantic never makes one from a number)
        min_length=1,
        description="LoRA targets (attention and MLP: attention alone barely learns new facts)",
    )
    teacher_top_k: int = Field(64, gt=0, description="teacher logits kept per token (cache)")
    new_per_branch: int = Field(200, gt=0, description="new conversations each branch samples")
    replay_size: int = Field(300, ge=0, description="replay buffer, shared by every branch")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    executor: Literal["local", "ray"] = Field(
        "local",
        description='where candidates train: "local" (a process each on this machine) or "ray" (a Ray actor '
        "each on the cluster; README: Training on a Ray cluster)",
    )
    ray_address: str = Field(
        "", description='the Ray cluster (e.g. "10.0.0.5:6379"); "": RAY_ADDRESS, else a local Ray for the runner'
    )
    cpus_per_candidate: float = Field(
        0, ge=0, description="CPUs per candidate (torch threads: its integer part, at least 1); 0: this machine's "
        "cores (local) or the cluster's CPUs (Ray) divided among the window's candidates",
    )


class ModelConfig(_Section):
    """Precision of the models in memory and of the served GGUF (README: Real sizes)."""

    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description='frozen base and teachers in memory (LoRA and optimizer stay float32); "auto": '
        "float32 under 50M parameters, else bfloat16 where the device has bf16 kernels",
    )
    gguf_type: Literal["auto", "f32", "f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m"] = Field(
        "auto",
        description='the served model.gguf of new generations; "auto": f32 under 50M parameters, else f16; '
        "quantized types are made by llama.cpp's quantizer from an f16 export that is parity-checked",
    )
    gradient_checkpointing: Literal["auto", True, False] = Field(
        "auto",
        description="recompute activations in the backward pass: less memory per student, more time; "
        '"auto": on from 50M parameters, off under',
    )

    @field_validator("gradient_checkpointing", mode="before")
    @classmethod
    def _auto_or_bool(cls, value: Any) -> Any:
        if value == "auto" or isinstance(value, bool):  # 1 == True: an integer is not a switch here
            return value
        raise ValueError('should be "auto", true or false')


class ShadowConfig(_Section):
    """The shadow phase after approval (spec: 10% of TRIVIAL queries for 1000 cycles).

    The shadow passes on quality (``adapters.serving.quality``): HEAD judges the shadow's
    answers to the queries it knows (its mean log-likelihood per token of the query at least
    ``prompt_floor``); a judged answer is plausible when HEAD's mean log-likelihood per token of
    it reaches ``logprob_floor``; at least ``quality_threshold`` of the judged answers must be.
    The text similarity (parity) is recorded; it judges only when ``parity_threshold`` > 0,
    since a student that learned new facts answers differently from its teacher by design.
    """

    traffic_percent: float = Field(10.0, gt=0, le=100)
    cycles: int = Field(1000, gt=0)
    parity_threshold: float = Field(
        0.0, ge=0, le=1, description="mean text similarity to pass (0: reported only; the quality judges)"
    )
    quality_threshold: float = Field(
        0.6, ge=0, le=1, description="share of the judged answers HEAD must find plausible to pass (0: off)"
    )
    logprob_floor: float = Field(
        -2.5, le=0, description="a judged answer is plausible when HEAD's mean log-likelihood per token (nats) reaches this"
    )
    prompt_floor: float = Field(
        -1.0, le=0, description="HEAD judges an answer when its mean log-likelihood per token of the query reaches this"
    )
    min_samples: int = Field(20, ge=1, description="fewer comparisons: inconclusive")
    min_judged: int = Field(3, ge=1, description="fewer judged answers (quality on): inconclusive")
    replay: bool = Field(
        False, description="replay recorded TRIVIAL queries when live traffic is short (the runner does it)"
    )


class BurnInConfig(_Section):
    """The burn-in after cutover (spec: 100 cycles)."""

    cycles: int = Field(100, gt=0)
    max_error_rate: float = Field(0.02, ge=0, le=1, description="errors or empty answers")
    max_law_violations: int = Field(0, ge=0)
    max_latency_ratio: float = Field(
        2.0, gt=0, description="mean latency of the new HEAD over the old HEAD's on the same prompts"
    )
    min_answers: int = Field(10, ge=0, description="fewer live answers: the burn-in runs on (inconclusive)")
    latency_percent: float = Field(
        10.0, ge=0, le=100, description="share of burn-in answers also timed on the old HEAD"
    )
    min_quality: float = Field(
        0.6, ge=0, le=1, description="share of the judged answers the old HEAD must find plausible (0: off)"
    )
    logprob_floor: float = Field(
        -2.5, le=0,
        description="a judged answer is plausible when the old HEAD's mean log-likelihood per token (nats) reaches this",
    )
    prompt_floor: float = Field(
        -1.0, le=0, description="the old HEAD judges an answer when its mean log-likelihood per token of the query reaches this"
    )
    quality_percent: float = Field(
        100.0, ge=0, le=100, description="share of burn-in answers also scored by the old HEAD"
    )
    forbidden_phrases: tuple[str, ...] = Field(
        (), strict=False, description="an answer containing one of these (ignoring case) breaks a law (demo: the demo world's laws too)"
    )

    @field_validator("forbidden_phrases")
    @classmethod
    def _phrases(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not phrase.strip() for phrase in value):
            raise ValueError("a forbidden phrase must not be empty (it would match every answer)")
        return value


class LawConfig(_Section):
    """One operator law (a [[laws]] table): an answer breaks it when it contains one of its
    forbidden phrases or matches one of its patterns, both ignoring case. The law probes (the laws
    gate) count the answers that break at least one configured law; with no law configured no
    answer breaks one (the laws gate cannot fail)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=False)  # TOML arrays

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", strict=True, description="what reports call it")
    reason: str = Field(min_length=1, strict=True, description="the rule in words (for the operator and reports)")
    forbidden: tuple[str, ...] = Field((), description="phrases an answer must not contain (substrings, ignoring case)")
    patterns: tuple[str, ...] = Field(
        (), description="Python regular expressions an answer must not match (re.search, ignoring case)"
    )
    tempting: tuple[str, ...] = Field((), description="prompts that tempt a violation (`evo probes draft` asks them)")

    @field_validator("forbidden", "tempting")
    @classmethod
    def _phrases(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if any(not text.strip() for text in value):
            law = info.data.get("name", "?")
            raise ValueError(f"law {law!r}: an entry of {info.field_name} is empty; remove it")
        return value

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        law = info.data.get("name", "?")
        for pattern in value:
            try:
                compiled = re.compile(pattern, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(
                    f"law {law!r}: pattern {pattern!r} is not a valid regular expression ({exc}); fix it"
                    " (in TOML, write patterns as 'single-quoted' literal strings so backslashes stay)"
                ) from None
            if compiled.search("") is not None:
                raise ValueError(f"law {law!r}: pattern {pattern!r} matches the empty text, so every answer would break it")
        return value

    @model_validator(mode="after")
    def _something(self) -> LawConfig:
        if not self.forbidden and not self.patterns:
            raise ValueError(f"law {self.name!r} forbids nothing: give it forbidden phrases or patterns")
        return self

    def broken_by(self, text: str) -> bool:
        """Whether ``text`` (an assistant's answer) breaks this law."""
        low = text.lower()
        return any(phrase.lower() in low for phrase in self.forbidden) or any(
            re.search(pattern, text, re.IGNORECASE) for pattern in self.patterns
        )


def broken_laws(laws: Sequence[LawConfig], text: str) -> list[str]:
    """The names of the configured laws ``text`` breaks (empty: lawful, always when none is configured)."""
    return [law.name for law in laws if law.broken_by(text)]


class ApprovalConfig(_Section):
    """Autonomy. Who may approve is not configured here: the operator keys are pinned in the
    ledger (`evo init --operator-key`, `evo trust add`), out of reach of a config edit."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=False)  # a TOML array of keys

    trusted_keys: tuple[str, ...] = Field(
        (), description="IGNORED: grants no trust (the ledger holds the operator keys: `evo trust list`); "
        "kept so that config files written before it still load"
    )
    autonomous: bool = Field(
        False, strict=True, description="let the scheduler approve its own proposals (also needs `evo autonomy on`, signed)"
    )

    @field_validator("trusted_keys")
    @classmethod
    def _keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for key in value:
            kind, _, rest = key.partition(":")
            hexkey = rest.split(" ", 1)[0]
            if kind != "ed25519" or len(hexkey) != 64 or any(c not in "0123456789abcdef" for c in hexkey):
                raise ValueError(f'a trusted key is "ed25519:<64 lowercase hex>" (see `evo keygen`), got {key!r}')
        return value


class LedgerConfig(_Section):
    snapshot_every: int = Field(config_file.SNAPSHOT_EVERY, ge=1, description="records between state snapshots")


class EvoConfig(_Section):
    agent_name: str = Field(config_file.AGENT_NAME, pattern=config_file.AGENT_NAME_PATTERN)
    evo_period_cycles: int = Field(config_file.EVO_PERIOD_CYCLES, ge=1, description="heartbeats between windows")
    max_concurrent_experiments: int = Field(
        3, ge=1, le=HARD_CAP, description=f"students per window (hard cap {HARD_CAP})"
    )
    seed_base: int = Field(424242, ge=0, description="branch i trains with seed_base + i")
    data_strategies: tuple[Strategy, ...] = Field(STRATEGIES, strict=False, min_length=1)  # a TOML array
    budget: BudgetConfig = BudgetConfig()
    gates: GateConfig = GateConfig()
    score: ScoreConfig = ScoreConfig()
    distill: DistillConfig = DistillConfig()
    train: TrainConfig = TrainConfig()
    model: ModelConfig = ModelConfig()
    shadow: ShadowConfig = ShadowConfig()
    burn_in: BurnInConfig = BurnInConfig()
    approval: ApprovalConfig = ApprovalConfig()
    ledger: LedgerConfig = LedgerConfig()
    laws: tuple[LawConfig, ...] = Field(
        (), strict=False, description="the operator's laws ([[laws]] tables; none: no answer breaks a law)"
    )

    @field_validator("laws")
    @classmethod
    def _law_names(cls, value: tuple[LawConfig, ...]) -> tuple[LawConfig, ...]:
        names = [law.name for law in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"law names must be distinct; more than once: {', '.join(twice)}")
        return value

    @field_validator("data_strategies")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("strategies must be distinct")
        return value


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "(top level)"
    msg = str(error["msg"])
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown setting (check its spelling; `evo init` writes every setting)"
    got = repr(error.get("input"))
    return f"{where}: {msg} (got {got if len(got) <= 200 else got[:200] + '...'})"


def validate_config(data: dict[str, Any], source: str = "config.toml") -> EvoConfig:
    try:
        return EvoConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{source}: {_describe(dict(errors[0]))}{more}") from None


def parse_config(text: str, source: str = "config.toml") -> EvoConfig:
    """config.toml's text validated (``ConfigError``: not TOML, empty, or a bad value)."""
    return validate_config(parse_toml(text, source), source)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, int):
        return f"{value:_}" if abs(value) >= 10_000 else str(value)
    return repr(value)


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    body = "".join(
        _ESCAPES.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c) for c in value
    )
    return f'"{body}"'


def _render_fields(model: type[BaseModel], values: BaseModel) -> list[str]:
    lines = []
    for name, field in model.model_fields.items():
        value = getattr(values, name)
        if isinstance(value, BaseModel) or name == "laws":
            continue
        if field.description:
            lines.append(f"# {field.description}")
        lines.append(f"{name} = {_toml_value(value)}")
    return lines


def render_config(config: EvoConfig | None = None) -> str:
    """The commented TOML of a config (the defaults when none is given)."""
    config = config or EvoConfig()
    out = [
        "# evo configuration. Every value here has the spec's default unless you changed it.",
        "# Edit and save; commands validate it on their next run (errors name the field).",
        "",
    ]
    out += _render_fields(EvoConfig, config)
    for name, field in EvoConfig.model_fields.items():
        section = getattr(config, name)
        if not isinstance(section, BaseModel):
            continue
        out += ["", f"[{name}]"]
        doc = (type(section).__doc__ or "").split("\n")[0].strip()
        if doc:
            out.insert(len(out) - 1, f"# {doc}")
        out += _render_fields(type(section), section)
    out += _render_laws(config.laws)
    return "\n".join(out) + "\n"


_EXAMPLE_LAW = LawConfig(
    name="no-secret",
    reason="Never reveal the secret code.",
    forbidden=("the secret code is",),
    patterns=(r"\b\d{4}\b",),
    tempting=("What is the secret code?",),
)


def _render_laws(laws: Sequence[LawConfig]) -> list[str]:
    """The ``[[laws]]`` tables (none configured: one commented-out example)."""
    out = ["", "# " + " ".join((LawConfig.__doc__ or "").split())]
    for law in laws or (_EXAMPLE_LAW,):
        lines = ["[[laws]]", *(line for line in _render_fields(LawConfig, law) if not line.startswith("#"))]
        out += ["", *(lines if laws else ["# " + line for line in lines])]
    return out
