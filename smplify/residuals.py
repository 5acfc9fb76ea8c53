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
    z_raw = points[..., 2]
    z = z_raw.clamp(min=min_depth)
    inv_z = 1.0 / z
    xy = points[..., :2] * inv_z[..., None]
    uv = xy * focal[:, None] + principal_point[:, None]
    e = (uv - target) * scale[:, None, None]  # (B, M, 2) normalised pixels
    d2 = e.pow(2).sum(-1, keepdim=True)  # (B, M, 1)
    den = (sigma * sigma + d2).rsqrt()  # 1/√(σ² + d²)
    a = weight.clamp(min=0).sqrt()[..., None] * sigma * den  # (B, M, 1)
    r = a * e  # (B, M, 2)
    # chain rule per point, folded into one 2x3 matrix C: ∂r/∂e = a (I − den² e eᵀ); ∂e/∂uv = scale;
    # ∂uv/∂P = diag(f/z) [I₂ | −P_xy/z] (the clamped depth has no derivative)
    k = focal[:, None] * inv_z[..., None] * scale[:, None, None]  # (B, M, 2): ∂e/∂P_xy (diagonal)
    A = a[..., None] * (torch.eye(2, dtype=e.dtype, device=e.device) - (den.pow(2) * e)[..., None] * e[..., None, :])
    Ak = A * k[..., None, :]  # (B, M, 2, 2)
    front = (z_raw > min_depth).to(points.dtype)
    C = torch.cat([Ak, -(Ak @ (xy * front[..., None])[..., None])], -1)  # (B, M, 2, 3)
    Jf = None
    if d_log_focal:  # ∂uv/∂log f = uv − principal point
        Jf = (A * scale[:, None, None, None]) @ (uv - principal_point[:, None])[..., None]
    return r, C, Jf


def bend_normal(body_pose: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SMPLify's bend prior and its normal equations: (B, ≥63) -> f (B,), g = Jᵀr (B, 63), and H = JᵀJ as
    its diagonal (B, 63).

    Residuals r_i = exp(s_i θ_i), one per bent joint axis (elbows, knees), so J is s_i r_i at entry i
    alone: g_i = s_i r_i², H_ii = r_i² (zero elsewhere).
    """
    sign = body_pose.new_tensor(BEND_SIGN)
    r2 = torch.exp(2 * body_pose[:, list(BEND_INDEX)] * sign)  # (B, 4): r_i²
    g = body_pose.new_zeros(body_pose.shape[0], 63)
    H = torch.zeros_like(g)
    g[:, list(BEND_INDEX)] = sign * r2
    H[:, list(BEND_INDEX)] = r2
    return r2.sum(-1), g, H


def has_least_squares_form(prior) -> bool:
    """Whether :func:`pose_prior_normal` can write this pose prior as a sum of squares."""
    name = getattr(prior, "name", "")
    return name in ("none", "bend") or (name == "gmm" and getattr(prior, "mode", "max") == "max")


def pose_prior_normal(prior, pose: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """A pose prior's nll f and its Gauss-Newton normal equations, g = ½∇f, H ≈ ½∇²f.

    * no prior: f = 0 (g, H None);
    * GMM in SMPLify's max-component form: for the best component k, f = ½ dᵀΣ_k⁻¹d + c_k with
      d = θ − μ_k, so g = ½ Σ_k⁻¹ d and H = ½ Σ_k⁻¹ exactly (a precomputed matrix per component:
      no residual Jacobian is formed);
    * SMPLify's bend prior (:func:`bend_normal`): H is diagonal and returned as (B, 63).
    Args: pose (B, 63). Returns f (B,), g (B, 63), H (B, 63, 63) or its diagonal (B, 63). Raises
    ValueError for a prior without that form (see :func:`has_least_squares_form`).
    """
    B = pose.shape[0]
    name = getattr(prior, "name", "")
    if name == "none":
        return pose.new_zeros(B), None, None
    if name == "bend":
        return bend_normal(pose)
    if not has_least_squares_form(prior):
        raise ValueError(f"pose prior {name!r} has no least-squares form")
    comp = prior.component_nll(pose[:, :63])  # (B, K)
    f, k = comp.min(-1)
    H = prior.half_precisions[k]  # (B, 63, 63)
    g = (H @ (pose[:, :63] - prior.means[k])[..., None])[..., 0]
    return f, g, H
