"""Batched SMPL kinematics as pure tensor functions.

Notation: B batch, J = 24 joints, V vertices, S shape directions, P = 9 * (J - 1)
pose-corrective features. All inputs are float tensors on one device.
"""
from __future__ import annotations

from typing import Sequence

import torch


def shape_blend(template: torch.Tensor, shapedirs_t: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """Shaped points: template (N, 3) + betas (B, S) · shapedirs_t (S, N·3) -> (B, N, 3).

    ``shapedirs_t`` is SMPL's (N, 3, S) ``shapedirs`` flattened and transposed, so the
    blend is a single matmul.
    """
    return template + (betas @ shapedirs_t).view(betas.shape[0], -1, 3)


def pose_features(rotmats: torch.Tensor) -> torch.Tensor:
    """SMPL pose-corrective features: (R_j - I) for joints 1.. -> (B, 9 * (J - 1)).

    rotmats: (B, J, 3, 3).
    """
    eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
    return (rotmats[:, 1:] - eye).flatten(1)


class KinematicTree:
    """Index tables for forward kinematics by pointer doubling.

    Every joint's global transform is the product of local transforms along its path to
    the root. Composing each joint with its current "ancestor pointer" and then jumping the
    pointer (P ← P[P]) finishes in ⌈log2(depth)⌉ steps (4 for SMPL) of one gather and one
    batched matmul each, instead of one step per tree level. Index J is an identity
    transform that pointers reach once they pass the root.
    """

    def __init__(self, parents: Sequence[int]):
        parents = [int(p) for p in parents]
        n = len(parents)
        self.parents = parents
        self.parent_index = torch.tensor([max(p, 0) for p in parents])
        self.root = parents.index(-1)
        ptr = [p if p >= 0 else n for p in parents] + [n]
        steps = []
        while any(p != n for p in ptr[:n]):
            steps.append(torch.tensor(ptr))
            ptr = [ptr[p] for p in ptr]
        self.steps = steps
        self.is_root = torch.tensor([p < 0 for p in parents])
        self.not_root = (~self.is_root).float()[:, None]  # (J, 1): 0 for the root, which keeps its position
        # offsets = D @ joints: joint minus parent (the root keeps its absolute position)
        D = torch.eye(n)
        for j, p in enumerate(parents):
            if p >= 0:
                D[j, p] = -1.0
        self.offset_matrix = D
        self.identity = torch.eye(4).reshape(1, 1, 4, 4)  # the transform that pointers past the root reach
        self.bottom_row = self.identity[..., 3:, :]  # (1, 1, 1, 4): [0, 0, 0, 1]
        # the joints by depth below the root, for composing one level at a time: (the level's joints, as a
        # slice where they are contiguous (SMPL's order), their parents); the root's level first, parentless
        depth = []
        for j in range(n):
            d, a = 0, parents[j]
            while a >= 0:
                d, a = d + 1, parents[a]
            depth.append(d)
        levels = []
        for d in range(max(depth) + 1):
            js = [j for j in range(n) if depth[j] == d]
            at = slice(js[0], js[-1] + 1) if js == list(range(js[0], js[-1] + 1)) else torch.tensor(js)
            levels.append((at, torch.tensor([max(parents[j], 0) for j in js])))
        self.levels = levels


# from this batch size on, forward kinematics composes one tree level at a time (9 steps for SMPL, each a
# few operations) instead of by pointer doubling (4 steps): fewer products, more operations
LEVELS_FROM_BATCH = 64


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
    B, J = joints_rest.shape[:2]
    if tree.offset_matrix.dtype != joints_rest.dtype or tree.offset_matrix.device != joints_rest.device:
        for k in ("offset_matrix", "identity", "bottom_row", "not_root"):
            setattr(tree, k, getattr(tree, k).to(joints_rest))
        dev = joints_rest.device  # index tables: the data's device (index_select wants them there)
        tree.parent_index = tree.parent_index.to(dev)
        tree.steps = [i.to(dev) for i in tree.steps]
        tree.levels = [(at if isinstance(at, slice) else at.to(dev), par.to(dev)) for at, par in tree.levels]
    # local homogeneous transforms [R_j, J_j − J_parent; 0, 1] (the root keeps its absolute position; 4x4
    # products: one operation a step, fewer than composing 3x4 blocks)
    offs = torch.addcmul(joints_rest, joints_rest.index_select(1, tree.parent_index), tree.not_root, value=-1.0)
    local = torch.cat([torch.cat([rotmats, offs.unsqueeze(-1)], -1), tree.bottom_row.expand(B, J, 1, 4)], -2)
    if B >= LEVELS_FROM_BATCH:  # one level at a time: J products a row instead of (J + 1)·log2(depth)
        T = torch.empty_like(local)
        for i, (at, par) in enumerate(tree.levels):
            T[:, at] = local[:, at] if i == 0 else T.index_select(1, par) @ local[:, at]
    else:
        T = torch.cat([local, tree.identity.expand(B, 1, 4, 4)], 1)  # (B, J + 1, 4, 4): + the identity at J
        for idx in tree.steps:
            T = T.index_select(1, idx) @ T  # compose with the ancestor transform
    g_rot, g_pos = T[:, :J, :3, :3], T[:, :J, :3, 3]
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
    Tp = weights @ T  # (B, N, 12)
    R = Tp[..., :9].unflatten(-1, (3, 3))
    return (R @ points_posed_rest.unsqueeze(-1)).squeeze(-1) + Tp[..., 9:]
