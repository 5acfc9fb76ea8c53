"""The body model as a torch module with two forward paths.

* :meth:`BodyModel.joints_and_landmarks` — what the fitter calls every iteration: joints
  are linear in the shape (J_regressor · shapedirs is precomputed), forward kinematics
  runs over the 24 joints, and only the few landmark vertices are skinned.
* :meth:`BodyModel.mesh` — the full mesh (for outputs, rendering and tests).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn

from ..rotations import rotvec_to_rotmat
from .kinematics import KinematicTree, forward_kinematics, pose_features, shape_blend, skin_points
from .model_file import BodyModelData
from .names import NUM_JOINTS


@dataclass
class BodyOutput:
    """Posed body. joints (B, 24, 3); landmarks (B, L, 3); vertices (B, V, 3) or None."""

    joints: torch.Tensor
    landmarks: torch.Tensor
    vertices: Optional[torch.Tensor] = None

    @property
    def points(self) -> torch.Tensor:
        """Joints then landmarks: (B, 24 + L, 3) — the set keypoint targets index into."""
        return torch.cat([self.joints, self.landmarks], 1)


def _as_body_pose(body_pose: torch.Tensor) -> torch.Tensor:
    """(B, 63 | 69) or (B, 21 | 23, 3) axis-angle -> (B, 23, 3); hands default to zero."""
    bp = body_pose.reshape(body_pose.shape[0], -1, 3)
    if bp.shape[1] == NUM_JOINTS - 3:
        bp = torch.cat([bp, bp.new_zeros(bp.shape[0], 2, 3)], 1)
    if bp.shape[1] != NUM_JOINTS - 1:
        raise ValueError(f"body_pose must hold 21 or 23 joints, got {bp.shape[1]}")
    return bp


class BodyModel(nn.Module):
    """SMPL-format body model (24 joints) built from :class:`BodyModelData`."""

    def __init__(self, data: BodyModelData, num_betas: Optional[int] = None, dtype=torch.float32):
        super().__init__()
        self.data = data
        self.name = data.name
        nb = data.num_betas if num_betas is None else min(num_betas, data.num_betas)
        self.num_betas = nb
        f = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype)
        jreg = data.J_regressor.toarray().astype(np.float32)
        shapedirs = data.shapedirs[..., :nb]
        self.register_buffer("v_template", f(data.v_template))
        self.register_buffer("shapedirs", f(shapedirs))
        self.register_buffer("faces", torch.as_tensor(data.faces, dtype=torch.long))
        self.register_buffer("weights", f(data.weights.toarray()))
        self.register_buffer("J_template", f(jreg @ data.v_template))
        self.register_buffer("J_shapedirs", f(np.einsum("jv,vks->jks", jreg, shapedirs)))
        self.has_posedirs = data.posedirs is not None
        if self.has_posedirs:
            pd = data.posedirs  # (V, 3, P)
            self.register_buffer("posedirs", f(pd.reshape(-1, pd.shape[-1]).T))  # (P, V*3)
        self.tree = KinematicTree(data.parents.tolist())
        self.landmark_names = tuple(data.landmark_names)
        lv = np.asarray(data.landmark_vertices, np.int64)
        lw = np.asarray(data.landmark_weights, np.float32)
        self.register_buffer("lm_vertex", torch.as_tensor(lv.reshape(-1)))
        self.register_buffer("lm_weight", f(lw))  # (L, K)
        self.register_buffer("lm_template", self.v_template[self.lm_vertex])
        flat_t = lambda sd: sd.reshape(-1, sd.shape[-1]).T.contiguous()  # (N, 3, S) -> (S, N*3)
        self.register_buffer("lm_shapedirs", flat_t(self.shapedirs[self.lm_vertex]))
        self.register_buffer("shapedirs_t", flat_t(self.shapedirs))
        self.register_buffer("J_shapedirs_t", flat_t(self.J_shapedirs))
        self.register_buffer("lm_skin", self.weights[self.lm_vertex])
        if self.has_posedirs:
            idx = (self.lm_vertex[:, None] * 3 + torch.arange(3)).reshape(-1)
            self.register_buffer("lm_posedirs", self.posedirs[:, idx])

    @property
    def point_names(self) -> tuple:
        from .names import SMPL_JOINT_NAMES

        return SMPL_JOINT_NAMES + self.landmark_names

    def _pose(self, global_orient, body_pose, betas, transl, rotmats=None):
        """Kinematics shared by every forward. ``rotmats``: the local rotations of the root and the body
        joints given in body_pose, if the caller has them already (the hands' stay the identity)."""
        B = global_orient.shape[0]
        if rotmats is None:
            rotmats = rotvec_to_rotmat(torch.cat([global_orient.reshape(B, 1, 3), _as_body_pose(body_pose)], 1))
        elif rotmats.shape[1] < NUM_JOINTS:  # the joints not given (the hands) keep the identity
            pad = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device).expand(B, NUM_JOINTS - rotmats.shape[1], 3, 3)
            rotmats = torch.cat([rotmats, pad], 1)
        if betas is None:
            betas = global_orient.new_zeros(B, self.num_betas)
        betas = betas[:, : self.num_betas]
        joints_rest = shape_blend(self.J_template, self.J_shapedirs_t, betas)
        g_pos, g_rot, skin_t = forward_kinematics(rotmats, joints_rest, self.tree)
        if transl is not None:
            g_pos = g_pos + transl[:, None]
            skin_t = skin_t + transl[:, None]
        return rotmats, betas, g_pos, g_rot, skin_t

    def joints_and_landmarks(self, global_orient, body_pose, betas=None, transl=None) -> BodyOutput:
        """Joints and landmarks without the mesh.

        global_orient (B, 3), body_pose (B, 69 | 63), betas (B, S) or None, transl (B, 3) or None.
        """
        rotmats, betas, g_pos, g_rot, skin_t = self._pose(global_orient, body_pose, betas, transl)
        B = rotmats.shape[0]
        L, K = self.lm_weight.shape
        if L == 0:
            return BodyOutput(g_pos, g_pos.new_zeros(B, 0, 3))
        pts = shape_blend(self.lm_template, self.lm_shapedirs, betas)
        if self.has_posedirs:
            pts = pts + (pose_features(rotmats) @ self.lm_posedirs).view(B, -1, 3)
        posed = skin_points(pts, self.lm_skin, g_rot, skin_t).view(B, L, K, 3)
        return BodyOutput(g_pos, (posed * self.lm_weight[None, :, :, None]).sum(2))

    def mesh(self, global_orient, body_pose, betas=None, transl=None) -> BodyOutput:
        """Full mesh: vertices (B, V, 3), joints and landmarks."""
        rotmats, betas, g_pos, g_rot, skin_t = self._pose(global_orient, body_pose, betas, transl)
        B = rotmats.shape[0]
        v = shape_blend(self.v_template, self.shapedirs_t, betas)
        if self.has_posedirs:
            v = v + (pose_features(rotmats) @ self.posedirs).view(B, -1, 3)
        verts = skin_points(v, self.weights, g_rot, skin_t)
        L, K = self.lm_weight.shape
        lms = (verts[:, self.lm_vertex].view(B, L, K, 3) * self.lm_weight[None, :, :, None]).sum(2)
        return BodyOutput(g_pos, lms, verts)

    forward = joints_and_landmarks
