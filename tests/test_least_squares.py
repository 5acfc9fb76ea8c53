"""Levenberg-Marquardt path: analytic point Jacobians, residual form of the objective, the optimiser."""
import dataclasses

import numpy as np
import pytest
import torch

from smplify.body import BodyModel
from smplify.body.jacobian import PointJacobian, right_jacobian_so3
from smplify.body.tiny import make_tiny_model
from smplify.config import FitConfig
from smplify.fitter import FACING_CAMERA, Fitter
from smplify.optim import levenberg_marquardt


def _autograd_jacobian(body, go, bp, be, tr):
    B = go.shape[0]
    f = lambda a, b, c: body.joints_and_landmarks(a, b, c, tr).points.sum(0)  # rows are independent
    Jg = torch.autograd.functional.jacobian(f, (go, bp, be))  # each (N, 3, B, ·)
    rot = torch.cat([Jg[0], Jg[1]], -1).permute(2, 0, 1, 3)
    return rot, Jg[2].permute(2, 0, 1, 3)


@pytest.mark.parametrize("posedirs", [False, True])
def test_point_jacobian_matches_autograd(posedirs):
    body = BodyModel(make_tiny_model(with_posedirs=posedirs))
    g = torch.Generator().manual_seed(0)
    go, bp = torch.randn(3, 3, generator=g) * 0.5, torch.randn(3, 63, generator=g) * 0.4
    be, tr = torch.randn(3, body.num_betas, generator=g), torch.randn(3, 3, generator=g)
    pts, d_rot, d_beta = PointJacobian(body)(go, bp, be, tr)
    assert torch.allclose(pts, body.joints_and_landmarks(go, bp, be, tr).points, atol=1e-5)
    rot, beta = _autograd_jacobian(body, go, bp, be, tr)
    assert torch.allclose(d_beta, beta, atol=1e-5)
    if posedirs:  # the correctives' own derivative is left out: close, not exact
        assert (d_rot - rot).abs().max() < 0.05
    else:
        assert torch.allclose(d_rot, rot, atol=1e-5)
    idx = torch.tensor([[0, 5, 30], [1, 2, 3], [40, 0, 7]])
    p2, r2, b2 = PointJacobian(body)(go, bp, be, tr, index=idx)
    assert torch.allclose(p2, torch.gather(pts, 1, idx[..., None].expand(-1, -1, 3)))
    assert torch.allclose(r2, torch.gather(d_rot, 1, idx[..., None, None].expand(-1, -1, 3, d_rot.shape[-1])))


def test_right_jacobian_first_order():
    g = torch.Generator().manual_seed(1)
    from smplify.body.kinematics import fast_rodrigues

    for th in (torch.randn(3, generator=g), torch.tensor([1e-5, -2e-5, 0.0])):
        th = th.double()
        d = torch.randn(3, generator=g).double() * 1e-6
        lhs = fast_rodrigues(th + d)
        rhs = fast_rodrigues(th) @ fast_rodrigues(right_jacobian_so3(th) @ d)
        assert (lhs - rhs).abs().max() < 1e-10


def _fit_setup(prior):
    from smplify.benchmark.synthetic import make_cases
    from smplify.keypoints.layouts import MEDIAPIPE33
    from smplify.keypoints.mapping import layout_targets

    body = BodyModel(make_tiny_model(with_posedirs=False))
    cases = make_cases(body, layout_targets(MEDIAPIPE33, body.landmark_names), n=3, noise_levels=(3.0,),
                       dropouts=(0.1,), seed=2)
    return body, cases


@pytest.mark.parametrize("prior", ["none", "gmm"])
def test_residual_form_equals_the_objective_and_its_gradient(prior):
    body, cases = _fit_setup(prior)
    f = Fitter(body, FitConfig(prior=prior, optimizer="lm", optimize_focal=True))
    inputs = [c.fit_input for c in cases]
    batch = f._batch(inputs)
    x = f._initial(inputs, batch, FACING_CAMERA)
    batch["transl0"] = x[:, :3].clone()
    x = x + torch.randn(x.shape, generator=torch.Generator().manual_seed(3)) * 0.05
    for stage in f.config.stages:
        fr, r, J = f._residuals(x, batch, stage)
        xx = x.clone().requires_grad_(True)
        terms, _ = f._terms(xx, batch, stage.torso_only)
        tot = f._total(terms, stage)
        (g,) = torch.autograd.grad(tot.sum(), xx)
        assert torch.allclose(fr, tot.detach(), rtol=1e-4, atol=1e-2)
        g2 = 2 * (J.transpose(1, 2) @ r[..., None])[..., 0]
        assert torch.allclose(g2, g, rtol=1e-3, atol=1e-3 * g.abs().max())


def _rosenbrock(x, rows=None):
    """f = ‖r‖², r = (1 − x₀, 10 (x₁ − x₀²)); minimum 0 at (1, 1)."""
    r = torch.stack([1 - x[:, 0], 10 * (x[:, 1] - x[:, 0] ** 2)], 1)
    J = torch.zeros(x.shape[0], 2, 2)
    J[:, 0, 0] = -1
    J[:, 1, 0] = -20 * x[:, 0]
    J[:, 1, 1] = 10
    return r.pow(2).sum(-1), r, J


def test_levenberg_marquardt_solves_rows_independently_and_survives_a_nan_row():
    def res(x, rows=None):
        f, r, J = _rosenbrock(x)
        rows = torch.arange(3) if rows is None else rows
        poison = (rows == 1)[:, None]
        return torch.where(poison[:, 0], float("nan"), f), torch.where(poison, float("nan"), r), J

    x0 = torch.tensor([[-1.2, 1.0], [0.0, 0.0], [2.0, -1.0]])
    out = levenberg_marquardt(res, x0, max_iter=200, ftol=1e-12)
    assert torch.allclose(out.x[[0, 2]], torch.ones(2, 2), atol=1e-3)
    assert out.failed.tolist() == [False, True, False] and torch.equal(out.x[1], x0[1])
    assert (out.trace[[0, 2], 1:] <= out.trace[[0, 2], :-1] + 1e-7).all()  # accepted on the true loss
    alone = levenberg_marquardt(_rosenbrock, x0[:1], max_iter=200, ftol=1e-12)
    assert torch.allclose(alone.x, out.x[:1], atol=1e-5)


def test_auto_optimizer_choice_and_lm_round_trip():
    body, cases = _fit_setup("none")
    assert Fitter(body, FitConfig(prior="gmm")).optimizer == "lbfgs"  # the default
    assert Fitter(body, FitConfig(prior="gmm", optimizer="auto")).optimizer == "lm"
    assert Fitter(body, FitConfig(prior="vae", optimizer="auto")).optimizer == "lbfgs"  # decoder: no residual form
    assert Fitter(body, FitConfig(prior="none", optimizer="auto")).optimizer == "lbfgs"  # no prior: L-BFGS
    assert Fitter(body, FitConfig(prior="none", optimizer="lm")).optimizer == "lm"  # but it may be asked for
    with pytest.raises(ValueError, match="least-squares"):
        Fitter(body, FitConfig(prior="vae", optimizer="lm"))
    res = Fitter(body, FitConfig(prior="gmm", optimizer="lm")).fit([c.fit_input for c in cases])
    for r, c in zip(res, cases):
        assert r.optimizer == "lm" and not r.failed and np.isfinite(r.body_pose).all()
        assert r.mean_error_px < 10.0
