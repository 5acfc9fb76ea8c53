"""Batched optimisers: per-sample convergence and isolation from bad samples."""
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
    assert torch.allclose(r.x[[0, 2]], xs[[0, 2]], atol=1e-3)
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
