"""Batched optimisers: per-sample convergence and isolation from bad samples."""
import pytest
import torch

from smplify.optim import adam, lbfgs


def _quadratics(B, D=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(B, D, D, generator=g)
    H = A @ A.transpose(1, 2) / D + torch.eye(D) * torch.logspace(-1, 1, B)[:, None, None]
    b = torch.randn(B, D, generator=g)
    return H, b


def _q(x, H, b, rows):
    if rows is not None:
        H, b = H[rows], b[rows]
    return 0.5 * torch.einsum("bi,bij,bj->b", x, H, x) - (x * b).sum(-1)


def test_lbfgs_solves_each_row_and_stops_converged_rows():
    H, b = _quadratics(4)
    f = lambda x, rows=None: _q(x, H, b, rows)
    r = lbfgs(f, torch.zeros(4, 6), max_iter=100, ftol=1e-10, gtol=1e-6)
    xs = torch.linalg.solve(H, b)
    assert torch.allclose(r.x, xs, atol=1e-3)
    assert r.converged.all()
    assert (r.iterations < 100).all()


def test_a_poisoned_row_cannot_stall_the_rest():
    """Row 1 is NaN everywhere; the other rows converge as if alone."""
    H, b = _quadratics(3, seed=1)

    def f(x, rows=None):
        rows = torch.arange(3) if rows is None else rows
        val = _q(x, H, b, rows)
        poison = torch.zeros_like(val)
        i = (rows == 1).nonzero().squeeze(1)
        poison = poison.index_put((i,), torch.sqrt(-(x[i] ** 2).sum(-1) - 1e-3))
        return val + poison  # row 1 is NaN everywhere

    r = lbfgs(f, torch.zeros(3, 6), max_iter=100, ftol=1e-10, gtol=1e-6)
    xs = torch.linalg.solve(H, b)
    # float32 on an ill-conditioned quadratic: ~1e-3 relative is what either direction form reaches
    assert torch.allclose(r.x[[0, 2]], xs[[0, 2]], atol=1e-3 * xs.abs().max())
    assert torch.isfinite(r.x).all()
    assert torch.equal(r.x[1], torch.zeros(6)) and bool(r.failed[1])  # flagged, never moved
    assert not r.failed[[0, 2]].any()


def test_nan_start_is_flagged_failed():
    f = lambda x, rows=None: torch.where(x[:, 0] > 0, torch.full_like(x[:, 0], float("nan")), (x ** 2).sum(-1))
    r = lbfgs(f, torch.tensor([[1.0, 1.0], [-1.0, 1.0]]), max_iter=50)
    assert r.failed.tolist() == [True, False]
    assert torch.allclose(r.x[1], torch.zeros(2), atol=1e-3)


def test_adam_converges_and_keeps_rows_finite():
    H, b = _quadratics(3, seed=2)
    f = lambda x, rows=None: _q(x, H, b, rows)
    r = adam(f, torch.zeros(3, 6), max_iter=3000, lr=0.05, ftol=1e-9, patience=50)
    xs = torch.linalg.solve(H, b)
    assert torch.allclose(r.x, xs, atol=5e-2)


def _two_loop(g, S, Y, valid, gamma):
    """Textbook two-loop recursion, one row at a time (the reference)."""
    out = []
    for b in range(g.shape[0]):
        pairs = [(S[b, k].double(), Y[b, k].double()) for k in range(S.shape[1]) if valid[b, k]]
        q = g[b].double().clone()
        alphas = []
        for s, y in reversed(pairs):
            a = (s @ q) / (s @ y)
            q -= a * y
            alphas.append(a)
        r = gamma[b].double() * q
        for (s, y), a in zip(pairs, reversed(alphas)):
            r += s * (a - (y @ r) / (s @ y))
        out.append(r)
    return torch.stack(out).float()


@pytest.mark.parametrize("small_batch", [0, 64])  # the loop form, the triangular-solve form
def test_batched_direction_equals_per_row_two_loop_recursion(small_batch):
    from smplify.optim import lbfgs_direction

    gen = torch.Generator().manual_seed(3)
    B, m, D = 5, 7, 12
    A = torch.randn(B, D, D, generator=gen)
    H = A @ A.transpose(1, 2) + torch.eye(D)  # SPD Hessians: y = H s gives sᵀy > 0
    S = torch.randn(B, m, D, generator=gen)
    Y = (H[:, None] @ S[..., None])[..., 0]
    valid = torch.rand(B, m, generator=gen) > 0.3
    valid[0] = False  # no history at all: plain scaled gradient
    g = torch.randn(B, D, generator=gen)
    gamma = torch.rand(B, generator=gen) + 0.5
    got = lbfgs_direction(g, S, Y, valid, gamma, small_batch=small_batch)
    want = _two_loop(g, S, Y, valid, gamma)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * want.abs().max())
    assert torch.allclose(got[0], gamma[0] * g[0])
    # a ring buffer read in place: slots in another order, with the pairs' 1/sᵀy given
    perm = [3, 5, 0, 6, 1, 4, 2]
    ring = torch.empty_like(S), torch.empty_like(Y), torch.empty_like(valid)
    for pos, slot in enumerate(perm):
        ring[0][:, slot], ring[1][:, slot], ring[2][:, slot] = S[:, pos], Y[:, pos], valid[:, pos]
    rho = ring[2].float() / (ring[0] * ring[1]).sum(-1)
    got = lbfgs_direction(g, *ring, gamma, small_batch=small_batch, order=perm, rho=rho)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * want.abs().max())


def test_lbfgs_records_a_loss_trace_that_never_rises():
    H, b = _quadratics(3, seed=4)
    r = lbfgs(lambda x, rows=None: _q(x, H, b, rows), torch.zeros(3, 6), max_iter=20, ftol=0, gtol=0)
    assert r.trace.shape[0] == 3 and r.trace.shape[1] >= 5
    assert (r.trace[:, 1:] <= r.trace[:, :-1] + 1e-6).all()
    assert torch.allclose(r.trace[:, -1], r.f)


def test_lbfgs_goes_on_from_a_previous_runs_memory():
    """Two runs joined by ``memory`` take the same steps as one run of both lengths; without the memory
    the second run starts over from a steepest-descent step."""
    H, b = (t.double() for t in _quadratics(3, seed=6))
    f = lambda x, rows=None: _q(x, H, b, rows)
    x0 = torch.zeros(3, 6, dtype=torch.float64)
    whole = lbfgs(f, x0, max_iter=8, history=10, ftol=0, gtol=0)
    first = lbfgs(f, x0, max_iter=4, history=10, ftol=0, gtol=0)
    second = lbfgs(f, first.x, max_iter=4, history=10, ftol=0, gtol=0, memory=first.memory)
    assert torch.allclose(second.x, whole.x, rtol=1e-10, atol=1e-12)
    fresh = lbfgs(f, first.x, max_iter=4, history=10, ftol=0, gtol=0)
    assert not torch.allclose(fresh.x, whole.x, rtol=1e-6, atol=1e-9)
    # a memory longer than the history keeps its newest pairs
    short = lbfgs(f, first.x, max_iter=4, history=2, ftol=0, gtol=0, memory=first.memory)
    assert torch.isfinite(short.x).all() and (short.f <= first.f + 1e-12).all()
