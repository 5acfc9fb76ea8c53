"""Lift a detector's 3D landmarks (MediaPipe's world landmarks) to an SMPL pose: inverse kinematics.

MediaPipe's world landmarks (:attr:`smplify.keypoints.Keypoints2D.world`) are in the camera's axes
(x right, y down, z away from the camera; origin between the hips; about metres), so an SMPL body
whose points match them after a translation and a uniform scale also has the camera-frame global
orientation a fit wants. :func:`lift_pose` finds that body for a batch of people at once: global
orientation and 21 body-joint rotations minimising

    Σ_m w_m ‖(P_m − P̄) − s (X_m − X̄)‖² / Σ_m w_m  +  λ_prior · prior(θ)  +  λ_bend · bend(θ)

over the keypoints' body points P (24 joints, then landmarks, as the fitter's targets index them),
with the translation (weighted centroids) and the scale s solved in closed form at every step; the
pose prior settles what joint positions leave open (a bone's twist). The shape is given (the
regressor's, or the mean). Global orientation starts from a Kabsch alignment of the torso (hips and
shoulders) unless a start is given. Pure tensor code over a body model; the fitter's start option
(``init='lift'``) calls it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .body.jacobian import PointJacobian
from .objective import bend_term
from .optim import lbfgs
from .residuals import bend_normal, has_least_squares_form, pose_prior_normal
from .rotations import rotmat_to_rotvec

TORSO = (1, 2, 16, 17)  # SMPL left/right hip, left/right shoulder


@dataclass
class LiftResult:
    """global_orient (B, 3) camera frame; body_pose (B, 63); scale (B,) metres of body per landmark unit;
    error_m (B,) weighted RMS distance of the aligned points (metres); iterations (B,)."""

    global_orient: torch.Tensor
    body_pose: torch.Tensor
    scale: torch.Tensor
    error_m: torch.Tensor
    iterations: torch.Tensor


def similarity_residuals(points: torch.Tensor, world: torch.Tensor, weight: torch.Tensor):
    """Body points minus the landmarks after the best translation and uniform scale of the landmarks.

    points, world: (B, M, 3); weight: (B, M) ≥ 0. Returns residuals (B, M, 3) = (P − P̄) − s (X − X̄) and s (B,),
    with P̄, X̄ the weighted centroids and s = Σ w (P − P̄)·(X − X̄) / Σ w ‖X − X̄‖²."""
    wn = weight / weight.sum(-1, keepdim=True).clamp(min=1e-9)
    Pc = points - (wn[..., None] * points).sum(1, keepdim=True)
    Xc = world - (wn[..., None] * world).sum(1, keepdim=True)
    s = (wn[..., None] * Pc * Xc).sum((1, 2)) / (wn[..., None] * Xc * Xc).sum((1, 2)).clamp(min=1e-9)
    return Pc - s[:, None, None] * Xc, s


def kabsch_rotation(src: torch.Tensor, dst: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Rotations R (B, 3, 3) with R src_m ≈ dst_m after weighted centring. src, dst (B, M, 3); weight (B, M)."""
    wn = weight / weight.sum(-1, keepdim=True).clamp(min=1e-9)
    s = src - (wn[..., None] * src).sum(1, keepdim=True)
    d = dst - (wn[..., None] * dst).sum(1, keepdim=True)
    H = torch.einsum("bm,bmi,bmj->bij", wn, d, s)  # Σ w d sᵀ
    U, _, Vt = torch.linalg.svd(H)
    sign = torch.sign(torch.linalg.det(U @ Vt))
    D = torch.diag_embed(torch.stack([torch.ones_like(sign), torch.ones_like(sign), sign], -1))
    return U @ D @ Vt


def lift_pose(body, index: torch.Tensor, world: torch.Tensor, weight: torch.Tensor, betas: Optional[torch.Tensor] = None,
              prior=None, prior_weight: float = 2e-5, bend_weight: float = 2e-5,
              global_orient: Optional[torch.Tensor] = None, body_pose: Optional[torch.Tensor] = None,
              iterations: int = 60, analytic: bool = True, point_jacobian=None) -> LiftResult:
    """SMPL poses whose points match 3D landmarks up to translation and scale (see the module docstring).

    Args:
        body: :class:`smplify.body.BodyModel`. index: (B, M) body point of each landmark (24 joints, then
        landmarks). world: (B, M, 3) the landmarks in the camera's axes. weight: (B, M) ≥ 0 (0: unused).
        betas: (B, S) shape or None (mean). prior: a pose prior with ``nll`` (B, 63) -> (B,) or None;
        prior_weight, bend_weight: λ_prior, λ_bend. global_orient (B, 3), body_pose (B, 63): a start
        (default: the torso's Kabsch rotation, the prior's mean pose or zeros). analytic: the gradient from
        :class:`~smplify.body.jacobian.PointJacobian` (as the fitter's L-BFGS; for a model without pose correctives
        and a prior with a least-squares form) instead of autograd; point_jacobian: one for the root and joints
        1-21 to reuse.
    Returns :class:`LiftResult`.
    """
    B = world.shape[0]
    dev, dt = world.device, world.dtype
    world, weight = world.to(dt), weight.clamp(min=0).to(dt)
    betas = torch.zeros(B, body.num_betas, device=dev, dtype=dt) if betas is None else betas.to(dt)[:, :body.num_betas]
    gather = lambda pts: torch.gather(pts, 1, index[..., None].expand(-1, -1, 3))
    if body_pose is None:
        mp = getattr(prior, "mean_pose", None)
        body_pose = (torch.as_tensor(mp(), dtype=dt, device=dev).reshape(1, 63).expand(B, 63) if mp
                     else torch.zeros(B, 63, device=dev, dtype=dt))
    if global_orient is None:
        with torch.no_grad():
            rest = gather(body.joints_and_landmarks(torch.zeros(B, 3, device=dev, dtype=dt), body_pose, betas).points)
        torso = torch.zeros_like(weight, dtype=torch.bool)
        for j in TORSO:
            torso |= index == j
        wt = torch.where(torso, weight, torch.zeros_like(weight))
        few = (wt > 0).sum(1) < 3  # no torso: every landmark
        wt[few] = weight[few]
        global_orient = rotmat_to_rotvec(kabsch_rotation(rest, world, wt))

    def objective(x, rows=None):
        sel = (lambda t: t) if rows is None else (lambda t: t[rows])
        go, pose = x[:, :3], x[:, 3:]
        P = gather_rows(body.joints_and_landmarks(go, pose, sel(betas)).points, sel(index))
        r, _ = similarity_residuals(P, sel(world), sel(weight))
        wn = sel(weight) / sel(weight).sum(-1, keepdim=True).clamp(min=1e-9)
        f = (wn * r.pow(2).sum(-1)).sum(-1)
        if prior is not None and prior_weight:
            f = f + prior_weight * prior.nll(pose)
        if bend_weight:
            f = f + bend_weight * bend_term(pose)
        return f

    grad_fn = None
    if analytic and not getattr(body, "has_posedirs", False) and (prior is None or has_least_squares_form(prior)):
        pj = point_jacobian if point_jacobian is not None else PointJacobian(body, tuple(range(22)))
        zero_t = torch.zeros(B, 3, device=dev, dtype=dt)

        def grad_fn(x, rows=None):
            """f and ∂f/∂x without autograd: the aligned residuals' gradient 2 w r per point (the optimal
            translation and scale make their own derivatives vanish), back through the body by
            :meth:`PointJacobian.vjp`; the prior's and the bend's from their normal equations."""
            sel = (lambda t: t) if rows is None else (lambda t: t[rows])
            go, pose = x[:, :3], x[:, 3:]
            posed = pj.posed(go, pose, sel(betas), sel(zero_t))
            idx = sel(index)
            r, _ = similarity_residuals(gather_rows(posed.points, idx), sel(world), sel(weight))
            wn = sel(weight) / sel(weight).sum(-1, keepdim=True).clamp(min=1e-9)
            f = (wn * r.pow(2).sum(-1)).sum(-1)
            v = torch.zeros_like(posed.points).scatter_add_(1, idx[..., None].expand(-1, -1, 3), 2 * wn[..., None] * r)
            g, _ = pj.vjp(posed, v, with_betas=False)
            g = g.clone()
            if prior is not None and prior_weight:
                fp, gp, _ = pose_prior_normal(prior, pose, hessian=False)
                f = f + prior_weight * fp
                if gp is not None:
                    g[:, 3:] += 2 * prior_weight * gp
            if bend_weight:
                fb, gb, _ = bend_normal(pose, hessian=False)
                f = f + bend_weight * fb
                g[:, 3:] += 2 * bend_weight * gb
            return f, g

    x0 = torch.cat([global_orient.to(dt), body_pose.to(dt)], 1)
    with torch.inference_mode(grad_fn is not None):
        res = lbfgs(objective, x0, max_iter=iterations, history=20, grad_fn=grad_fn)
    x = res.x.detach().clone()
    with torch.no_grad():
        P = gather(body.joints_and_landmarks(x[:, :3], x[:, 3:], betas).points)
        r, s = similarity_residuals(P, world, weight)
        wn = weight / weight.sum(-1, keepdim=True).clamp(min=1e-9)
        err = (wn * r.pow(2).sum(-1)).sum(-1).sqrt()
    return LiftResult(x[:, :3], x[:, 3:], s, err, res.iterations)


def gather_rows(points: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """points (B, N, 3), index (B, M) -> (B, M, 3)."""
    return torch.gather(points, 1, index[..., None].expand(-1, -1, 3))
