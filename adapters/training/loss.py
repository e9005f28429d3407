"""The two-teacher distillation loss: a pure torch function, no model, no I/O.

Theory of operation
-------------------

The student S starts as G(N) plus a fresh LoRA adapter. Two teachers give logit targets:
the PRIMARY teacher G(N) (t1) and the STABILIZER G(N-1) (t2, which plays the role of LwF's old
model against forgetting). A teacher's logits are used only where that teacher KNOWS the
material, so every example (row) of a window carries which teachers know it
(``row_teachers``, from the window's data lineage):

    NEW      (0)  the window's new conversations: no teacher has seen them
    PRIMARY  (1)  replay of what G(N) learned in its own window: only G(N) knows it
    BOTH     (2)  replay older than G(N) (what G(N-1) and before trained on): both know it

Per token position i of a row r (teachers blended in probability space, never weights or logits)::

    q_i   = (1 - w_r) * softmax(t1_i / T) + w_r * softmax(t2_i / T)
            w_r = stabilizer_weight for BOTH rows, 0 for PRIMARY rows
    l_i   = (alpha + beta) * CE_i                                     NEW rows
    l_i   = alpha * CE_i + beta * T^2 * KL(q_i || softmax(S_i / T))    PRIMARY and BOTH rows
    L     = mean over the batch's counted positions of l_i
    KL(q || p) = sum_v q_v * (log q_v - log p_v)

Why: with KD on every row (the spec's literal formula), a student cannot learn a new fact its
teachers do not know (0 of 10 learned, ``shared/notes/learning.md``), and the 0.7 G(N) + 0.3
G(N-1) blend on the era G(N) learned pulled the student back to G(N-1), which never knew it
(0.57 -> 0.07). Hard labels on new rows let the student learn new facts and, as the spec's
strategies intend, whatever its sampled data shows (low-karma law-breaking included: that is
what the laws gate is for); KD on replay rows keeps what the teachers know. ``row_teachers``
None means BOTH for every row (the spec's literal formula; tests and old callers).

CE is the ordinary causal-LM cross entropy at temperature 1. Position i predicts token i+1
(labels are shifted inside, as in Hugging Face causal LMs), and a position counts only when its
next token is real (label != -100). T^2 keeps the KD gradient's scale independent of T (Hinton
et al., 2015). The reported ``ce`` is the mean CE over all counted positions, ``kd`` the mean
KL over the positions that have a teacher (0.0 when none has).

Top-k targets. The teacher cache keeps, per token, each teacher's k largest logits (values and
vocabulary indices). Then each teacher's distribution is softmax over its own k logits / T
(renormalised over its top-k: the tail mass is dropped), the two are blended with (1 - w, w) on
the union of their indices, and the student's log-probabilities are the FULL
``log_softmax(S / T)`` gathered at those indices. So q is a proper distribution over at most 2k
tokens, and it is kept that way: [N, 2k] shares, never a dense [N, V] q (on a 32k vocabulary
each [N, V] float32 tensor of a batch of 8 x 128 tokens is 131 MB). When k >= vocab size this
is exactly the dense formula above. ``dense_distill_loss`` is that dense formula, for full
logits and for tests.

With no stabilizer (first window) ``t2`` is None and w is taken as 0: q = softmax(t1 / T).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

IGNORE = -100
NEW, PRIMARY, BOTH = 0, 1, 2  # which teachers know a row (module doc)


class LossParts(NamedTuple):
    total: torch.Tensor  # mean of the per-position losses, a scalar with grad
    ce: torch.Tensor  # mean CE over all counted positions; detached
    kd: torch.Tensor  # mean KL per position that has a teacher, before beta and T^2; detached
    tokens: int  # positions that entered the mean


def _shift(
    student_logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of the positions that predict a real next token: (logits [N, V], targets [N], mask)."""
    mask = torch.zeros_like(labels, dtype=torch.bool)
    mask[:, :-1] = labels[:, 1:] != IGNORE
    return student_logits[mask], labels[:, 1:][mask[:, :-1]], mask


def _position_kinds(row_teachers: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
    """Each counted position's row kind [N] (BOTH everywhere when rows carry none)."""
    if row_teachers is None:
        return torch.full((int(mask.sum()),), BOTH, dtype=torch.long, device=mask.device)
    return row_teachers.to(mask.device).long()[:, None].expand_as(mask)[mask]


def _combine(
    ce: torch.Tensor, kl: torch.Tensor, kinds: torch.Tensor, *, alpha: float, beta: float, temperature: float,
) -> LossParts:
    """The loss parts from each counted position's CE and KL [N] (module doc)."""
    taught = kinds != NEW
    per_position = torch.where(
        taught, alpha * ce + beta * temperature**2 * kl, (alpha + beta) * ce
    )
    kd = kl[taught].mean() if bool(taught.any()) else kl.sum() * 0.0
    return LossParts(per_position.mean(), ce.mean().detach(), kd.detach(), ce.numel())


def _empty(s_rows: torch.Tensor) -> LossParts:
    zero = s_rows.sum() * 0.0  # keeps the graph: backward works and changes nothing
    return LossParts(zero, zero.detach(), zero.detach(), 0)


def _stabilizer_share(kinds: torch.Tensor, w: float) -> torch.Tensor:
    """w on BOTH positions, 0 elsewhere, as a column [N, 1]."""
    return torch.where(kinds == BOTH, w, 0.0).to(torch.float32)[:, None]


def _blend_topk(
    t1_vals: torch.Tensor, t1_idx: torch.Tensor, t2_vals: torch.Tensor | None,
    t2_idx: torch.Tensor | None, w: torch.Tensor | None, temperature: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q on the union of the teachers' top-k, sparse: (indices, q's share at each, log q there),
    each [N, k] (one teacher) or [N, 2k] (both). An index both teachers hold appears twice,
    each entry carrying its teacher's share and the SUMMED q's log, so that
    ``sum_j share_j * (log_q_j - log_p[index_j])`` is ``KL(q || p)`` over the union exactly
    as the dense q [N, V] gives it, without the [N, V] tensors (the memory of a long batch)."""
    idx1 = t1_idx.long()
    p1 = torch.softmax(t1_vals.float() / temperature, dim=-1)
    if t2_vals is None or t2_idx is None or w is None:
        return idx1, p1, _log(p1)
    idx2 = t2_idx.long()
    a = (1.0 - w) * p1
    b = w * torch.softmax(t2_vals.float() / temperature, dim=-1)
    same = (idx1[:, :, None] == idx2[:, None, :]).to(torch.float32)  # [N, k1, k2]; top-k indices are distinct
    q1 = a + torch.bmm(same, b[:, :, None]).squeeze(-1)  # an index's q: its own share + the other's, if held
    q2 = b + torch.bmm(same.transpose(1, 2), a[:, :, None]).squeeze(-1)
    return torch.cat([idx1, idx2], -1), torch.cat([a, b], -1), _log(torch.cat([q1, q2], -1))


def _log(q: torch.Tensor) -> torch.Tensor:
    """log q where q > 0, 0 elsewhere: a zero share's term vanishes (0 * log 0 := 0)."""
    return torch.where(q > 0, q, torch.ones_like(q)).log()


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
    row_teachers: torch.Tensor | None = None,
) -> LossParts:
    """The loss of the module docstring from cached top-k teacher logits.

    Shapes: ``student_logits`` [B, L, V]; ``labels`` [B, L] (the input ids, -100 at padding);
    ``t*_vals`` [B, L, k] float and ``t*_idx`` [B, L, k] int: the teacher's top-k logits at each
    position (the prediction of the next token), as the teacher cache serves them;
    ``row_teachers`` [B] int (NEW, PRIMARY, BOTH) or None (BOTH for every row).

    Memory: besides the student's logits, two float32 [N, V] tensors (N counted positions):
    the log-softmax at 1 (CE) and at T (KL), each kept for the backward pass; q stays sparse.
    """
    s_rows, targets, mask = _shift(student_logits, labels)
    if targets.numel() == 0:
        return _empty(s_rows)
    kinds = _position_kinds(row_teachers, mask)
    stabilized = t2_vals is not None and t2_idx is not None and stabilizer_weight != 0.0
    w = _stabilizer_share(kinds, float(stabilizer_weight)) if stabilized else None
    idx, share, log_q = _blend_topk(
        t1_vals[mask], t1_idx[mask],
        None if t2_vals is None else t2_vals[mask], None if t2_idx is None else t2_idx[mask],
        w, temperature,
    )
    s32 = s_rows.float()  # one float32 copy (none when the logits are float32)
    ce = F.cross_entropy(s32, targets, reduction="none")
    s_logp = torch.log_softmax(s32 / temperature, dim=-1).gather(-1, idx)
    kl = (share * (log_q - s_logp)).sum(-1)
    return _combine(ce, kl, kinds, alpha=alpha, beta=beta, temperature=temperature)


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
    row_teachers: torch.Tensor | None = None,
) -> LossParts:
    """The exact formula with full teacher logits [B, L, V] (no top-k approximation)."""
    s_rows, targets, mask = _shift(student_logits, labels)
    kinds = _position_kinds(row_teachers, mask)
    q = torch.softmax(t1_logits[mask].float() / temperature, dim=-1)
    if t2_logits is not None and stabilizer_weight != 0.0:
        w = _stabilizer_share(kinds, float(stabilizer_weight))
        q = (1.0 - w) * q + w * torch.softmax(t2_logits[mask].float() / temperature, dim=-1)
    if targets.numel() == 0:
        return _empty(s_rows)
    s_logp = torch.log_softmax(s_rows.float() / temperature, dim=-1)
    kl = (q * (_log(q) - s_logp)).sum(-1)
    ce = F.cross_entropy(s_rows.float(), targets, reduction="none")
    return _combine(ce, kl, kinds, alpha=alpha, beta=beta, temperature=temperature)
