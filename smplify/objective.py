"""Objective terms as pure tensor functions. Every term returns a per-sample loss (B,).

The data term is measured in *normalised pixels*: residuals are scaled so that the
person's 2D keypoint box has a diagonal of ``REFERENCE_SCALE`` pixels. The weights in
:class:`smplify.config.FitConfig` therefore mean the same for a 300 px thumbnail and a
4K photo.
"""
from __future__ import annotations

import torch

#: diagonal (px) of the person's keypoint box after normalisation
REFERENCE_SCALE = 256.0


def gmof(sq_dist: torch.Tensor, sigma: float) -> torch.Tensor:
    """Geman-McClure robust penalty of a squared distance: σ² d² / (σ² + d²). Same shape."""
    s2 = sigma * sigma
    return s2 * sq_dist / (s2 + sq_dist)


def reprojection_term(projected: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                      scale: torch.Tensor, sigma: float) -> torch.Tensor:
    """Robust weighted reprojection error.

    Args:
        projected, target: (B, M, 2) pixels; weight: (B, M) confidence × table weight
        (0 for missing keypoints); scale: (B,) normalisation factor (REFERENCE_SCALE / box diagonal).
    Returns:
        (B,) Σ_m w_m ρ(‖(p_m − t_m)·scale‖²).
    """
    d2 = ((projected - target) * scale[:, None, None]).pow(2).sum(-1)
    return (weight * gmof(d2, sigma)).sum(-1)


def shape_term(betas: torch.Tensor) -> torch.Tensor:
    """Gaussian shape prior ‖β‖² (betas ~ N(0, 1)). (B, S) -> (B,)."""
    return betas.pow(2).sum(-1)


def depth_term(transl: torch.Tensor, init_transl: torch.Tensor) -> torch.Tensor:
    """Keeps the camera distance near its similar-triangles estimate: (t_z − t_z⁰)². (B, 3) -> (B,)."""
    return (transl[:, 2] - init_transl[:, 2]).pow(2)


def focal_term(log_focal_scale: torch.Tensor) -> torch.Tensor:
    """Keeps an optimised focal length near its initial value: (log f/f₀)². (B, 1) -> (B,)."""
    return log_focal_scale.pow(2).sum(-1)


#: SMPLify's bend prior: body_pose (63/69) entries of the elbows' y and the knees' x
#: rotation, with the sign for which bending is *unnatural* (positive after the sign flip).
BEND_INDEX = (52, 55, 9, 12)  # left_elbow.y, right_elbow.y, left_knee.x, right_knee.x
BEND_SIGN = (1.0, -1.0, -1.0, -1.0)


def bend_term(body_pose: torch.Tensor) -> torch.Tensor:
    """SMPLify's bend prior Σ exp(s·θ)² over elbows and knees: small for natural bends,
    growing exponentially for hyper-extension. body_pose (B, ≥63) -> (B,)."""
    sign = body_pose.new_tensor(BEND_SIGN)
    return torch.exp(body_pose[:, list(BEND_INDEX)] * sign).pow(2).sum(-1)


def bone_vectors(points: torch.Tensor, coeff: torch.Tensor) -> torch.Tensor:
    """Bone vectors as combinations of points: d_b = Σ_k c_bk P_k (a bone may end at a midpoint).
    points (B, K, 3); coeff (B, nb, K) -> (B, nb, 3)."""
    return coeff @ points


def direction_term(points: torch.Tensor, coeff: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                   sigma: float) -> torch.Tensor:
    """Robust bone-direction term: Σ_b w_b ρ(‖u_b − û_b‖²), u_b = d_b / ‖d_b‖ the body's bone directions,
    û_b the target's (unit), ρ Geman-McClure with scale ``sigma``. Free of the body's scale and
    translation (directions only); the camera frame's rotation stays (it tells the facing).

    Args: points (B, K, 3); coeff (B, nb, K) (:func:`bone_vectors`); target (B, nb, 3) unit vectors;
    weight (B, nb) ≥ 0. Returns (B,).
    """
    d = bone_vectors(points, coeff)
    u = d / d.norm(dim=-1, keepdim=True).clamp(min=1e-9)
    return (weight * gmof((u - target).pow(2).sum(-1), sigma)).sum(-1)
