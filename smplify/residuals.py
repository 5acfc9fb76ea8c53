"""The SMPLify objective as least squares: residual vectors and their Jacobians.

Every term of :mod:`smplify.objective` is a sum of squares (plus, for the GMM, a constant
per component), so the objective equals ‖r‖² + c for a residual vector r. Levenberg-Marquardt
(:func:`smplify.optim.levenberg_marquardt`) needs only the Gauss-Newton normal equations,
g = Jᵀr and H = JᵀJ: the data term gives r and its derivative per point (then J = C ∂P/∂x, or
only g = (Cᵀr)ᵀ ∂P/∂x for L-BFGS's gradient); the pose priors give g and H directly (the GMM's H
is a constant matrix per component). Pure tensor functions; shapes in docstrings.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .objective import BEND_INDEX, BEND_SIGN


def _geman_mcclure(points, focal, principal_point, target, weight, scale, sigma, min_depth):
    """The residuals and what their derivatives reuse (see :func:`reprojection_chain`)."""
    z_raw = points[..., 2]
    inv_z = 1.0 / z_raw.clamp(min=min_depth)
    xy = points[..., :2] * inv_z[..., None]
    uv = xy * focal[:, None] + principal_point[:, None]
    e = (uv - target) * scale[:, None, None]  # (B, M, 2) normalised pixels
    d2 = e.pow(2).sum(-1, keepdim=True)  # (B, M, 1)
    den = (sigma * sigma + d2).rsqrt()  # 1/√(σ² + d²)
    a = weight.clamp(min=0).sqrt()[..., None] * sigma * den  # (B, M, 1)
    # ∂e/∂P_xy (diagonal) and the projected point with a clamped depth's column zeroed (no derivative)
    k = focal[:, None] * inv_z[..., None] * scale[:, None, None]  # (B, M, 2)
    xy_front = xy * (z_raw > min_depth).to(points.dtype)[..., None]
    return uv, e, den, a, a * e, k, xy_front


def reprojection_chain(points: torch.Tensor, focal: torch.Tensor, principal_point: torch.Tensor, target: torch.Tensor,
                       weight: torch.Tensor, scale: torch.Tensor, sigma: float, d_log_focal: bool = False,
                       min_depth: float = 1e-3) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Geman-McClure reprojection residuals and their derivative with respect to the points.

    ‖r_m‖² = w_m σ² d_m² / (σ² + d_m²), r_m = √w_m · σ / √(σ² + d_m²) · e_m with e_m = (projection −
    target) · scale (normalised pixels).

    Args:
        points: (B, M, 3) camera-frame points; focal, principal_point: (B, 2); target: (B, M, 2) px;
        weight: (B, M); scale: (B,). d_log_focal: also return ∂r/∂log(focal scale).
    Returns:
        r (B, M, 2); C (B, M, 2, 3) = ∂r_m/∂P_m (so ∂r/∂x = C ∂P/∂x); the focal column (B, M, 2, 1) or None.
    """
    uv, e, den, a, r, k, xy_front = _geman_mcclure(points, focal, principal_point, target, weight, scale, sigma,
                                                   min_depth)
    # chain rule per point, folded into one 2x3 matrix C: ∂r/∂e = A = a (I − den² e eᵀ); ∂e/∂uv = scale;
    # ∂uv/∂P = diag(f/z) [I₂ | −P_xy/z]
    A = a[..., None] * (torch.eye(2, dtype=e.dtype, device=e.device) - (den.pow(2) * e)[..., None] * e[..., None, :])
    Ak = A * k[..., None, :]  # (B, M, 2, 2)
    C = torch.cat([Ak, -(Ak @ xy_front[..., None])], -1)  # (B, M, 2, 3)
    Jf = None
    if d_log_focal:  # ∂uv/∂log f = uv − principal point
        Jf = (A * scale[:, None, None, None]) @ (uv - principal_point[:, None])[..., None]
    return r, C, Jf


def reprojection_gradient(points: torch.Tensor, focal: torch.Tensor, principal_point: torch.Tensor,
                          target: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, sigma: float,
                          d_log_focal: bool = False, min_depth: float = 1e-3) -> tuple:
    """The residuals of :func:`reprojection_chain` and v = Cᵀr per point, without forming C.

    A = ∂r/∂e is symmetric and A r = a² σ² den² e (since eᵀr = a d² and 1 − den² d² = σ² den²), so
    Cᵀr = [k ⊙ Ar, −xyᵀ(k ⊙ Ar)] and the focal's g = Σ_m scale (uv − pp)ᵀ A r: what L-BFGS's gradient needs
    in a third of the operations. Same arguments; returns r (B, M, 2), v (B, M, 3), and g of log focal
    (B, 1) or None.
    """
    uv, e, den, a, r, k, xy_front = _geman_mcclure(points, focal, principal_point, target, weight, scale, sigma,
                                                   min_depth)
    Ar = r * (a * den.square()) * (sigma * sigma)  # (B, M, 2)
    v_xy = k * Ar
    v = torch.cat([v_xy, -(xy_front * v_xy).sum(-1, keepdim=True)], -1)
    g_focal = None
    if d_log_focal:
        g_focal = ((uv - principal_point[:, None]) * Ar).sum((1, 2))[:, None] * scale[:, None]
    return r, v, g_focal


def bend_normal(body_pose: torch.Tensor, hessian: bool = True) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """SMPLify's bend prior and its normal equations: (B, ≥63) -> f (B,), g = Jᵀr (B, 63), and H = JᵀJ as
    its diagonal (B, 63) (None without ``hessian``).

    Residuals r_i = exp(s_i θ_i), one per bent joint axis (elbows, knees), so J is s_i r_i at entry i
    alone: g_i = s_i r_i², H_ii = r_i² (zero elsewhere).
    """
    index, sign = _bend_tables(body_pose)
    r2 = torch.exp(body_pose.index_select(1, index) * (2 * sign))  # (B, 4): r_i²
    g = body_pose.new_zeros(body_pose.shape[0], 63).index_copy_(1, index, sign * r2)
    H = torch.zeros_like(g).index_copy_(1, index, r2) if hessian else None
    return r2.sum(-1), g, H


_BEND_TABLES = {}


def _bend_tables(like: torch.Tensor) -> tuple:
    """BEND_INDEX and BEND_SIGN as tensors on ``like``'s device and dtype (made once each)."""
    key = (like.device, like.dtype)
    if key not in _BEND_TABLES:
        _BEND_TABLES[key] = (torch.tensor(BEND_INDEX, device=like.device),
                             torch.tensor(BEND_SIGN, dtype=like.dtype, device=like.device))
    return _BEND_TABLES[key]


def has_least_squares_form(prior) -> bool:
    """Whether :func:`pose_prior_normal` can write this pose prior as a sum of squares."""
    if hasattr(prior, "least_squares"):  # a prior that writes its own (chain GMM, joint limits, sums of these)
        return bool(getattr(prior, "has_least_squares", True))
    name = getattr(prior, "name", "")
    return name in ("none", "bend") or (name == "gmm" and getattr(prior, "mode", "max") == "max")


def pose_prior_normal(prior, pose: torch.Tensor, hessian: bool = True) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """A pose prior's nll f and its Gauss-Newton normal equations, g = ½∇f, H ≈ ½∇²f.

    * no prior: f = 0 (g, H None);
    * GMM in SMPLify's max-component form: for the best component k, f = ½ dᵀΣ_k⁻¹d + c_k with
      d = θ − μ_k, so g = ½ Σ_k⁻¹ d and H = ½ Σ_k⁻¹ exactly (a precomputed matrix per component:
      no residual Jacobian is formed);
    * SMPLify's bend prior (:func:`bend_normal`): H is diagonal and returned as (B, 63);
    * a prior with its own ``least_squares(pose, hessian)`` method (the chain GMM, the joint limits, their
      sums: :mod:`priors.chains`, :mod:`priors.limits`) returns f, g, H in this convention itself.
    Args: pose (B, 63); hessian: False: H is None. The GMM's g comes from every component's (one product,
    cheaper at a large batch than a 63x63 matrix per row).
    Returns f (B,), g (B, 63), H (B, 63, 63) or its diagonal (B, 63). Raises
    ValueError for a prior without that form (see :func:`has_least_squares_form`).
    """
    B = pose.shape[0]
    name = getattr(prior, "name", "")
    if name == "none":
        return pose.new_zeros(B), None, None
    if name == "bend":
        return bend_normal(pose, hessian)
    if not has_least_squares_form(prior):
        raise ValueError(f"pose prior {name!r} has no least-squares form")
    if hasattr(prior, "least_squares"):
        return prior.least_squares(pose[:, :63], hessian)
    f, g, k = prior.best_component(pose[:, :63])  # g for every component in one product, then each row's
    return f, g, (prior.half_precisions[k] if hessian else None)  # H: (B, 63, 63), only where it is wanted


def _direction_parts(points, coeff, target, weight, sigma):
    """What :func:`direction_chain` and :func:`direction_gradient` share (few operations: at batch 1 each
    costs more than its arithmetic)."""
    d = coeff @ points  # (B, nb, 3) bone vectors
    inv_len = d.square().sum(-1, keepdim=True).clamp_(min=1e-18).rsqrt_()  # 1/‖d‖
    e = torch.addcmul(-target, d, inv_len)  # u − û
    den2 = e.square().sum(-1, keepdim=True).add_(sigma * sigma).reciprocal_()  # 1/(σ² + ‖e‖²)
    a = weight.clamp(min=0).sqrt().unsqueeze(-1).mul(den2.sqrt()).mul_(sigma)  # (B, nb, 1)
    return d, inv_len, e, den2, a, a * e


def direction_chain(points: torch.Tensor, coeff: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                    sigma: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """The bone-direction term (:func:`smplify.objective.direction_term`) as least squares.

    ‖r_b‖² = w_b σ² ‖e_b‖² / (σ² + ‖e_b‖²) with e_b = u_b − û_b, r_b = √w_b σ / √(σ² + ‖e_b‖²) · e_b.
    Args: points (B, K, 3); coeff (B, nb, K); target (B, nb, 3) unit; weight (B, nb).
    Returns r (B, nb, 3) and D (B, nb, 3, 3) = ∂r_b/∂d_b, so ∂r_b/∂x = D_b Σ_k c_bk ∂P_k/∂x.
    """
    d, inv_len, e, den2, a, r = _direction_parts(points, coeff, target, weight, sigma)
    u = d * inv_len
    eye = torch.eye(3, dtype=points.dtype, device=points.device)
    A = a[..., None] * (eye - (den2 * e)[..., None] * e[..., None, :])  # ∂r/∂e
    Pu = (eye - u[..., None] * u[..., None, :]) * inv_len[..., None]  # ∂u/∂d = (I − uuᵀ)/‖d‖
    return r, A @ Pu


def direction_gradient(points: torch.Tensor, coeff: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                       sigma: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """The residuals of :func:`direction_chain` and v_k = Σ_b c_bk D_bᵀ r_b per point, without forming D
    (A r = a² σ² den² e as for the reprojection). Same arguments; returns r (B, nb, 3), v (B, K, 3)."""
    d, inv_len, e, den2, a, r = _direction_parts(points, coeff, target, weight, sigma)
    Ar = r * (a * den2).mul_(sigma * sigma)
    inv2 = inv_len.square()
    Dtr = (Ar - d * ((d * Ar).sum(-1, keepdim=True) * inv2)).mul_(inv_len)  # (I − uuᵀ) A r / ‖d‖
    return r, coeff.transpose(1, 2) @ Dtr
