"""Random scenes with known truth, batched: poses, adult shapes, viewpoints, cameras.

Shared by the synthetic benchmark and the regressor's training data. A scene puts the
body (pose from a given pose set, betas ~ N(0, 1)) at a random azimuth (full turn) and
elevation (±30°), 2.5-6 m in front of a camera with a 45-70° field of view, pelvis near
the optical axis, and projects every body point (24 joints + landmarks).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import roma
import torch

from ..body import BodyModel
from ..camera import project


@dataclass
class Scenes:
    """B scenes. Axis-angle params (camera frame); points (B, P, 3); uv (B, P, 2) px."""

    global_orient: torch.Tensor
    body_pose: torch.Tensor  # (B, 63)
    betas: torch.Tensor
    transl: torch.Tensor
    focal: torch.Tensor  # (B, 2)
    principal_point: torch.Tensor  # (B, 2)
    image_size: tuple
    points: torch.Tensor
    uv: torch.Tensor


def sample_scenes(body: BodyModel, poses: torch.Tensor, B: int, generator: torch.Generator,
                  image_size=(1080, 1920), fov_deg=(45.0, 70.0), distance=(2.5, 6.0),
                  elevation_deg: float = 30.0, beta_std: float = 1.0) -> Scenes:
    g = generator
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(B, generator=g)
    pose = poses[torch.randint(len(poses), (B,), generator=g)].float()
    betas = torch.randn(B, body.num_betas, generator=g) * beta_std
    az, el = u(-math.pi, math.pi), u(-math.radians(elevation_deg), math.radians(elevation_deg))
    zero = torch.zeros(B)
    R = (roma.rotvec_to_rotmat(torch.stack([el, zero, zero], -1)) @ roma.rotvec_to_rotmat(torch.stack([zero, az, zero], -1))
         @ roma.rotvec_to_rotmat(torch.tensor([[math.pi, 0.0, 0.0]])).expand(B, 3, 3))
    go = roma.rotmat_to_rotvec(R)
    W, H = image_size
    f = 0.5 * max(W, H) / torch.tan(torch.deg2rad(u(*fov_deg)) / 2)
    focal = torch.stack([f, f], -1)
    pp = torch.tensor([[W / 2.0, H / 2.0]]).expand(B, 2)
    with torch.no_grad():
        out = body.joints_and_landmarks(go, pose, betas, torch.zeros(B, 3))
        d = u(*distance)
        off = torch.stack([u(-0.1, 0.1) * d, u(-0.05, 0.05) * d, d], -1)
        transl = off - out.joints[:, 0]
        pts = out.points + transl[:, None]
        uv = project(pts, focal, pp)
    return Scenes(go, pose, betas, transl, focal, pp, (W, H), pts, uv)
