"""Levenberg-Marquardt path: analytic point Jacobians, residual form of the objective, the optimiser."""
import numpy as np
import pytest
import torch

from smplify.body import BodyModel
from smplify.body.jacobian import PointJacobian
from smplify.rotations import rotvec_to_rotmat, rotvec_to_rotmat_and_right_jacobian
from smplify.body.tiny import make_tiny_model
from smplify.config import FitConfig
from smplify.api import build_fitter
from smplify.fitting.batch import make_batch
from smplify.fitting.starts import FACING_CAMERA
from smplify.optim import levenberg_marquardt, normal_equations


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


@pytest.mark.parametrize("model", ["tiny", "tiny-posedirs", "open"])
@pytest.mark.parametrize("rotated", [tuple(range(22)), (0,), tuple(range(1, 22)), (0, 3, 7)])
def test_reverse_mode_gradient_equals_the_jacobian_applied_to_a_vector(model, rotated):
    """PointJacobian.posed + vjp (reverse mode over skinning pairs and subtree sums) against vᵀ of the
    forward Jacobian (points and columns), for every point at once. The open model's landmarks are
    skinned to several joints (more pairs than landmarks); the tiny model's each to one."""
    if model == "open":
        from smplify.api import load_body
        body = load_body()
    else:
        body = BodyModel(make_tiny_model(with_posedirs=model == "tiny-posedirs"))
    g = torch.Generator().manual_seed(4)
    go, bp = torch.randn(4, 3, generator=g) * 0.5, torch.randn(4, 63, generator=g) * 0.4
    be, tr = torch.randn(4, body.num_betas, generator=g), torch.randn(4, 3, generator=g)
    pj = PointJacobian(body, rotated)
    pts, d_rot, d_beta = pj(go, bp, be, tr)
    posed = pj.posed(go, bp, be, tr)
    assert torch.allclose(posed.points, pts, atol=1e-5)
    v = torch.randn(pts.shape, generator=g)
    g_rot, g_beta = pj.vjp(posed, v)
    want_rot = (v[..., None] * d_rot).sum((1, 2))
    want_beta = (v[..., None] * d_beta).sum((1, 2))
    assert torch.allclose(g_rot, want_rot, atol=1e-4 * want_rot.abs().max())
    assert torch.allclose(g_beta, want_beta, atol=1e-4 * want_beta.abs().max())
    assert pj.vjp(posed, v, with_betas=False)[1] is None
    if model == "open":
        assert len(pj.pair_lm) > pj.L


def test_forward_kinematics_by_levels_equals_pointer_doubling(monkeypatch):
    from smplify.body import kinematics
    body = BodyModel(make_tiny_model())
    g = torch.Generator().manual_seed(5)
    rv = torch.randn(80, 24, 3, generator=g).requires_grad_(True)
    rest = torch.randn(80, 24, 3, generator=g)
    w = [torch.randn(80, 24, *s, generator=g) for s in ((3,), (3, 3), (3,))]

    def run():  # outputs and the gradient of a random linear function of them (autograd through the loop)
        out = kinematics.forward_kinematics(rotvec_to_rotmat(rv), rest, body.tree)
        (grad,) = torch.autograd.grad(sum((o * wi).sum() for o, wi in zip(out, w)), rv)
        return out + (grad,)

    by_levels = run()  # 80 rows: one level at a time
    monkeypatch.setattr(kinematics, "LEVELS_FROM_BATCH", 10 ** 9)
    doubling = run()
    for a, b in zip(by_levels, doubling):
        assert torch.allclose(a, b, atol=1e-4)


def test_right_jacobian_first_order():
    g = torch.Generator().manual_seed(1)

    for th in (torch.randn(3, generator=g), torch.tensor([1e-5, -2e-5, 0.0])):
        th = th.double()
        d = torch.randn(3, generator=g).double() * 1e-6
        lhs = rotvec_to_rotmat(th + d)
        R, Jr = rotvec_to_rotmat_and_right_jacobian(th)
        rhs = rotvec_to_rotmat(th) @ rotvec_to_rotmat(Jr @ d)
        assert (lhs - rhs).abs().max() < 1e-10
        assert torch.allclose(R, rotvec_to_rotmat(th), atol=1e-12)


def _fit_setup(prior):
    from smplify.evaluation.synthetic import make_cases
    from smplify.keypoints.layouts import MEDIAPIPE33
    from smplify.keypoints.mapping import layout_targets

    body = BodyModel(make_tiny_model(with_posedirs=False))
    cases = make_cases(body, layout_targets(MEDIAPIPE33, body.landmark_names), n=3, noise_levels=(3.0,),
                       dropouts=(0.1,), seed=2)
    return body, cases


GROUPS = [("transl", "global_orient"), ("global_orient", "focal"), ("transl", "global_orient", "pose", "betas", "focal"), ("pose",),
          ("betas", "transl"), ("pose", "global_orient")]


@pytest.mark.parametrize("prior", ["none", "gmm", "bend"])
def test_normal_equations_equal_the_objective_its_gradient_and_gauss_newton(prior):
    body, cases = _fit_setup(prior)
    f = build_fitter(body, FitConfig(prior=prior, optimizer="lm", optimize_focal=True))
    inputs = [c.fit_input for c in cases]
    batch = make_batch(inputs, f.config.min_confidence, f.device)
    x = f.start(inputs, batch, FACING_CAMERA)
    batch.transl0 = x[:, :3].clone()
    x = x + torch.randn(x.shape, generator=torch.Generator().manual_seed(3)) * 0.05
    for stage in f.config.schedule():
        xx = x.clone().requires_grad_(True)
        terms, _ = f.objective.terms(xx, batch, stage.torso_only)
        tot = f.objective.total(terms, stage)
        (grad,) = torch.autograd.grad(tot.sum(), xx)
        for groups in GROUPS:
            cols = torch.cat([torch.arange(f.layout.dim)[f.layout[g]] for g in groups])
            fr, g, H = f.objective.normal(x, batch, stage, list(groups))
            assert g.shape == (3, len(cols)) and H.shape == (3, len(cols), len(cols))
            assert torch.allclose(fr, tot.detach(), rtol=1e-4, atol=1e-2)
            want = grad[:, cols]
            assert torch.allclose(2 * g, want, rtol=1e-3, atol=1e-3 * want.abs().max())
            f1, g1, H1 = f.objective.normal(x, batch, stage, list(groups), hessian=False)  # gradient only (a VJP)
            assert H1 is None and torch.allclose(f1, fr, rtol=1e-5) and torch.allclose(g1, g, rtol=1e-4, atol=1e-4 * g.abs().max())
            assert torch.allclose(H, H.transpose(1, 2), atol=1e-3 * H.abs().max())  # a Gauss-Newton matrix:
            assert (torch.linalg.eigvalsh(H.double()) > -1e-3 * H.abs().max()).all()  # symmetric, PSD
            if set(groups) <= {"transl", "global_orient", "focal"}:  # the rigid path: same equations
                rigid = f.objective.rigid_body(x, batch)
                for a, b in zip(f.objective.normal(x, batch, stage, list(groups), rigid=rigid), (fr, g, H)):
                    assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * b.abs().max())
                rows = torch.tensor([2, 0])
                sub = f.objective.normal(x[rows], batch, stage, list(groups), rows, tuple(t[rows] for t in rigid))
                assert torch.allclose(sub[1], g[rows], rtol=1e-4, atol=1e-4 * g.abs().max())
        with pytest.raises(ValueError, match="rigid"):
            f.objective.normal(x, batch, stage, ["pose"], rigid=f.objective.rigid_body(x, batch))


@pytest.mark.parametrize("d_log_focal", [False, True])
def test_reprojection_residual_jacobian_matches_autograd(d_log_focal):
    from smplify.residuals import reprojection_chain

    def reprojection_residuals(P, dP, focal, *rest, d_log_focal=False):  # r (B, 2M), J = C dP (+ focal column)
        r, C, Jf = reprojection_chain(P, focal, *rest, d_log_focal=d_log_focal)
        J = C @ dP if Jf is None else torch.cat([C @ dP, Jf], -1)
        return r.reshape(B, -1), J.reshape(B, r.shape[1] * 2, -1)

    g = torch.Generator().manual_seed(4)
    B, M, D = 2, 5, 4
    A = torch.randn(B, M, 3, D, generator=g, dtype=torch.float64)
    b = torch.randn(B, M, 3, generator=g, dtype=torch.float64) * 0.3 + torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64)
    x0 = torch.randn(B, D, generator=g, dtype=torch.float64) * 0.1
    focal = torch.tensor([[500.0, 520.0], [800.0, 800.0]], dtype=torch.float64)
    pp = torch.tensor([[250.0, 250.0], [400.0, 300.0]], dtype=torch.float64)
    target = torch.rand(B, M, 2, generator=g, dtype=torch.float64) * 500
    w = torch.tensor([[1.0, 0.5, 0.0, 2.0, 1.0], [1.0, 1.0, 1.0, 0.3, 0.0]], dtype=torch.float64)
    scale = torch.tensor([0.5, 1.5], dtype=torch.float64)

    def res(xf):  # xf: (B, D + 1) with a log focal scale last
        P = (A @ xf[:, :D, None, None].transpose(1, 2).expand(B, M, D, 1))[..., 0] + b
        return reprojection_residuals(P, A, focal * torch.exp(xf[:, D:]), pp, target, w, scale, 100.0)[0]

    xf = torch.cat([x0, torch.zeros(B, 1, dtype=torch.float64)], 1)
    P = (A @ x0[:, None, :, None].expand(B, M, D, 1))[..., 0] + b
    r, J = reprojection_residuals(P, A, focal, pp, target, w, scale, 100.0, d_log_focal=d_log_focal)
    auto = torch.autograd.functional.jacobian(lambda q: res(q).sum(0), xf).permute(1, 0, 2)  # (B, 2M, D+1)
    assert torch.allclose(r, res(xf))
    assert torch.allclose(J, auto if d_log_focal else auto[..., :D], atol=1e-9)


def test_gmm_block_of_the_normal_equations_is_its_precision():
    from priors import get_pose_prior
    from smplify.residuals import pose_prior_normal

    prior = get_pose_prior("gmm", None)
    pose = torch.as_tensor(prior.sample(4, seed=1))
    f, g, H = pose_prior_normal(prior, pose)
    assert torch.allclose(f, prior.nll(pose, mode="max"), rtol=1e-5, atol=1e-3)
    p = pose.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(prior.nll(p, mode="max").sum(), p)
    assert torch.allclose(2 * g, grad, rtol=1e-3, atol=1e-3 * grad.abs().max())
    hess = torch.autograd.functional.hessian(lambda q: prior.nll(q[None], mode="max")[0], pose[0])
    assert torch.allclose(2 * H[0], hess, rtol=1e-3, atol=1e-3 * hess.abs().max())
    # without H (L-BFGS): every component's gradient from one product, the best one's kept
    far = torch.cat([pose, pose * 3.0, torch.zeros(1, 63)])  # poses whose best component differs
    f1, g1, H1 = pose_prior_normal(prior, far, hessian=False)
    f2, g2, _ = pose_prior_normal(prior, far)
    assert H1 is None and torch.allclose(f1, f2, rtol=1e-5) and torch.allclose(g1, g2, rtol=1e-4, atol=1e-4 * g2.abs().max())
    assert len(set(prior.component_nll(far).argmin(-1).tolist())) > 1
    # and against the prior's own nll (component_nll, another formula) and autograd on it
    assert torch.allclose(f1, prior.nll(far, mode="max"), rtol=1e-5, atol=1e-3)
    q = far.clone().requires_grad_(True)
    (grad_far,) = torch.autograd.grad(prior.nll(q, mode="max").sum(), q)
    assert torch.allclose(2 * g1, grad_far, rtol=1e-3, atol=1e-3 * grad_far.abs().max())


def _rosenbrock(x, rows=None):
    """f = ‖r‖², r = (1 − x₀, 10 (x₁ − x₀²)); minimum 0 at (1, 1). Returns f, g = Jᵀr, H = JᵀJ."""
    r = torch.stack([1 - x[:, 0], 10 * (x[:, 1] - x[:, 0] ** 2)], 1)
    J = torch.zeros(x.shape[0], 2, 2)
    J[:, 0, 0] = -1
    J[:, 1, 0] = -20 * x[:, 0]
    J[:, 1, 1] = 10
    return (r.pow(2).sum(-1), *normal_equations(r, J))


def test_levenberg_marquardt_solves_rows_independently_and_survives_a_nan_row():
    def res(x, rows=None):
        f, g, H = _rosenbrock(x)
        rows = torch.arange(3) if rows is None else rows
        poison = (rows == 1)[:, None]
        return torch.where(poison[:, 0], float("nan"), f), torch.where(poison, float("nan"), g), H

    x0 = torch.tensor([[-1.2, 1.0], [0.0, 0.0], [2.0, -1.0]])
    out = levenberg_marquardt(res, x0, max_iter=200, ftol=1e-12)
    assert torch.allclose(out.x[[0, 2]], torch.ones(2, 2), atol=1e-3)
    assert out.failed.tolist() == [False, True, False] and torch.equal(out.x[1], x0[1])
    assert (out.trace[[0, 2], 1:] <= out.trace[[0, 2], :-1] + 1e-7).all()  # accepted on the true loss
    alone = levenberg_marquardt(_rosenbrock, x0[:1], max_iter=200, ftol=1e-12)
    assert torch.allclose(alone.x, out.x[:1], atol=1e-5)


def test_auto_optimizer_choice_and_lm_round_trip():
    body, cases = _fit_setup("none")
    assert build_fitter(body, FitConfig(prior="gmm")).optimizer == "lbfgs"  # the default
    assert build_fitter(body, FitConfig(prior="gmm", optimizer="auto")).optimizer == "lm"
    assert build_fitter(body, FitConfig(prior="vae", optimizer="auto")).optimizer == "lbfgs"  # decoder: no residual form
    assert build_fitter(body, FitConfig(prior="none", optimizer="auto")).optimizer == "lbfgs"  # no prior: L-BFGS
    assert build_fitter(body, FitConfig(prior="none", optimizer="lm")).optimizer == "lm"  # but it may be asked for
    with pytest.raises(ValueError, match="least-squares"):
        build_fitter(body, FitConfig(prior="vae", optimizer="lm"))
    res = build_fitter(body, FitConfig(prior="gmm", optimizer="lm")).fit([c.fit_input for c in cases])
    for r, c in zip(res, cases):
        assert r.optimizer == "lm" and not r.failed and np.isfinite(r.body_pose).all()
        assert r.mean_error_px < 10.0


def test_batched_cholesky_solve_in_threads_equals_one_call_and_flags_indefinite_rows():
    from smplify.optim import cholesky_solve_batched

    g = torch.Generator().manual_seed(5)
    J = torch.randn(70, 12, 8, generator=g, dtype=torch.float64)
    A = J.transpose(1, 2) @ J + 0.1 * torch.eye(8, dtype=torch.float64)
    A[3] = -A[3]  # not positive definite
    b = torch.randn(70, 8, generator=g, dtype=torch.float64)
    x, ok = cholesky_solve_batched(A, b, min_rows=8)  # split over threads (where torch has 2+)
    x1, ok1 = cholesky_solve_batched(A, b, min_rows=10**9)  # one call
    assert ok.tolist() == ok1.tolist() and not ok[3] and ok.sum() == 69
    keep = ok.nonzero().squeeze(1)
    assert torch.allclose(x[keep], x1[keep]) and torch.allclose((A[keep] @ x[keep, :, None])[..., 0], b[keep])


def test_lbfgs_takes_analytic_gradients_where_the_objective_is_least_squares():
    from smplify.config import Stage
    from smplify.optim import lbfgs

    body, cases = _fit_setup("none")
    assert build_fitter(body, FitConfig(prior="gmm")).analytic_gradients
    assert not build_fitter(body, FitConfig(prior="gmm", analytic_gradients=False)).analytic_gradients
    assert not build_fitter(body, FitConfig(prior="vae")).analytic_gradients  # decoder: autograd
    corrective = BodyModel(make_tiny_model(with_posedirs=True))  # pose correctives: the Jacobian is not exact
    assert not build_fitter(corrective, FitConfig(prior="gmm")).analytic_gradients
    # L-BFGS with a gradient function follows autograd's path (Rosenbrock)
    x0 = torch.tensor([[-1.2, 1.0], [2.0, -1.0]])
    rosen = lambda x, rows=None: _rosenbrock(x)[0]
    grad = lambda x, rows=None: (_rosenbrock(x)[0], 2 * _rosenbrock(x)[1])  # ∇‖r‖² = 2Jᵀr
    a, b = lbfgs(rosen, x0, max_iter=100, ftol=1e-14), lbfgs(rosen, x0, max_iter=100, ftol=1e-14, grad_fn=grad)
    assert torch.allclose(a.x, b.x, atol=1e-4) and torch.allclose(b.x, torch.ones(2, 2), atol=1e-3)
    # and in the fitter: a few iterations (long float32 runs of an unconverged L-BFGS drift apart)
    short = (Stage("camera", ("transl", "global_orient"), 5, depth=100.0, torso_only=True),
             Stage("pose", ("transl", "global_orient", "pose", "betas"), 5, pose_prior=3.0, shape=20.0, bend=5.0))
    inputs = [c.fit_input for c in cases]
    for init in ("mean", "regressor"):
        ra = build_fitter(body, FitConfig(prior="gmm", stages=short, flip_test=False, init=init)).fit(inputs)
        rb = build_fitter(body, FitConfig(prior="gmm", stages=short, flip_test=False, analytic_gradients=False,
                                    init=init)).fit(inputs)
        for p, q in zip(ra, rb):
            assert p.optimizer == q.optimizer == "lbfgs" and not p.failed
            # float32 rounding relative to the objective's scale (a loss near 0 sums terms of hundreds)
            scale = np.abs(q.loss_curve).max()
            assert np.allclose(p.loss_curve, q.loss_curve, rtol=1e-3, atol=1e-4 * scale), init
            assert np.allclose(p.body_pose, q.body_pose, atol=1e-3)


def test_reprojection_gradient_is_the_chain_matrix_applied_to_the_residuals():
    """L-BFGS's v = Cᵀr and focal gradient without forming C, including a point behind the depth clamp."""
    from smplify.residuals import reprojection_chain, reprojection_gradient

    g = torch.Generator().manual_seed(5)
    B, M = 2, 6
    P = torch.randn(B, M, 3, generator=g, dtype=torch.float64) * 0.4 + torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64)
    P[1, 2, 2] = -0.5  # behind the camera: clamped depth, no derivative through z
    focal = torch.tensor([[500.0, 520.0], [800.0, 800.0]], dtype=torch.float64)
    pp = torch.tensor([[250.0, 250.0], [400.0, 300.0]], dtype=torch.float64)
    target = torch.rand(B, M, 2, generator=g, dtype=torch.float64) * 500
    w = torch.rand(B, M, generator=g, dtype=torch.float64) * 2
    w[0, 1] = 0.0
    scale = torch.tensor([0.5, 1.5], dtype=torch.float64)
    r, C, Jf = reprojection_chain(P, focal, pp, target, w, scale, 100.0, d_log_focal=True)
    r2, v, gf = reprojection_gradient(P, focal, pp, target, w, scale, 100.0, d_log_focal=True)
    assert torch.equal(r, r2)
    assert torch.allclose(v, (C.transpose(-1, -2) @ r[..., None])[..., 0], atol=1e-12)
    assert torch.allclose(gf[:, 0], (Jf[..., 0] * r).sum((1, 2)), atol=1e-12)
    assert reprojection_gradient(P, focal, pp, target, w, scale, 100.0)[2] is None
