"""Batched SMPL kinematics as pure tensor functions.

Notation: B batch, J = 24 joints, V vertices, S shape directions, P = 9 * (J - 1)
pose-corrective features. All inputs are float tensors on one device.
"""
from __future__ import annotations

from typing import Sequence

import roma
import torch


def rotvec_to_rotmat(rotvec: torch.Tensor) -> torch.Tensor:
    """Axis-angle (..., 3) -> rotation matrices (..., 3, 3) (Rodrigues, via roma)."""
    return roma.rotvec_to_rotmat(rotvec)


def shape_blend(template: torch.Tensor, shapedirs: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """Shaped points: template (N, 3) + shapedirs (N, 3, S) · betas (B, S) -> (B, N, 3)."""
    s = betas.shape[-1]
    return template + torch.einsum("bs,nks->bnk", betas, shapedirs[..., :s])


def pose_features(rotmats: torch.Tensor) -> torch.Tensor:
    """SMPL pose-corrective features: (R_j - I) for joints 1.. -> (B, 9 * (J - 1)).

    rotmats: (B, J, 3, 3).
    """
    eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
    return (rotmats[:, 1:] - eye).flatten(1)


def tree_levels(parents: Sequence[int]) -> list[list[int]]:
    """Group joints by depth in the kinematic tree (root first)."""
    depth = [0] * len(parents)
    for j in range(1, len(parents)):
        depth[j] = depth[parents[j]] + 1
    return [[j for j in range(len(parents)) if depth[j] == d] for d in range(max(depth) + 1)]


class KinematicTree:
    """Index tables for level-by-level forward kinematics over a fixed tree.

    Processing one depth level at a time needs ~9 batched matmuls for SMPL instead of 23.
    """

    def __init__(self, parents: Sequence[int]):
        parents = [int(p) for p in parents]
        self.parents = parents
        levels = tree_levels(parents)
        order = [j for lvl in levels for j in lvl]
        pos = {j: i for i, j in enumerate(order)}
        self.level_joints = [torch.tensor(lvl) for lvl in levels[1:]]
        self.level_parent_pos = [torch.tensor([pos[parents[j]] for j in lvl]) for lvl in levels[1:]]
        self.level_parents = [torch.tensor([parents[j] for j in lvl]) for lvl in levels[1:]]
        self.root = levels[0][0]
        self.parent_index = torch.tensor([max(p, 0) for p in parents])
        inv = [0] * len(order)
        for i, j in enumerate(order):
            inv[j] = i
        self.inverse_order = torch.tensor(inv)


def forward_kinematics(rotmats: torch.Tensor, joints_rest: torch.Tensor, tree: KinematicTree):
    """Posed joint positions and skinning transforms.

    Args:
        rotmats: (B, J, 3, 3) local joint rotations.
        joints_rest: (B, J, 3) rest-pose joint locations.
        tree: the kinematic tree's index tables.
    Returns:
        posed_joints (B, J, 3); global rotations (B, J, 3, 3); skinning translations (B, J, 3),
        such that a rest point x bound to joint j moves to R_j x + t_j.
    """
    rel = joints_rest - joints_rest[:, tree.parent_index]  # bone vectors (root row unused)
    g_rot = rotmats[:, tree.root : tree.root + 1]
    g_pos = joints_rest[:, tree.root : tree.root + 1]
    for joints, ppos in zip(tree.level_joints, tree.level_parent_pos):
        pr = g_rot[:, ppos]
        new_rot = pr @ rotmats[:, joints]
        new_pos = (pr @ rel[:, joints].unsqueeze(-1)).squeeze(-1) + g_pos[:, ppos]
        g_rot = torch.cat([g_rot, new_rot], 1)
        g_pos = torch.cat([g_pos, new_pos], 1)
    g_rot = g_rot[:, tree.inverse_order]
    g_pos = g_pos[:, tree.inverse_order]
    skin_t = g_pos - (g_rot @ joints_rest.unsqueeze(-1)).squeeze(-1)
    return g_pos, g_rot, skin_t


def skin_points(points_posed_rest: torch.Tensor, weights: torch.Tensor, g_rot: torch.Tensor,
                skin_t: torch.Tensor) -> torch.Tensor:
    """Linear blend skinning.

    Args:
        points_posed_rest: (B, N, 3) rest-pose points (shape and pose correctives applied).
        weights: (N, J) skinning weights.
        g_rot: (B, J, 3, 3) global joint rotations; skin_t: (B, J, 3) skinning translations.
    Returns:
        (B, N, 3) posed points.
    """
    T = torch.cat([g_rot.flatten(2), skin_t], -1)  # (B, J, 12)
    Tp = torch.einsum("nj,bjk->bnk", weights, T)  # (B, N, 12)
    R = Tp[..., :9].unflatten(-1, (3, 3))
    return (R @ points_posed_rest.unsqueeze(-1)).squeeze(-1) + Tp[..., 9:]
