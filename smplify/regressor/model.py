"""A keypoint-to-SMPL regressor.

Inputs are layout-agnostic: every detector keypoint is mapped (by the landmark table) to
a body point — one of the 24 joints or a surface landmark — so the network reads a fixed
grid of P = 24 + L slots (x, y, weight), normalised by the person's keypoint box. Any
layout the table covers (MediaPipe-33, COCO-17, OpenPose) feeds the same network; slots a
layout lacks, or keypoints that are missing, have weight 0.

Outputs: global orientation and 21 body joints as 6D rotations (Zhou et al.), 10 betas,
and the camera as (u, v, w): the pelvis's image position relative to the box centre in
box diagonals and w = log(depth · diagonal / focal).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..rotations import rotmat_to_rotvec

NUM_ROT = 22  # global orient + 21 body joints


def encode_inputs(index: torch.Tensor, xy: torch.Tensor, weight: torch.Tensor, num_points: int):
    """Scatter keypoints into body-point slots and normalise.

    Args:
        index (B, M) body-point index per keypoint; xy (B, M, 2) pixels; weight (B, M) (0 = missing).
    Returns:
        features (B, num_points * 3); centre (B, 2) px; diagonal (B,) px.
    """
    vis = weight > 0
    inf = torch.full_like(xy, float("inf"))
    lo = torch.where(vis[..., None], xy, inf).amin(1)
    hi = torch.where(vis[..., None], xy, -inf).amax(1)
    ok = torch.isfinite(lo).all(-1) & torch.isfinite(hi).all(-1)
    centre = torch.where(ok[:, None], (lo + hi) / 2, torch.zeros_like(lo))
    diag = torch.where(ok, (hi - lo).norm(dim=-1).clamp(min=1.0), torch.ones_like(lo[:, 0]))
    rel = (xy - centre[:, None]) / diag[:, None, None]
    w = torch.where(vis, weight, torch.zeros_like(weight))
    feats = torch.cat([rel * (w > 0)[..., None], w[..., None]], -1)  # (B, M, 3)
    grid = xy.new_zeros(xy.shape[0], num_points, 3)
    # several keypoints may map to one slot: keep a weighted mean
    grid.scatter_add_(1, index[..., None].expand(-1, -1, 3), feats * torch.cat([w[..., None].expand(-1, -1, 2),
                                                                                 torch.ones_like(w)[..., None]], -1))
    wsum = xy.new_zeros(xy.shape[0], num_points).scatter_add_(1, index, w)
    grid[..., :2] = grid[..., :2] / wsum.clamp(min=1e-6)[..., None]
    grid[..., 2] = grid[..., 2].clamp(max=1.0)
    return grid.flatten(1), centre, diag


def gram_schmidt(M: torch.Tensor) -> torch.Tensor:
    """(..., 3, 2) two 3D vectors -> (..., 3, 3) rotation: the continuous 6-D rotation representation
    (Zhou et al. 2019), as roma's special_gramschmidt (tested equal), without importing roma here."""
    x = M[..., 0] / M[..., 0].norm(dim=-1, keepdim=True)
    y = M[..., 1] - (x * M[..., 1]).sum(-1, keepdim=True) * x
    y = y / y.norm(dim=-1, keepdim=True)
    return torch.stack([x, y, torch.linalg.cross(x, y)], -1)


class KeypointRegressor(nn.Module):
    """MLP with residual blocks: (B, P*3) -> rotations (B, 22, 3, 3), betas (B, S), camera (B, 3)."""

    def __init__(self, num_points: int, num_betas: int = 10, hidden: int = 512, blocks: int = 3):
        super().__init__()
        self.num_points, self.num_betas, self.hidden, self.blocks = num_points, num_betas, hidden, blocks
        self.inp = nn.Linear(num_points * 3, hidden)
        self.body = nn.ModuleList(nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.GELU(),
                                                nn.Linear(hidden, hidden)) for _ in range(blocks))
        self.out = nn.Linear(hidden, NUM_ROT * 6 + num_betas + 3)
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():  # start at the identity rotation, mean shape, a neutral camera
            self.out.bias.zero_()
            ident6 = torch.tensor([1.0, 0, 0, 1, 0, 0])  # I[:, :2] as a row-major (3, 2) block
            self.out.bias[: NUM_ROT * 6] = ident6.repeat(NUM_ROT)
            self.out.bias[-1] = 1.0

    def forward(self, feats: torch.Tensor):
        h = self.inp(feats)
        for blk in self.body:
            h = h + blk(h)
        o = self.out(h)
        rot6 = o[:, : NUM_ROT * 6].view(-1, NUM_ROT, 3, 2)
        R = gram_schmidt(rot6)
        return R, o[:, NUM_ROT * 6 : NUM_ROT * 6 + self.num_betas], o[:, -3:]

    def config(self) -> dict:
        return {"num_points": self.num_points, "num_betas": self.num_betas, "hidden": self.hidden,
                "blocks": self.blocks}


def decode_outputs(R: torch.Tensor, betas: torch.Tensor, cam: torch.Tensor, centre: torch.Tensor,
                   diag: torch.Tensor, focal: torch.Tensor, principal_point: torch.Tensor, pelvis_rest: torch.Tensor):
    """Network outputs -> SMPL parameters in the camera frame.

    R (B, 22, 3, 3); betas (B, S); cam (B, 3) = (u, v, w); centre (B, 2), diag (B,) px;
    focal, principal_point (B, 2); pelvis_rest (B, 3) the rest-pose pelvis joint for these betas.
    Returns dict of global_orient (B, 3), body_pose (B, 63), betas, transl (B, 3).
    """
    rv = rotmat_to_rotvec(R)
    depth = torch.exp(cam[:, 2]) * focal.mean(-1) / diag
    px = centre + cam[:, :2] * diag[:, None]
    pelvis = torch.cat([(px - principal_point) * depth[:, None] / focal, depth[:, None]], -1)
    return {"global_orient": rv[:, 0], "body_pose": rv[:, 1:].flatten(1), "betas": betas,
            "transl": pelvis - pelvis_rest}


def predict(model: KeypointRegressor, body, index, xy, weight, focal, pp) -> dict:
    """Regressor estimate of SMPL parameters (camera frame) for a batch of keypoints."""
    with torch.no_grad():
        feats, centre, diag = encode_inputs(index, xy, weight, model.num_points)
        R, betas, cam = model(feats)
        rest = body.joints_and_landmarks(R.new_zeros(len(R), 3), R.new_zeros(len(R), 63), betas).joints[:, 0]
        return decode_outputs(R, betas, cam, centre, diag, focal, pp, rest)


def load_regressor(path, expected_points: Optional[int] = None) -> KeypointRegressor:
    """Load weights (``torch.load(weights_only=True)``) and the JSON config beside them."""
    path = Path(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    model = KeypointRegressor(**meta["config"])
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    if expected_points is not None and model.num_points != expected_points:
        raise ValueError(f"{path}: regressor made for {model.num_points} body points, model has {expected_points}")
    model.eval()
    model.meta = meta
    from .slots import open_point_names

    if model.num_points == len(open_point_names()):  # its input slots, by name (see .slots)
        model.point_names = open_point_names()
    return model
