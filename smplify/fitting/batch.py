"""A batch of people to fit: their 2D targets stacked (padded) as tensors on the fitter's device."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from ..objective import REFERENCE_SCALE

TORSO_JOINTS = (1, 2, 16, 17)  # left/right hip, left/right shoulder


@dataclass
class Batch:
    """B people, M keypoints each (padded with weight 0).

    index (B, M) body point per keypoint; xy (B, M, 2) px; w (B, M) confidence × table weight (0: missing);
    w_torso (B, M) the camera stage's weights (torso only); scale (B,) normalises pixels by the keypoint
    box; focal, pp (B, 2) px; visible (B, M) bool; transl0 (B, 3) the start's translation (the depth term's
    anchor), set once the start is known. Where people have world landmarks (and the term is on), the
    bone-direction term's tensors (:mod:`smplify.keypoints.world`), else None: bone_coeff (B, nb, M), bone_dir
    (B, nb, 3) unit, bone_w (B, nb) (0 for people without), bone_w_torso (the torso's bones only).
    """

    index: torch.Tensor
    xy: torch.Tensor
    w: torch.Tensor
    w_torso: torch.Tensor
    scale: torch.Tensor
    focal: torch.Tensor
    pp: torch.Tensor
    visible: torch.Tensor
    transl0: Optional[torch.Tensor] = None
    bone_coeff: Optional[torch.Tensor] = None
    bone_dir: Optional[torch.Tensor] = None
    bone_w: Optional[torch.Tensor] = None
    bone_w_torso: Optional[torch.Tensor] = None

    @property
    def has_bones(self) -> bool:
        return self.bone_coeff is not None

    def rows(self, rows: Optional[torch.Tensor]) -> "Batch":
        """These rows only (all for None)."""
        if rows is None:
            return self
        return Batch(**{k: (v[rows] if v is not None else None) for k, v in vars(self).items()})

    def twice(self) -> "Batch":
        """Every row twice (rows b and B + b): the flip test's two facings."""
        return self.repeat(2)

    def repeat(self, k: int) -> "Batch":
        """Every row k times (rows b, B + b, ...): one copy per candidate start."""
        return Batch(**{n: (torch.cat([v] * k) if v is not None else None) for n, v in vars(self).items()})

    def replace(self, **changes) -> "Batch":
        return dataclasses.replace(self, **changes)


def make_batch(inputs: Sequence, min_confidence: float, device: torch.device, bones: bool = False) -> Batch:
    """Stack :class:`~smplify.fitting.result.FitInput` s; keypoints below ``min_confidence`` get weight 0.
    ``bones``: also the bone-direction term's tensors, if anybody has world landmarks."""
    B, M = len(inputs), max(len(i.index) for i in inputs)
    if all(len(i.index) == M for i in inputs):  # one layout (the usual batch): stacked at once
        index = torch.from_numpy(np.stack([np.asarray(i.index, np.int64) for i in inputs]))
        xy = torch.from_numpy(np.stack([np.asarray(i.xy, np.float32) for i in inputs]))
        conf = np.stack([np.asarray(i.confidence, np.float32) for i in inputs])
        weight = np.stack([np.asarray(i.weight, np.float32) for i in inputs])
        w = torch.from_numpy(np.where(conf >= min_confidence, conf * weight, 0.0).astype(np.float32))
    else:  # padded to the longest; padding has weight 0
        index = torch.zeros(B, M, dtype=torch.long)
        xy = torch.zeros(B, M, 2)
        w = torch.zeros(B, M)
        for b, inp in enumerate(inputs):
            m = len(inp.index)
            index[b, :m] = torch.as_tensor(np.asarray(inp.index, np.int64))
            xy[b, :m] = torch.as_tensor(np.asarray(inp.xy, np.float32))
            conf = np.asarray(inp.confidence, np.float32)
            eff = np.where(conf >= min_confidence, conf * np.asarray(inp.weight, np.float32), 0.0)
            w[b, :m] = torch.as_tensor(eff)
    torso = torch.zeros_like(w, dtype=torch.bool)
    for j in TORSO_JOINTS:
        torso |= index == j
    vis = w > 0
    big = torch.where(vis[..., None], xy, torch.full_like(xy, float("inf")))
    small = torch.where(vis[..., None], xy, torch.full_like(xy, -float("inf")))
    diag = (small.amax(1) - big.amin(1)).norm(dim=-1)
    diag = torch.where(torch.isfinite(diag) & (diag > 1), diag, torch.full_like(diag, REFERENCE_SCALE))
    focal = torch.tensor([inp.camera.focal for inp in inputs], dtype=torch.float32)
    pp = torch.tensor([inp.camera.principal_point for inp in inputs], dtype=torch.float32)
    w_torso = torch.where(torso, w, torch.zeros_like(w))
    few = (w_torso > 0).sum(1) < 3  # too few torso points: the camera stage uses everything visible
    w_torso[few] = w[few]
    out = Batch(index=index, xy=xy, w=w, w_torso=w_torso, scale=REFERENCE_SCALE / diag, focal=focal, pp=pp,
                visible=vis)
    if bones and any(i.world is not None for i in inputs):
        out = out.replace(**bone_tensors(inputs, M))
    return Batch(**{k: v.to(device) for k, v in vars(out).items() if v is not None})


#: the bones a torso-only stage (the camera stage) compares
TORSO_BONES = ("hips", "shoulders", "torso")


def bone_tensors(inputs: Sequence, M: int) -> dict:
    """The bone-direction term's tensors of a batch (see :class:`Batch`), padded to the most bones; people
    without world landmarks get weight 0."""
    from ..keypoints.world import bone_targets

    per = [bone_targets(i.names, i.world, i.world_visibility) if i.world is not None else None for i in inputs]
    nb = max(len(t.names) for t in per if t is not None)
    B = len(inputs)
    if all(t is not None and t.coeff.shape == (nb, M) and t.names == per[0].names for t in per):  # one layout
        coeff = torch.from_numpy(np.stack([t.coeff for t in per]))
        direction = torch.from_numpy(np.stack([t.direction for t in per]))
        w = torch.from_numpy(np.stack([t.weight for t in per]))
        torso = torch.tensor([k in TORSO_BONES for k in per[0].names])
        return {"bone_coeff": coeff, "bone_dir": direction, "bone_w": w,
                "bone_w_torso": torch.where(torso, w, torch.zeros_like(w))}
    coeff, direction = torch.zeros(B, nb, M), torch.zeros(B, nb, 3)
    direction[..., 2] = 1.0  # padding: any unit vector, weight 0
    w, w_torso = torch.zeros(B, nb), torch.zeros(B, nb)
    for b, t in enumerate(per):
        if t is None:
            continue
        n, m = t.coeff.shape
        coeff[b, :n, :m] = torch.from_numpy(t.coeff)
        direction[b, :n] = torch.from_numpy(t.direction)
        w[b, :n] = torch.from_numpy(t.weight)
        w_torso[b, :n] = torch.from_numpy(np.where([k in TORSO_BONES for k in t.names], t.weight, 0.0).astype(np.float32))
    return {"bone_coeff": coeff, "bone_dir": direction, "bone_w": w, "bone_w_torso": w_torso}
