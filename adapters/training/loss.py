"""The two-teacher distillation loss: a pure torch function, no model, no I/O.

Theory of operation
-------------------

The student S starts as G(N) plus a fresh LoRA adapter. Two teachers give logit targets:
the PRIMARY teacher G(N) (t1, what the student should stay close to while it learns the new
data) and the STABILIZER G(N-1) (t2, which plays the role of LwF's old model against forgetting).
They are blended in probability space (no weight averaging, no logit averaging)::

    q   = (1 - w) * softmax(t1 / T) + w * softmax(t2 / T)          w = stabilizer_weight
    L   = alpha * CE(S, labels) + beta * T^2 * mean_tokens KL(q || softmax(S / T))
    KL(q || p) = sum_v q_v * (log q_v - log p_v)

CE is the ordinary causal-LM cross entropy at temperature 1. Both terms are means over the same
token positions: position i predicts token i+1 (labels are shifted inside, as in Hugging Face
causal LMs), and a position counts only when its next token is real (label != -100): padding and
the position after an example's last token are excluded. T^2 keeps the KD gradient's scale
independent of T (Hinton et al., 2015).

Top-k targets. The teacher cache keeps, per token, each teacher's k largest logits (values and
vocabulary indices). Then each teacher's distribution is softmax over its own k logits / T
(renormalised over its top-k: the tail mass is dropped), the two are scattered into the union of
their indices and blended with (1 - w, w), and the student's log-probabilities are the FULL
``log_softmax(S / T)`` gathered at those indices. So q is a proper distribution over at most 2k
tokens and the student is pushed to put its mass there (tokens outside the union get no direct
target, only the normalisation of the full softmax). When k >= vocab size this is exactly the
dense formula above. ``dense_distill_loss`` is that dense formula, for full logits and for tests.

With no stabilizer (first window) ``t2`` is None and w is taken as 0: q = softmax(t1 / T).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

IGNORE = -100


class LossParts(NamedTuple):
    total: torch.Tensor  # alpha * ce + beta * T^2 * kd, a scalar with grad
    ce: torch.Tensor  # detached
    kd: torch.Tensor  # mean KL per token, before beta and T^2; detached
    tokens: int  # positions that entered the mean


def _shift(
    student_logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of the positions that predict a real next token: (logits [N, V], targets [N], mask)."""
    mask = torch.zeros_like(labels, dtype=torch.bool)
    mask[:, :-1] = labels[:, 1:] != IGNORE
    return student_logits[mask], labels[:, 1:][mask[:, :-1]], mask


def _combine(
    s_rows: torch.Tensor, targets: torch.Tensor, q: torch.Tensor, log_q: torch.Tensor,
    s_logp: torch.Tensor, *, alpha: float, beta: float, temperature: float,
) -> LossParts:
    n = targets.numel()
    if n == 0:
        zero = s_rows.sum() * 0.0
        return LossParts(zero, zero.detach(), zero.detach(), 0)
    ce = F.cross_entropy(s_rows.float(), targets, reduction="mean")
    kl = (q * (log_q - s_logp)).sum(-1).mean()
    total = alpha * ce + beta * temperature**2 * kl
    return LossParts(total, ce.detach(), kl.detach(), n)


def _blend_topk(
    t1_vals: torch.Tensor, t1_idx: torch.Tensor, t2_vals: torch.Tensor | None,
    t2_idx: torch.Tensor | None, w: float, temperature: float, vocab: int,
) -> torch.Tensor:
    """q over the vocabulary, dense [N, V], zero outside the union of the teachers' top-k."""
    q = torch.zeros(t1_vals.shape[0], vocab, dtype=torch.float32, device=t1_vals.device)
    p1 = torch.softmax(t1_vals.float() / temperature, dim=-1)
    if t2_vals is None or t2_idx is None or w == 0.0:
        return q.scatter_(-1, t1_idx.long(), p1)
    p2 = torch.softmax(t2_vals.float() / temperature, dim=-1)
    q.scatter_add_(-1, t1_idx.long(), (1.0 - w) * p1)
    return q.scatter_add_(-1, t2_idx.long(), w * p2)


def distill_loss(
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    t1_vals: torch.Tensor,
    t1_idx: torch.Tensor,
    t2_vals: torch.Tensor | None = None,
    t2_idx: torch.Tensor | None = None,
    *,
    alpha: float,
    beta: float,
    temperature: float,
    stabilizer_weight: float,
) -> LossParts:
    """The loss of the module docstring from cached top-k teacher logits.

    Shapes: ``student_logits`` [B, L, V]; ``labels`` [B, L] (the input ids, -100 at padding);
    ``t*_vals`` [B, L, k] float and ``t*_idx`` [B, L, k] int: the teacher's top-k logits at each
    position (the prediction of the next token), as the teacher cache serves them.
    """
    s_rows, targets, mask = _shift(student_logits, labels)
    vocab = student_logits.shape[-1]
    w = 0.0 if t2_vals is None else float(stabilizer_weight)
    q = _blend_topk(
        t1_vals[mask], t1_idx[mask],
        None if t2_vals is None else t2_vals[mask], None if t2_idx is None else t2_idx[mask],
        w, temperature, vocab,
    )
    s_logp = torch.log_softmax(s_rows.float() / temperature, dim=-1)
    # q is zero outside the union: those terms vanish (0 * log 0 := 0; log_softmax is finite).
    log_q = torch.where(q > 0, q, torch.ones_like(q)).log()
    return _combine(
        s_rows, targets, q, log_q, s_logp, alpha=alpha, beta=beta, temperature=temperature
    )


def dense_distill_loss(
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    t1_logits: torch.Tensor,
    t2_logits: torch.Tensor | None = None,
    *,
    alpha: float,
    beta: float,
    temperature: float,
    stabilizer_weight: float,
) -> LossParts:
    """The exact formula with full teacher logits [B, L, V] (no top-k approximation)."""
    s_rows, targets, mask = _shift(student_logits, labels)
    q = torch.softmax(t1_logits[mask].float() / temperature, dim=-1)
    if t2_logits is not None and stabilizer_weight != 0.0:
        w = float(stabilizer_weight)
        q = (1.0 - w) * q + w * torch.softmax(t2_logits[mask].float() / temperature, dim=-1)
    s_logp = torch.log_softmax(s_rows.float() / temperature, dim=-1)
    log_q = torch.where(q > 0, q, torch.ones_like(q)).log()
    return _combine(
        s_rows, targets, q, log_q, s_logp, alpha=alpha, beta=beta, temperature=temperature
    )
