"""The two-teacher loss against formulas computed independently here."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from adapters.training.loss import dense_distill_loss, distill_loss

B, L, V = 3, 7, 23


def _inputs(seed: int = 0):  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(B, L, V, generator=g, requires_grad=True)
    t1 = torch.randn(B, L, V, generator=g) * 2
    t2 = torch.randn(B, L, V, generator=g) * 2
    labels = torch.randint(0, V, (B, L), generator=g)
    labels[1, 5:] = -100  # padding
    labels[2, 3:] = -100
    return student, t1, t2, labels


def _full(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A "top-k" over the whole vocabulary, in a scrambled order."""
    perm = torch.randperm(V, generator=torch.Generator().manual_seed(3))
    return t[..., perm], perm.expand(*t.shape[:-1], V)


def _positions(labels: torch.Tensor) -> list[tuple[int, int]]:
    return [(b, i) for b in range(B) for i in range(L - 1) if labels[b, i + 1] != -100]


def _single_teacher_kd(student, teacher, labels, alpha, beta, T):  # type: ignore[no-untyped-def]
    """Hinton KD with one teacher, position by position (no shared code with the module)."""
    pos = _positions(labels)
    ce = sum(-F.log_softmax(student[b, i], -1)[labels[b, i + 1]] for b, i in pos) / len(pos)
    kl = 0.0
    for b, i in pos:
        p = F.softmax(teacher[b, i] / T, -1)
        kl = kl + (p * (p.log() - F.log_softmax(student[b, i] / T, -1))).sum()
    return alpha * ce + beta * T * T * kl / len(pos)


KW = dict(alpha=0.3, beta=0.7, temperature=2.0)


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0])
def test_no_stabilizer_weight_is_single_teacher_kd(T: float) -> None:
    student, t1, t2, labels = _inputs()
    expected = _single_teacher_kd(student, t1, labels, 0.3, 0.7, T)
    kw = dict(alpha=0.3, beta=0.7, temperature=T, stabilizer_weight=0.0)
    dense = dense_distill_loss(student, labels, t1, t2, **kw).total
    topk = distill_loss(student, labels, *_full(t1), *_full(t2), **kw).total
    torch.testing.assert_close(dense, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(topk, expected, rtol=1e-5, atol=1e-6)


def test_no_stabilizer_at_all_is_single_teacher_kd() -> None:
    student, t1, _, labels = _inputs(1)
    got = distill_loss(student, labels, *_full(t1), stabilizer_weight=0.5, **KW).total
    torch.testing.assert_close(got, _single_teacher_kd(student, t1, labels, 0.3, 0.7, 2.0))


@pytest.mark.parametrize("w", [0.0, 0.3, 0.5, 1.0])
def test_identical_teachers_make_the_weight_irrelevant(w: float) -> None:
    student, t1, _, labels = _inputs(2)
    base = distill_loss(student, labels, *_full(t1), stabilizer_weight=0.0, **KW).total
    got = distill_loss(student, labels, *_full(t1), *_full(t1.clone()), stabilizer_weight=w, **KW).total
    torch.testing.assert_close(got, base, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("w", [0.0, 0.25, 0.8, 1.0])
def test_full_vocab_topk_equals_the_dense_formula(w: float) -> None:
    student, t1, t2, labels = _inputs(3)
    kw = dict(KW, stabilizer_weight=w)
    dense = dense_distill_loss(student, labels, t1, t2, **kw)
    topk = distill_loss(student, labels, *_full(t1), *_full(t2), **kw)
    torch.testing.assert_close(topk.total, dense.total, rtol=1e-5, atol=1e-6)
    assert topk.tokens == dense.tokens == len(_positions(labels))


def test_blend_is_in_probability_space() -> None:
    """KL(q || s) with q the mixture of the two softmaxes, not of the logits."""
    student, t1, t2, labels = _inputs(4)
    T, w = 2.0, 0.4
    pos = _positions(labels)
    kl = 0.0
    for b, i in pos:
        q = (1 - w) * F.softmax(t1[b, i] / T, -1) + w * F.softmax(t2[b, i] / T, -1)
        kl = kl + (q * (q.log() - F.log_softmax(student[b, i] / T, -1))).sum()
    got = distill_loss(student, labels, *_full(t1), *_full(t2), alpha=0.0, beta=1.0,
                       temperature=T, stabilizer_weight=w)
    torch.testing.assert_close(got.total, T * T * kl / len(pos), rtol=1e-5, atol=1e-6)


def test_temperature_squared_scaling() -> None:
    student, t1, t2, labels = _inputs(5)
    for T in (1.0, 3.0):
        parts = distill_loss(student, labels, *_full(t1), *_full(t2), alpha=0.0, beta=1.0,
                             temperature=T, stabilizer_weight=0.3)
        torch.testing.assert_close(parts.total, T * T * parts.kd)
    # with the student equal to the teacher the KD term is zero at any temperature
    same = distill_loss(t1.clone().requires_grad_(), labels, *_full(t1), alpha=0.0, beta=1.0,
                        temperature=3.0, stabilizer_weight=0.0)
    assert abs(float(same.total.detach())) < 1e-5


def test_padding_positions_do_not_count() -> None:
    student, t1, t2, labels = _inputs(6)
    kw = dict(KW, stabilizer_weight=0.3)
    base = distill_loss(student, labels, *_full(t1), *_full(t2), **kw).total
    noisy = student.detach().clone()
    noisy[1, 4:] += 100.0 * torch.randn(L - 4, V)  # position 4 predicts a pad, 5-6 are pads
    noisy[2, 2:] -= 50.0
    t1n = t1.clone()
    t1n[1, 4:] = torch.randn(L - 4, V)
    got = distill_loss(noisy, labels, *_full(t1n), *_full(t2), **kw).total
    torch.testing.assert_close(got, base.detach())


def test_gradients_are_finite_and_only_where_counted() -> None:
    student, t1, t2, labels = _inputs(7)
    kw = dict(KW, stabilizer_weight=0.3)
    k = 5
    v1, i1 = torch.topk(t1, k)
    v2, i2 = torch.topk(t2, k)
    parts = distill_loss(student, labels, v1.half(), i1.int(), v2.half(), i2.int(), **kw)
    parts.total.backward()
    assert torch.isfinite(parts.total) and torch.isfinite(student.grad).all()
    assert student.grad[2, 2:].abs().sum() == 0  # no next token there
    assert student.grad[0, :-1].abs().sum() > 0


def test_topk_is_an_approximation_that_tightens_with_k() -> None:
    student, t1, t2, labels = _inputs(8)
    kw = dict(alpha=0.0, beta=1.0, temperature=1.0, stabilizer_weight=0.3)
    exact = float(dense_distill_loss(student, labels, t1 * 3, t2 * 3, **kw).total.detach())
    errors = []
    for k in (2, 8, V):
        v1, i1 = torch.topk(t1 * 3, k)
        v2, i2 = torch.topk(t2 * 3, k)
        errors.append(abs(float(distill_loss(student, labels, v1, i1, v2, i2, **kw).total.detach()) - exact))
    assert errors[0] > errors[1] > errors[2] - 1e-6 and errors[2] < 1e-4



def _only_topk(t: torch.Tensor, k: int) -> torch.Tensor:
    """The teacher's logits with everything outside its top-k at -inf: the dense q of the top-k."""
    vals, idx = torch.topk(t, k)
    return torch.full_like(t, float("-inf")).scatter(-1, idx, vals)


@pytest.mark.parametrize(("k", "w", "seed"), [(1, 0.3, 0), (4, 0.3, 1), (6, 0.5, 2), (11, 1.0, 3), (5, 0.0, 4)])
def test_sparse_topk_targets_equal_the_dense_q_they_stand_for(k: int, w: float, seed: int) -> None:
    """q kept sparse over two top-k lists that partly overlap gives the loss and the gradient of
    the dense q [N, V] scattered from them (zero outside the union)."""
    student, t1, t2, labels = _inputs(seed)
    t2 = t2 + t1  # correlated teachers: their top-k lists share some indices, not all
    (v1, i1), (v2, i2) = torch.topk(t1, k), torch.topk(t2, k)
    shared = (i1[..., :, None] == i2[..., None, :]).any(-1).float().mean()
    assert k == 1 or 0 < shared < 1
    kw = dict(KW, stabilizer_weight=w, row_teachers=torch.tensor([2, 1, 2]))
    sparse = distill_loss(student, labels, v1, i1, v2, i2, **kw)
    (g_sparse,) = torch.autograd.grad(sparse.total, student)
    dense = dense_distill_loss(student, labels, _only_topk(t1, k), _only_topk(t2, k), **kw)
    (g_dense,) = torch.autograd.grad(dense.total, student)
    torch.testing.assert_close(sparse.total, dense.total, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sparse.kd, dense.kd, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g_sparse, g_dense, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- each teacher where it knows


def _per_position_reference(student, t1, t2, labels, kinds, alpha, beta, T, w):  # type: ignore[no-untyped-def]
    """The module doc's per-row formula, position by position (no shared code)."""
    total, n = 0.0, 0
    for b, i in _positions(labels):
        ce = -F.log_softmax(student[b, i], -1)[labels[b, i + 1]]
        if kinds[b] == 0:
            total = total + (alpha + beta) * ce
        else:
            wr = w if kinds[b] == 2 else 0.0
            q = (1 - wr) * F.softmax(t1[b, i] / T, -1) + wr * F.softmax(t2[b, i] / T, -1)
            kl = (q * (q.log() - F.log_softmax(student[b, i] / T, -1))).sum()
            total = total + alpha * ce + beta * T * T * kl
        n += 1
    return total / n


@pytest.mark.parametrize("kinds", [(0, 1, 2), (2, 2, 2), (0, 0, 0), (1, 0, 1)])
def test_each_row_gets_the_teachers_that_know_it(kinds: tuple[int, int, int]) -> None:
    student, t1, t2, labels = _inputs()
    rows = torch.tensor(kinds)
    want = _per_position_reference(student, t1, t2, labels, kinds, 0.3, 0.7, 2.0, 0.4)
    dense = dense_distill_loss(student, labels, t1, t2, **KW, stabilizer_weight=0.4, row_teachers=rows)
    topk = distill_loss(student, labels, *_full(t1), *_full(t2), **KW, stabilizer_weight=0.4, row_teachers=rows)
    assert float(dense.total.detach()) == pytest.approx(float(want.detach()), rel=1e-5)
    assert float(topk.total.detach()) == pytest.approx(float(want.detach()), rel=1e-5)


def test_new_rows_ignore_both_teachers_and_primary_rows_ignore_the_stabilizer() -> None:
    student, t1, t2, labels = _inputs()
    _, o1, o2, _ = _inputs(seed=9)  # other teachers
    new = torch.tensor([0, 0, 0])
    a = distill_loss(student, labels, *_full(t1), *_full(t2), **KW, stabilizer_weight=0.5, row_teachers=new)
    b = distill_loss(student, labels, *_full(o1), *_full(o2), **KW, stabilizer_weight=0.5, row_teachers=new)
    assert float(a.total) == pytest.approx(float(b.total))
    assert float(a.total) == pytest.approx(float(a.ce) * (KW["alpha"] + KW["beta"]))
    primary = torch.tensor([1, 1, 1])
    c = distill_loss(student, labels, *_full(t1), *_full(t2), **KW, stabilizer_weight=0.5, row_teachers=primary)
    d = distill_loss(student, labels, *_full(t1), *_full(o2), **KW, stabilizer_weight=0.5, row_teachers=primary)
    e = distill_loss(student, labels, *_full(o1), *_full(t2), **KW, stabilizer_weight=0.5, row_teachers=primary)
    assert float(c.total) == pytest.approx(float(d.total)) and float(c.total) != pytest.approx(float(e.total))


def test_rows_without_kinds_keep_the_spec_formula() -> None:
    student, t1, t2, labels = _inputs()
    both = torch.tensor([2, 2, 2])
    a = distill_loss(student, labels, *_full(t1), *_full(t2), **KW, stabilizer_weight=0.3)
    b = distill_loss(student, labels, *_full(t1), *_full(t2), **KW, stabilizer_weight=0.3, row_teachers=both)
    assert float(a.total) == float(b.total)
