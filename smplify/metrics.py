"""Evaluation metrics as pure tensor functions (millimetres in, millimetres out as given)."""
from __future__ import annotations

import torch


def procrustes_align(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Similarity-align pred to target (rotation, uniform scale, translation; Umeyama).

    pred, target: (B, N, 3) -> aligned pred (B, N, 3).
    """
    mp, mt = pred.mean(1, keepdim=True), target.mean(1, keepdim=True)
    p, t = pred - mp, target - mt
    var = p.pow(2).sum((1, 2))
    K = p.transpose(1, 2) @ t  # (B, 3, 3)
    U, S, Vh = torch.linalg.svd(K)
    d = torch.sign(torch.linalg.det(U @ Vh))
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    R = U @ D @ Vh  # p @ R ≈ t
    scale = (S * torch.diagonal(D, dim1=-2, dim2=-1)).sum(-1) / var.clamp(min=1e-12)
    return scale[:, None, None] * p @ R + mt


def mpjpe(pred: torch.Tensor, target: torch.Tensor, root: int | None = 0) -> torch.Tensor:
    """Mean per-joint position error after aligning roots (``root=None``: no alignment). (B, N, 3) -> (B,)."""
    if root is not None:
        pred = pred - pred[:, root : root + 1]
        target = target - target[:, root : root + 1]
    return (pred - target).norm(dim=-1).mean(-1)


def pa_mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MPJPE after Procrustes alignment. (B, N, 3) -> (B,)."""
    return (procrustes_align(pred, target) - target).norm(dim=-1).mean(-1)
