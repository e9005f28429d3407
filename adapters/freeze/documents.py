"""What an archive says about its candidate: metrics.json (the spec's shape), EVAL.md,
MODEL_CARD.md and the pictures EVAL.md shows. Text and PNG bytes from values;
``adapters.freeze.archive`` writes them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from adapters.freeze.loss_curve import curve_of, summary
from adapters.freeze.plots import GateLine
from evo_core.gates import GATE_NAMES, PAIRED
from evo_core.state import Candidate, Window
from evo_core.values import GateResult, Metrics
from projections.explain_gates import evidence_text, percent, rule_text

PLOT_NAME = "metrics.png"
LOSS_PLOT = "loss.png"  # only when training recorded a curve


class CardLineage(msgspec.Struct, frozen=True, kw_only=True):
    """What a model card inherits from the generation it descends from (``adapters.freeze.card_lineage``):
    the Hugging Face Hub model everything descends from, when the genesis came from one, and its
    license, when the genesis folder said it."""

    base_model: str | None = None
    license: str | None = None
    license_name: str | None = None  # with license "other"
    license_link: str | None = None


class Facts(msgspec.Struct, kw_only=True):
    """Everything the reports need, gathered once by the freeze."""

    candidate: Candidate
    status: str
    window: Window | None
    head_metrics: Metrics | None
    gates: tuple[GateResult, ...]
    training: dict[str, Any]  # training.json of the work folder ({} when absent)
    export: dict[str, Any] | None  # export.json of the work folder
    missing: list[str]  # artifacts the work folder did not have
    model_hash: str
    manifest_hash: str
    lineage: CardLineage = CardLineage()  # what the card inherits from the lineage
    adapter_only: bool = False  # weights not archived: the adapter and its parent rebuild them


def _eval(m: Metrics | None) -> dict[str, float | None]:
    if m is None:
        return {"recall": None, "generalize": None, "tone_drift": None}
    return {"recall": m.recall, "generalize": m.generalize, "tone_drift": m.tone_drift}


def _items(m: Metrics | None, head: Metrics | None) -> dict[str, Any]:
    """The per-item evidence the gates were decided on (candidate and HEAD, same items)."""

    def side(outcomes: str, head_outcomes: str) -> dict[str, Any]:
        return {
            "items": len(outcomes),
            "right": outcomes.count("1"),
            "outcomes": outcomes,
            "head_right": head_outcomes.count("1") if head_outcomes else None,
            "head_outcomes": head_outcomes,
        }

    if m is None:
        return {}
    return {
        "recall": side(m.recall_outcomes, head.recall_outcomes if head else ""),
        "generalize": side(m.generalize_outcomes, head.generalize_outcomes if head else ""),
        "tone": {"prompts": len(m.tone_drifts), "drifts": list(m.tone_drifts)},
    }


def _confidence(gates: Sequence[GateResult]) -> float | None:
    return next((g.confidence for g in gates if g.method == PAIRED), None)


def _gates(f: Facts) -> dict[str, bool | None]:
    by_name = {g.name: g.passed for g in f.gates}
    out: dict[str, bool | None] = {f"{n}_ok": by_name.get(n) for n in GATE_NAMES}
    if (f.candidate.failure or "").startswith("budget:"):
        out["budget_ok"] = False
    return out


def training_summary(f: Facts) -> dict[str, Any]:
    t, used = f.training, f.candidate.budget_used
    return {
        "steps": t.get("steps", used.steps if used else None),
        "loss_start": t.get("loss_start"),
        "loss_final": t.get("loss_final"),
        "walltime_minutes": t.get("walltime_minutes", used.walltime_minutes if used else None),
    }


def metrics_json(f: Facts) -> dict[str, Any]:
    c = f.candidate
    budget_used = msgspec.to_builtins(c.budget_used) if c.budget_used else f.training.get("budget_used")
    export = None
    if f.export is not None:
        export = {k: f.export.get(k) for k in ("dtype", "bytes", "blake3", "weights_hash", "parity")}
    return {
        "gen": c.gen,
        "branch": c.branch,
        "parent": c.parent,
        "candidate": c.id,
        "window": c.window,
        "seed": c.seed,
        "strategy": c.strategy,
        "training": training_summary(f),
        "eval": _eval(c.metrics),
        "law_violations": c.metrics.law_violations if c.metrics else None,
        "budget_used": budget_used,
        "gates": _gates(f),
        "gate_results": [msgspec.to_builtins(g) for g in f.gates],
        "gate_confidence": _confidence(f.gates),  # one-sided; None: raw gates (no per-item outcomes)
        "probe_items": _items(c.metrics, f.head_metrics),
        "score": c.score,
        "head": None if f.head_metrics is None else msgspec.to_builtins(f.head_metrics),
        "export": export,
        "model_hash": f.model_hash,
        "manifest_hash": f.manifest_hash,
        "missing": f.missing,
        "status": f.status,
    }


def _num(v: float | int | None, signed: bool = False) -> str:
    if v is None:
        return "-"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:+d}" if signed else str(v)
    return f"{v:+.4f}" if signed else f"{v:.4f}"


def _count(m: Metrics | None, name: str) -> str:
    outcomes = getattr(m, f"{name}_outcomes", "") if m else ""
    return f" ({outcomes.count('1')}/{len(outcomes)})" if outcomes else ""


def _metric_rows(c: Metrics | None, h: Metrics | None) -> list[str]:
    rows = ["| metric | candidate | HEAD | delta |", "| --- | ---: | ---: | ---: |"]
    for name in ("recall", "generalize", "tone_drift", "law_violations"):
        cv = getattr(c, name) if c else None
        hv = getattr(h, name) if h else None
        delta = cv - hv if cv is not None and hv is not None else None
        rows.append(
            f"| {name} | {_num(cv)}{_count(c, name)} | {_num(hv)}{_count(h, name)} | {_num(delta, signed=True)} |"
        )
    if c is not None and c.tone_drifts:
        rows += ["", "Tone drift per prompt: " + ", ".join(f"{x:.4f}" for x in c.tone_drifts) + "."]
    return rows


def eval_md(f: Facts) -> str:
    c, w = f.candidate, f.window
    head = w.head if w is not None else c.parent
    lines = [
        f"# EVAL: {c.id}",
        "",
        f"**Status:** `{f.status}`",
        "",
        f"Window {c.window}, generation G{c.gen:03d}, branch `{c.branch}` (seed {c.seed}, "
        f"strategy `{c.strategy}`), distilled from `{c.parent}`"
        + (f" with stabilizer `{c.stabilizer}`" if c.stabilizer else "")
        + f"; compared with HEAD `{head}`.",
        "",
        "## Metrics vs HEAD",
        "",
        *_metric_rows(c.metrics, f.head_metrics),
    ]
    if c.score is not None:
        head_score = w.baseline_score if w is not None else None
        lines += ["", f"Composite score: {_num(c.score)} (HEAD {_num(head_score)})."]
    if c.metrics is None:
        lines += ["", f"Not evaluated: {c.failure or 'no metrics were recorded'}."]
    lines += ["", "## Gates", ""]
    if f.gates:
        confidence = _confidence(f.gates)
        if confidence is not None:
            lines += [
                f"recall and generalize are paired with HEAD item by item (the same facts and "
                f"questions) and decided by a one-sided {percent(confidence)} bound on the "
                "difference (Tango's score bound): a gate passes only when the evidence supports "
                "it, not on one lucky answer. The threshold of a bounded gate is its tolerance "
                "(epsilon, delta); the margin is the bound's distance from it.",
                "",
            ]
        lines += [
            "| gate | rule | result | value | threshold | margin | evidence |",
            "| --- | --- | --- | ---: | ---: | ---: | --- |",
        ]
        for g in f.gates:
            result = "pass" if g.passed else "**FAIL**"
            lines.append(
                f"| {g.name} | {rule_text(g)} | {result} | {_num(g.value)} | {_num(g.threshold)} | "
                f"{_num(g.margin + 0.0, signed=True)} | {evidence_text(g) or '-'} |"
            )
    else:
        lines.append(f"No gate was evaluated ({f.status}).")
    t = training_summary(f)
    lines += [
        "",
        "## Training",
        "",
        f"steps {t['steps'] if t['steps'] is not None else '-'}, loss {_num(t['loss_start'])} -> "
        f"{_num(t['loss_final'])}, walltime {_num(t['walltime_minutes'])} min",
    ]
    curve = curve_of(f.training)
    if curve:
        lines += ["", f"Loss curve: {summary(curve)}.", "", f"![training loss per step]({LOSS_PLOT})"]
    if c.budget_used is not None:
        limits = msgspec.to_builtins(c.budget)
        lines += ["", "| resource | used | limit |", "| --- | ---: | ---: |"]
        for key, value in msgspec.to_builtins(c.budget_used).items():
            lines.append(f"| {key} | {value} | {limits.get('max_' + key, '-')} |")
    lines += ["", "## Export", ""]
    if f.export is not None:
        parity = f.export.get("parity") or {}
        verdict = "passed" if parity.get("passed") else "FAILED"
        lines.append(
            f"model.gguf ({f.export.get('dtype')}, blake3 {f.export.get('blake3')}): parity {verdict}, "
            f"max logit diff {parity.get('max_logit_diff')} (tolerance {parity.get('tolerance')}), "
            f"greedy agreement {parity.get('greedy_agreement')}"
        )
    else:
        lines.append("No GGUF export was recorded (no export.json).")
    if f.missing:
        lines += ["", "## Missing artifacts", "", "The work folder did not hold these; they are not in the archive:", ""]
        lines += [f"- {name}" for name in f.missing]
    lines += [
        "",
        "## Across generations",
        "",
        f"![metrics across generations]({PLOT_NAME})",
        "",
        "Oldest generation on the left, this candidate on the right (grey band). A dashed line is "
        "a gate's threshold in its metric's colour; a paired gate's bar runs from the candidate's "
        "value to its confidence bound, which must reach the line.",
        "",
        f"model hash `{f.model_hash or '-'}`, manifest hash `{f.manifest_hash or '-'}`",
        "",
    ]
    return "\n".join(lines)


# the probe results a card's model-index reports, with what each one measures
CARD_RESULTS = (
    ("recall", "recall (facts kept)"),
    ("generalize", "generalize (held-out questions)"),
    ("tone_drift", "tone drift from HEAD"),
    ("law_violations", "law violations"),
)


def _card_data(f: Facts) -> Any:
    """The card's metadata as ``huggingface_hub``'s ``ModelCardData``: the Hub's fields
    (``model-index`` with the probe results; ``base_model`` only when the genesis came from the
    Hub: a generation's own name is no Hub id) and evo's lineage, verdict and hash beside them."""
    from huggingface_hub import EvalResult, ModelCardData

    c, lineage = f.candidate, f.lineage
    results = []
    if c.metrics is not None:
        values = [(key, name, float(getattr(c.metrics, key))) for key, name in CARD_RESULTS]
        if c.score is not None:
            values.append(("score", "composite score", c.score))
        dataset = f"evo probes, window {c.window}"
        results = [
            EvalResult(
                task_type="text-generation", dataset_type="evo-probes", dataset_name=dataset,
                metric_type=key, metric_name=name, metric_value=value,
            )
            for key, name, value in values
        ]
    tags = ["evo", "distillation", "lora"] + ([] if "model.gguf" in f.missing else ["gguf"])
    return ModelCardData(
        model_name=c.id,
        base_model=lineage.base_model,
        license=lineage.license,
        license_name=lineage.license_name,
        license_link=lineage.license_link,
        library_name="transformers" if "adapter/" in f.missing else "peft",
        pipeline_tag="text-generation",
        tags=tags,
        eval_results=results or None,
        parents=[c.parent] + ([c.stabilizer] if c.stabilizer else []),
        status=f.status,
        model_hash=f.model_hash,
    )


def model_card(f: Facts) -> str:
    """MODEL_CARD.md: a Hugging Face model card (``huggingface_hub.ModelCard``; its front matter
    parses as ``ModelCardData``) whose text says what the candidate is and where it stands."""
    from huggingface_hub import ModelCard

    c = f.candidate
    gates = ", ".join(f"{g.name} {'pass' if g.passed else 'FAIL'}" for g in f.gates) or "not evaluated"
    body = [
        f"# {c.id}",
        "",
        f"A candidate of generation G{c.gen:03d} (window {c.window}, branch `{c.branch}`): `{c.parent}` "
        f"distilled with a LoRA adapter (strategy `{c.strategy}`, seed {c.seed})"
        + (f", stabilized by `{c.stabilizer}`" if c.stabilizer else "")
        + ".",
        "",
        f"- **Status:** `{f.status}`",
        f"- **Gates:** {gates}",
        "- **Files:** `model.gguf` (llama.cpp), "
        + ("" if f.adapter_only else "`weights/` (Hugging Face), ")
        + "`adapter/` (LoRA"
        + (f"; merged into `{c.parent}` it gives the weights: `evo_merge.json`" if f.adapter_only else "")
        + "), `metrics.json`, `EVAL.md`, `hashes.csv` (blake3 of every file)",
        "- **Use:** only once promoted by the operator (`evo approve`); until then it is an archived candidate.",
    ]
    if f.lineage.base_model:
        body.append(f"- **Descends from:** [{f.lineage.base_model}](https://huggingface.co/{f.lineage.base_model}), "
                    "the genesis of this workspace")
    if f.missing:
        body.append(f"- **Missing:** {', '.join(f.missing)}")
    card = ModelCard(f"---\n{_card_data(f).to_yaml()}\n---\n\n" + "\n".join(body) + "\n")
    return str(card)


def genesis_card(name: str, lineage: CardLineage, about: str) -> str:
    """A genesis generation's MODEL_CARD.md: what every candidate's card inherits
    (``adapters.freeze.card_lineage``)."""
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(
        model_name=name, base_model=lineage.base_model, license=lineage.license, license_name=lineage.license_name,
        license_link=lineage.license_link, library_name="transformers", pipeline_tag="text-generation",
        tags=["evo", "gguf"], status="GENESIS",
    )
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n# {name}\n\nThe genesis generation (G000) of an evo workspace. {about}\n"))


def chart_series(history: Sequence[tuple[str, Metrics]], f: Facts) -> list[tuple[str, dict[str, float | None]]]:
    """(generation, its rates) oldest first: the history, HEAD (unless the history ends with
    it), the candidate."""
    points = [(name, _eval(m)) for name, m in history]
    if f.head_metrics is not None:
        head = f.window.head if f.window is not None else f.candidate.parent
        if not history or history[-1][0] != head:
            points.append((head, _eval(f.head_metrics)))
    points.append((f.candidate.id, _eval(f.candidate.metrics)))
    return points


def gate_lines(f: Facts) -> list[GateLine]:
    """Each rate gate's threshold on its metric's scale. A paired gate compares a bound on the
    difference with HEAD against a tolerance: on the metric's scale that is HEAD's value -
    epsilon (recall) or + delta (generalize), and the candidate's bound must reach it."""
    out = []
    for g in f.gates:
        if g.name == "tone":
            out.append(GateLine(metric="tone_drift", threshold=g.threshold,
                                label=f"tone gate: drift ≤ {g.threshold:.3g}"))
        elif g.name in ("recall", "generalize") and g.method != PAIRED:
            out.append(GateLine(metric=g.name, threshold=g.threshold, label=f"{g.name} gate: ≥ {g.threshold:.3g}"))
        elif g.name in ("recall", "generalize") and f.head_metrics is not None and g.bound is not None:
            head = float(getattr(f.head_metrics, g.name))
            sign, tol = (-1.0, "ε") if g.name == "recall" else (1.0, "δ")
            threshold = head + sign * g.threshold
            out.append(GateLine(
                metric=g.name, threshold=threshold, bound=head + sign * g.bound,
                label=f"{g.name} gate: HEAD {'-' if sign < 0 else '+'} {tol} = {threshold:.3g}",
            ))
    return out


def pictures(f: Facts, history: Sequence[tuple[str, Metrics]]) -> dict[str, bytes]:
    """The PNGs EVAL.md shows, by file name."""
    from adapters.freeze.plots import loss_chart, metrics_chart

    out = {PLOT_NAME: metrics_chart(chart_series(history, f), gate_lines(f))}
    curve = curve_of(f.training)
    if curve:
        out[LOSS_PLOT] = loss_chart(curve, title=f"Training loss of {f.candidate.id}")
    return out
