"""The SMPLify objective as least squares: residual vectors and their Jacobians.

Every term of :mod:`smplify.objective` is a sum of squares (plus, for the GMM, a constant
per component), so the objective equals ‖r‖² + c for a residual vector r. Levenberg-Marquardt
(:func:`smplify.optim.levenberg_marquardt`) uses r and ∂r/∂x; the L-BFGS path uses the
scalar terms. Pure tensor functions; shapes in docstrings.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .objective import BEND_INDEX, BEND_SIGN


def reprojection_residuals(points: torch.Tensor, d_points: torch.Tensor, focal: torch.Tensor,
                           principal_point: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                           scale: torch.Tensor, sigma: float, d_log_focal: bool = False,
                           min_depth: float = 1e-3) -> Tuple[torch.Tensor, torch.Tensor]:
    """Geman-McClure reprojection residuals, ‖r_m‖² = w_m σ² d_m² / (σ² + d_m²).

    r_m = √w_m · σ / √(σ² + d_m²) · e_m with e_m = (projection − target) · scale (normalised pixels).

    Args:
        points: (B, M, 3) camera-frame points; d_points: (B, M, 3, D) their Jacobian.
        focal, principal_point: (B, 2); target: (B, M, 2) px; weight: (B, M); scale: (B,).
        d_log_focal: append a last column, ∂r/∂log(focal scale).
    Returns:
        r (B, 2M), J (B, 2M, D [+1]).
    """
    B, M = points.shape[:2]
    z_raw = points[..., 2]
    z = z_raw.clamp(min=min_depth)
    inv_z = 1.0 / z
    xy = points[..., :2] * inv_z[..., None]
    uv = xy * focal[:, None] + principal_point[:, None]
    # ∂uv/∂P: (B, M, 2, 3); the clamped depth has no derivative
    front = (z_raw > min_depth).to(points.dtype)
    fz = focal[:, None] * inv_z[..., None]  # (B, M, 2)
    d_uv = torch.zeros(B, M, 2, 3, dtype=points.dtype, device=points.device)
    d_uv[..., 0, 0] = fz[..., 0]
    d_uv[..., 1, 1] = fz[..., 1]
    d_uv[..., :, 2] = -fz * xy * front[..., None]
    J_uv = d_uv @ d_points  # (B, M, 2, D)
    if d_log_focal:
        J_uv = torch.cat([J_uv, (uv - principal_point[:, None])[..., None]], -1)
    s = scale[:, None, None]
    e = (uv - target) * s
    d2 = e.pow(2).sum(-1, keepdim=True)  # (B, M, 1)
    s2 = sigma * sigma
    den = (s2 + d2).rsqrt()  # 1/√(σ² + d²)
    sw = weight.clamp(min=0).sqrt()[..., None]
    r = sw * sigma * den * e  # (B, M, 2)
    # ∂r/∂e = √w σ (I/√(σ²+d²) − e eᵀ/(σ²+d²)^{3/2})
    dr_de = sw[..., None] * sigma * (den[..., None] * torch.eye(2, dtype=e.dtype, device=e.device)
                                     - (den.pow(3))[..., None] * e[..., :, None] * e[..., None, :])
    J = (dr_de * s[..., None]) @ J_uv  # (B, M, 2, D)
    return r.reshape(B, 2 * M), J.reshape(B, 2 * M, -1)


def bend_residuals(body_pose: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """SMPLify's bend prior as residuals r_i = exp(s_i θ_i): (B, ≥63) -> r (B, 4), J (B, 4, 63)."""
    sign = body_pose.new_tensor(BEND_SIGN)
    r = torch.exp(body_pose[:, list(BEND_INDEX)] * sign)
    J = body_pose.new_zeros(body_pose.shape[0], len(BEND_INDEX), 63)
    J[:, torch.arange(len(BEND_INDEX)), torch.tensor(BEND_INDEX)] = r * sign
    return r, J


def pose_prior_residuals(prior, pose: torch.Tensor) -> Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """A pose prior's nll as ‖r‖² + c, or None if it has no least-squares form.

    * no prior: no residuals;
    * GMM in SMPLify's max-component form: for the best component k,
      r = (θ − μ_k)ᵀ P_k / √2 (Σ_k⁻¹ = P_k P_kᵀ), c = −log w_k + ½ log det Σ_k + (D/2) log 2π;
    * SMPLify's bend prior.
    Args: pose (B, 63). Returns r (B, R), J (B, R, 63), c (B,).
    """
    B = pose.shape[0]
    name = getattr(prior, "name", "")
    if name == "none":
        return pose.new_zeros(B, 0), pose.new_zeros(B, 0, 63), pose.new_zeros(B)
    if name == "bend":
        r, J = bend_residuals(pose)
        return r, J, pose.new_zeros(B)
    if name == "gmm" and getattr(prior, "mode", "max") == "max":
        comp = prior.component_nll(pose[:, :63])  # (B, K)
        k = comp.argmin(-1)
        P = prior.prec_chol[k]  # (B, 63, 63)
        diff = pose[:, :63] - prior.means[k]
        r = (diff[:, None] @ P)[:, 0] / 2 ** 0.5
        c = comp.gather(1, k[:, None])[:, 0] - r.pow(2).sum(-1)
        return r, P.transpose(1, 2) / 2 ** 0.5, c
    return None
